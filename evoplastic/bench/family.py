"""Member-episodes/s of a network family's batched no-grad episode, timed through its Problem (the ES path).

``evoplastic bench`` times the k-cap family this way beside the paper's rows: the family's
Problem draws one task and its initial network, and N candidates θ (the family's initial θ,
±10 % per member) score it in one ``Problem.scores`` call without a graph, as one ES
generation does. Nothing here reaches into a family's modules: only families.get_family and
the Problem protocol of core.family.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch

from evoplastic.bench.inner import time_calls
from evoplastic.config import ExperimentConfig, load_config
from evoplastic.families import get_family, theta_space
from evoplastic.seeding import make_generator

PURPOSE = "bench"
"""Random-stream key of the timed task and the members' θ."""


@dataclass(frozen=True)
class FamilyCase:
    """One timed setting: a family's default config (plus overrides) with N members on one task."""

    family: str
    members: int
    device: str
    min_seconds: float
    threads: int
    overrides: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, values: dict) -> FamilyCase:
        return cls(**{**values, "overrides": tuple(values.get("overrides", ()))})


@dataclass
class FamilyResult:
    """Seconds per Problem.scores call of N members and the member-episodes/s they give."""

    case: FamilyCase
    reps: int
    seconds_median: float
    seconds_best: float
    rate_median: float
    rate_best: float
    accuracy: float
    """Mean accuracy the family reports for the N members (k-cap: probe accuracy on the query points)."""

    @classmethod
    def from_dict(cls, values: dict) -> FamilyResult:
        return cls(**{**values, "case": FamilyCase.from_dict(values["case"])})


def family_config(case: FamilyCase) -> ExperimentConfig:
    """The family's default experiment in float32 on the case's device, with the case's overrides."""
    return load_config(None, [f"family={case.family}", f"device={case.device}", "dtype=float32", *case.overrides])


def member_theta(cfg: ExperimentConfig, members: int) -> torch.Tensor:
    """(N, R) candidates: the family's initial θ, each coordinate ±10 % per member (float64 on the CPU)."""
    start = theta_space(cfg).initial_tensor()
    noise = torch.randn(members, len(start), generator=make_generator(PURPOSE, "theta"), dtype=torch.float64)
    return start * (1 + 0.1 * noise)


def measure_family(case: FamilyCase) -> FamilyResult:
    """Time Problem.scores of N members on one task: warm-up once, then ≥ 2 reps and ≥ min_seconds."""
    if case.threads > 0:
        torch.set_num_threads(case.threads)
    cfg, device = family_config(case), torch.device(case.device)
    problem = get_family(cfg.family).build_problem(cfg, device)
    batch = problem.draw(0, PURPOSE, 1)
    theta = member_theta(cfg, case.members).to(device, problem.dtype)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    accuracies: list[float] = []

    def call() -> None:
        with torch.no_grad():
            _, accuracy = problem.scores(theta, batch)
        accuracies.append(float(accuracy.double().nanmean()))

    times = time_calls(call, case.min_seconds, sync)
    median, best = statistics.median(times), min(times)
    return FamilyResult(case, len(times), median, best, case.members / median, case.members / best, accuracies[-1])


def kcap_workload(cfg: ExperimentConfig) -> dict:
    """What one k-cap member-episode is (m, k, S, T, …), for the report and its JSON."""
    k = cfg.kcap
    return {"m": k.n_hidden, "k": k.cap, "S": k.n_unlabelled, "T": k.recurrent_steps, "n": k.n_features,
            "rule": k.rule, "theta_size": theta_space(cfg).size, "normalise": k.normalise,
            "plastic": list(k.plastic), "labels_per_class": k.labels_per_class, "query_points": 2 * k.n_query,
            "objective": k.objective, "emd": k.objective == "emd", "dtype": cfg.dtype}


def describe_kcap_workload(work: dict) -> str:
    """One sentence of kcap_workload."""
    return (f"m={work['m']} units, k={work['k']} active, S={work['S']} unlabelled samples streamed once, "
            f"T={work['T']} recurrent steps, n={work['n']} inputs; {work['rule']} rule ({work['theta_size']} θ) on "
            f"{'+'.join(work['plastic'])}, {work['normalise']} normalisation; scored by the ridge probe "
            f"({work['labels_per_class']} labels per class) and read-out on {work['query_points']} query points"
            f"{'' if work['emd'] else ', no EMD'} (objective {work['objective']}); {work['dtype']}, one task shared "
            f"by the N members")
