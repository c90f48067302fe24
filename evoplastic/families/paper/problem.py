"""The paper's problem: score θ by the query cross-entropy of networks that learned T tasks online.

Every candidate of a step sees the same T tasks and the same initial W and B (common random
numbers), derived from (run seed, step); the shared fitness reduction (core.fitness) adds λ‖θ‖₁.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from evoplastic.config import ExperimentConfig
from evoplastic.core.fitness import free_memory, members_that_fit, resolve_device
from evoplastic.families.paper.fused import FusedOptions, compile_fallbacks
from evoplastic.families.paper.inner import records_graph, run_episode
from evoplastic.families.paper.metrics import mean_alignment_angles, orthonormality_errors
from evoplastic.families.paper.network import NetworkState, init_network, make_activation, n_weights, seeded_noise
from evoplastic.families.paper.space import RuleSpace
from evoplastic.families.paper.tasks import MixtureSampler, TaskBatch, TaskSampler
from evoplastic.precision import matmul_precision
from evoplastic.seeding import make_generator


@dataclass
class PaperBatch:
    """The T tasks of a step and their initial networks (W, B)."""

    tasks: TaskBatch
    init: NetworkState
    noise_seed: int = 0
    """Seed of what stochastic units draw in this step's episodes (from the seed, purpose and step)."""

    @property
    def n_tasks(self) -> int:
        return self.tasks.n_tasks

    def subset(self, part: slice) -> PaperBatch:
        """Tasks ``part`` as fresh tensors, so a block never depends on where it sat in the full batch."""
        return PaperBatch(self.tasks.map(lambda t: t[part].clone()), self.init.map(lambda t: t[part].clone()),
                          self.noise_seed)

    def noise(self, first_member: int, device: torch.device) -> torch.Generator:
        """The generator stochastic units draw from for the members from first_member on."""
        return torch.Generator(device).manual_seed((self.noise_seed + first_member) % 2**63)


CPU_CACHE_BYTES = 8 * 2**20
"""Weights per call of the plain (eager) loop on CPU when es.member_chunk is 0: beyond the
cache it runs slower per member (paper network, `evoplastic bench`: 19.4 member-episodes/s at
8 pairs per call, 12.1 at 32; an ES generation of 16 members × 2 tasks: 3.0 s in chunks of 5
members vs 3.6 s at once, two other jobs running), while small networks batch whole populations."""


def weight_bytes(dims: tuple[int, ...], dtype: torch.dtype) -> int:
    """Bytes of one network's plastic weights W."""
    return n_weights(dims) * torch.finfo(dtype).bits // 8


def bytes_per_pair(dims: tuple[int, ...], dtype: torch.dtype, steps: int, autograd: bool) -> int:
    """Memory one (θ, task) pair needs in an episode, with margin: 3 copies of W without graph
    (adapted, working, a temporary), 3 per online step when autograd keeps the unrolled graph."""
    return weight_bytes(dims, dtype) * (3 * steps + 3 if autograd else 3)


def members_in_cache(pair_weight_bytes: int, n_tasks: int) -> int:
    """Members (each with n_tasks pairs) whose weights fit in CPU_CACHE_BYTES; at least one."""
    return max(1, CPU_CACHE_BYTES // (pair_weight_bytes * n_tasks))


def check_compatible(cfg: ExperimentConfig, sampler: TaskSampler | MixtureSampler) -> None:
    """The network must take every dataset's pixels and have an output for every label."""
    dims = cfg.network.dims
    for part in sampler.samplers:
        pixels = part.dataset.n_features
        if dims[0] != pixels:
            raise ValueError(f"{part.dataset.name} images have {pixels} pixels but network.dims starts with "
                             f"{dims[0]}; set network.dims[0] = {pixels}")
        top = cfg.task.n_way - 1 if cfg.task.relabel else max(part.classes)
        if top >= dims[-1]:
            raise ValueError(f"label {top} of {part.dataset.name} does not fit {dims[-1]} output units; set "
                             f"network.dims[-1] ≥ {top + 1} or task.relabel=true")


class PaperProblem:
    """Scores candidate θ (paper units, searched terms only): online learning of T tasks, query cross-entropy."""

    def __init__(self, cfg: ExperimentConfig, sampler: TaskSampler | MixtureSampler,
                 device: torch.device | None = None):
        check_compatible(cfg, sampler)
        self.cfg = cfg
        self.sampler = sampler
        self.space = RuleSpace.from_config(cfg)
        self.activation = make_activation(cfg.network)
        self.device = device or resolve_device(cfg.device)
        self.dtype = getattr(torch, cfg.dtype)
        self.fused = cfg.es.compile and FusedOptions.for_precision(
            cfg.es.precision, cuda_graph=cfg.es.cuda_graph and self.device.type == "cuda",
            kernel=cfg.es.kernel if self.device.type == "cuda" else "inductor")
        """False for the plain loop, else how the compiled loop runs (run_episode's compiled)."""

    def draw(self, step: int | str, purpose: str, n_tasks: int) -> PaperBatch:
        """The T tasks and initial networks of a step, rebuilt identically anywhere."""
        tasks = self.sampler.sample(n_tasks, make_generator(self.cfg.seed, purpose, "tasks", step))
        init = init_network(self.cfg.network, n_tasks, make_generator(self.cfg.seed, purpose, "init", step), self.dtype)
        noise_seed = int(torch.randint(2**62, (1,), generator=make_generator(self.cfg.seed, purpose, "noise", step)))
        return PaperBatch(tasks.to(self.device, self.dtype), init.map(lambda t: t.to(self.device)), noise_seed)

    def scores(self, theta: torch.Tensor, batch: PaperBatch, chunk: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and accuracy (P, T) of P candidates on each task, in chunks of members.

        chunk: members per inner-loop call; 0 for as many as fit in MEMORY_FRACTION of the free memory
        (and, for the plain loop on CPU, whose weights fit in CPU_CACHE_BYTES).
        """
        tasks, init, n_tasks = batch.tasks, batch.init, batch.n_tasks
        chunk = chunk or self.auto_chunk(n_tasks, tasks.train_x.shape[1], records_graph(theta))
        chunk = min(chunk or theta.shape[0], theta.shape[0])
        losses, accs = [], []
        with matmul_precision(self.cfg.es.precision, self.device):
            for start in range(0, theta.shape[0], chunk):
                part = theta[start: start + chunk]
                pairs = part.repeat_interleave(n_tasks, 0)  # pair p·T + t: candidate p on task t
                result = run_episode(pairs, self.space, tasks, init, self.activation, compiled=self.fused,
                                     generator=batch.noise(start, self.device) if self.activation.noise else None)
                losses.append(result.loss.view(-1, n_tasks))
                accs.append(result.accuracy.view(-1, n_tasks))
        return torch.cat(losses), torch.cat(accs)

    def auto_chunk(self, n_tasks: int, steps: int, autograd: bool) -> int:
        """Members per inner-loop call: what fits in memory now, and in cache for the plain CPU loop (0: no limit)."""
        copies = 2 if self.space.feedback_terms else 1  # plastic feedback: every pair has its own B as well
        pair = copies * bytes_per_pair(self.cfg.network.dims, self.dtype, steps, autograd)
        chunk = members_that_fit(free_memory(self.device), pair, n_tasks)
        if self.device.type == "cpu" and not self.fused and not autograd:
            in_cache = members_in_cache(copies * weight_bytes(self.cfg.network.dims, self.dtype), n_tasks)
            chunk = min(chunk, in_cache) if chunk else in_cache
        return chunk

    def run_notes(self) -> dict[str, list[str]]:
        """What the run record should keep about how this process computed: compiled steps it refused."""
        return {"compiled_fallbacks": compile_fallbacks()} if self.fused else {}

    def diagnostics(self, theta: torch.Tensor, step: int | str, n_tasks: int = 4) -> dict[str, list[float]]:
        """Alignment angles and orthonormality errors per hidden layer after learning with θ (R,).

        Measured on the query images of n_tasks fresh tasks, with the adapted weights (and the adapted
        feedback when it is plastic).
        """
        batch = self.draw(step, "diagnostics", n_tasks)
        tasks, init = batch.tasks, batch.init
        theta = theta.to(self.device, self.dtype).unsqueeze(0).repeat(n_tasks, 1)
        noise = batch.noise(0, self.device) if self.activation.noise else None
        with torch.no_grad(), seeded_noise(self.activation, noise):  # the metrics' forward passes draw too
            result = run_episode(theta, self.space, tasks, init, self.activation, generator=noise)
            weights, feedback = result.weights, result.feedback or init.feedback
            target = F.one_hot(tasks.query_y, weights[-1].shape[1]).to(self.dtype)
            angles = mean_alignment_angles(weights, feedback, tasks.query_x, target, self.activation,
                                           init.direct)
            ortho = torch.stack([orthonormality_errors(weights, tasks.query_x[:, q], self.activation)
                                 for q in range(tasks.query_x.shape[1])], 1).mean(1)
        return {"eval/alignment": angles.nanmean(0).tolist(), "eval/orthonormality": ortho.mean(0).tolist()}
