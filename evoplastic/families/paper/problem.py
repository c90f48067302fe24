"""The paper's problem: score θ by the query cross-entropy of networks that learned T tasks online.

Every candidate of a step sees the same T tasks and the same initial W and B (common random
numbers), derived from (run seed, step); the shared fitness reduction (core.fitness) adds λ‖θ‖₁.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from evoplastic.config import ExperimentConfig
from evoplastic.core.batching import EpisodeBatch, score_in_member_chunks
from evoplastic.core.fitness import free_memory, members_that_fit, resolve_device
from evoplastic.families.paper.config import augment_levels
from evoplastic.families.paper.fused import FusedOptions, compile_fallbacks, kernel_calls, resolve_kernel
from evoplastic.families.paper.inner import records_graph, run_episode
from evoplastic.families.paper.metrics import mean_alignment_angles, orthonormality_errors
from evoplastic.families.paper.network import init_network, make_activation, n_weights, seeded_noise
from evoplastic.families.paper.space import RuleSpace
from evoplastic.families.paper.tasks import MixtureSampler, TaskBatch, TaskSampler
from evoplastic.families.paper.transforms import augment_tasks, normalise_inputs
from evoplastic.precision import matmul_precision
from evoplastic.seeding import make_generator

PaperBatch = EpisodeBatch
"""The T tasks of a step (TaskBatch) and their initial networks (NetworkState: W, B)."""


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
            kernel=resolve_kernel(cfg.es.kernel, self.device))
        """False for the plain loop, else how the compiled loop runs (run_episode's compiled): es.kernel=auto is
        the C++ single pass on CPU, whose self-check and fallbacks to the Inductor step are fused.learn's."""

    def draw(self, step: int | str, purpose: str, n_tasks: int) -> PaperBatch:
        """The T tasks and initial networks of a step, rebuilt identically anywhere."""
        tasks = self.sampler.sample(n_tasks, make_generator(self.cfg.seed, purpose, "tasks", step))
        tasks = self._input_statistics(tasks, make_generator(self.cfg.seed, purpose, "augment", step))
        init = init_network(self.cfg.network, n_tasks, make_generator(self.cfg.seed, purpose, "init", step), self.dtype)
        noise_seed = int(torch.randint(2**62, (1,), generator=make_generator(self.cfg.seed, purpose, "noise", step)))
        return PaperBatch(tasks.to(self.device, self.dtype), init.map(lambda t: t.to(self.device)), noise_seed)

    def _input_statistics(self, tasks: TaskBatch, generator: torch.Generator) -> TaskBatch:
        """Tasks after the config's intensity augmentation (one transform per task) and input normalisation."""
        net = self.cfg.network
        if not self.cfg.task.augment and net.input_norm == "none":
            return tasks
        train_x, query_x = tasks.train_x, tasks.query_x
        if self.cfg.task.augment:
            train_x, query_x = augment_tasks(train_x, query_x, generator, augment_levels(self.cfg.task.augment))
        if net.input_norm != "none":
            train_x = normalise_inputs(train_x, net.input_norm, net.input_norm_scale)
            query_x = normalise_inputs(query_x, net.input_norm, net.input_norm_scale)
        return replace(tasks, train_x=train_x, query_x=query_x)

    def scores(self, theta: torch.Tensor, batch: PaperBatch, chunk: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and accuracy (P, T) of P candidates on each task, in chunks of members.

        chunk: members per inner-loop call; 0 for as many as fit in MEMORY_FRACTION of the free memory
        (and, for the plain loop on CPU, whose weights fit in CPU_CACHE_BYTES).
        """
        tasks, init, n_tasks = batch.tasks, batch.init, batch.n_tasks
        chunk = chunk or self.auto_chunk(n_tasks, tasks.train_x.shape[1], records_graph(theta))

        def score_chunk(part: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor]:
            pairs = part.repeat_interleave(n_tasks, 0)  # pair p·T + t: candidate p on task t
            result = run_episode(pairs, self.space, tasks, init, self.activation, compiled=self.fused,
                                 generator=batch.noise(start, self.device) if self.activation.noise else None)
            return result.loss, result.accuracy

        with matmul_precision(self.cfg.es.precision, self.device):
            return score_in_member_chunks(theta, n_tasks, chunk, score_chunk)

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
        """What the run record should keep about how this process computed: compiled steps it refused, and
        those that ran (fused.FusedOptions.label)."""
        if not self.fused:
            return {}
        return {"compiled_fallbacks": compile_fallbacks(), "compiled_kernels": sorted(kernel_calls())}

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
