"""Member-episodes/s and memory of a network family's batched episode, timed through its Problem (the ES path).

``evoplastic bench`` times every registered family this way beside the paper's rows: the family's
Problem draws one task and its initial network, and N candidates θ (the family's initial θ, ±10 %
per member) score it in one ``Problem.scores`` call without a graph, as one ES generation does.
An autograd case scores one θ that requires grad and backpropagates the summed meta-loss, as one
Adam step does. The first call's peak memory above what the process held before it is the
episode's (CUDA: the allocator's peak; CPU: the kernel's peak-RSS mark, honest only in a fresh
process, where no freed memory can serve the call). Nothing here reaches into a family's modules:
only families.get_family, the Problem protocol and the optional Benchmarked words of core.family.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import torch

from evoplastic.bench.inner import read_peak, reset_peak, time_calls, timed_call
from evoplastic.config import ExperimentConfig, load_config
from evoplastic.families import get_family, theta_space
from evoplastic.seeding import make_generator

PURPOSE = "bench"
"""Random-stream key of the timed task and the members' θ."""
DEFAULT_MEMBERS = {"cpu": (1, 8), "cuda": (1, 256)}
"""Members N of a family's rows when it names none for the device (Benchmarked.bench_members)."""


class CannotTime(ValueError):
    """This family or config cannot run the asked case (e.g. no gradient for the autograd episode)."""


@dataclass(frozen=True)
class FamilyCase:
    """One timed setting: a family's default config (plus overrides) with N members on one task."""

    family: str
    members: int
    device: str
    min_seconds: float
    threads: int
    overrides: tuple[str, ...] = ()
    autograd: bool = False
    """One θ requiring grad, scored and backpropagated (an Adam step) instead of N members without a graph."""
    memory: bool = True
    """Measure the first call's peak memory (false where it would not be honest: a reused CPU process)."""

    @classmethod
    def from_dict(cls, values: dict) -> FamilyCase:
        return cls(**{**values, "overrides": tuple(values.get("overrides", ()))})

    @property
    def label(self) -> str:
        return "autograd (Adam)" if self.autograd else "no-grad"


@dataclass
class FamilyResult:
    """Seconds per Problem.scores call of N members, the member-episodes/s they give and the episode's memory."""

    case: FamilyCase
    reps: int
    seconds_median: float
    seconds_best: float
    rate_median: float
    rate_best: float
    accuracy: float
    """Mean accuracy the family reports for the N members (k-cap: probe accuracy on the query points)."""
    episode_mib: float = math.nan
    """Peak memory of the first call above what the process held before it (NaN: not measured)."""
    memory_source: str = ""
    """What episode_mib reads: 'peak RSS' (VmHWM) or 'CUDA allocator'."""
    grad_finite: bool | None = None
    """Autograd case: whether every gradient coordinate came out finite."""

    @classmethod
    def from_dict(cls, values: dict) -> FamilyResult:
        return cls(**{**values, "case": FamilyCase.from_dict(values["case"])})


def family_config(case: FamilyCase) -> ExperimentConfig:
    """The family's default experiment in float32 on the case's device, with the case's overrides."""
    return load_config(None, [f"family={case.family}", f"device={case.device}", "dtype=float32", *case.overrides])


def family_members(name: str, device: str) -> tuple[int, ...]:
    """The family's own members N for this device kind (Benchmarked.bench_members), else DEFAULT_MEMBERS."""
    kind = "cuda" if device.startswith("cuda") else "cpu"
    own = getattr(get_family(name), "bench_members", None) or {}
    return tuple(own.get(kind, DEFAULT_MEMBERS[kind]))


def describe_workload(cfg: ExperimentConfig) -> str:
    """The family's sentence for a member-episode of cfg (Benchmarked.describe_workload), else its θ size."""
    family = get_family(cfg.family)
    describe = getattr(family, "describe_workload", None)
    if callable(describe):
        return describe(cfg)
    return f"the {cfg.family} family's default config, θ of {theta_space(cfg).size} coordinates, {cfg.dtype}"


def member_theta(cfg: ExperimentConfig, members: int) -> torch.Tensor:
    """(N, R) candidates: the family's initial θ, each coordinate ±10 % per member (float64 on the CPU)."""
    start = theta_space(cfg).initial_tensor()
    noise = torch.randn(members, len(start), generator=make_generator(PURPOSE, "theta"), dtype=torch.float64)
    return start * (1 + 0.1 * noise)


def _score_call(problem, theta: torch.Tensor, batch, autograd: bool, record: list[float], grads: list[bool]):
    """A call of one ES generation (no graph) or one Adam step (scores, then backward of the summed loss)."""

    def call() -> None:
        if not autograd:
            with torch.no_grad():
                _, accuracy = problem.scores(theta, batch)
        else:
            leaf = theta.detach().clone().requires_grad_(True)
            loss, accuracy = problem.scores(leaf, batch)
            if not loss.requires_grad:
                raise CannotTime("its Problem.scores returned a meta-loss without a graph")
            loss.sum().backward()
            grads.append(bool(torch.isfinite(leaf.grad).all()))
        record.append(float(accuracy.detach().double().nanmean()))

    return call


def measure_family(case: FamilyCase) -> FamilyResult:
    """Time Problem.scores of N members on one task: a first call inside a peak-memory window, then timed
    calls until ≥ 2 reps (autograd: ≥ 1, the first counting when it alone took ≥ min_seconds) and ≥ min_seconds."""
    if case.threads > 0:
        torch.set_num_threads(case.threads)
    cfg, device = family_config(case), torch.device(case.device)
    if case.autograd and theta_space(cfg).no_gradient_reason:
        raise CannotTime(theta_space(cfg).no_gradient_reason)
    problem = get_family(cfg.family).build_problem(cfg, device)
    batch = problem.draw(0, PURPOSE, 1)
    theta = member_theta(cfg, case.members).to(device, problem.dtype)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    accuracies: list[float] = []
    grads: list[bool] = []
    call = _score_call(problem, theta, batch, case.autograd, accuracies, grads)
    baseline = reset_peak(device) if case.memory else math.nan
    first = timed_call(call, sync)
    mib = read_peak(device) - baseline if case.memory else math.nan
    times = [first] if case.autograd and first >= case.min_seconds else \
        time_calls(call, case.min_seconds, sync, min_reps=1 if case.autograd else 2, warmed=True)
    median, best = statistics.median(times), min(times)
    return FamilyResult(case, len(times), median, best, case.members / median, case.members / best, accuracies[-1],
                        mib, "CUDA allocator" if device.type == "cuda" else "peak RSS",
                        all(grads) if case.autograd else None)

