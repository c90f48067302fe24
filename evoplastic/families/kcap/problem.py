"""The k-cap family's problem: score θ by what an unsupervised k-cap RNN's latents are worth after S samples.

A step's T tasks and initial networks come from (run seed, purpose, step), so any process
rebuilds them; member p on task t is pair p·T + t. Without a graph (ES) the meta-loss is
kcap.objective (probe loss, probe error, read-out MSE or EMD) after the whole stream; under
autograd (outer=adam) it is the paper's one-step look-ahead autoencoding loss through the rule
with a straight-through k-cap, the paper's own outer loop (baselines.lookahead_loss).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from evoplastic.config import ExperimentConfig
from evoplastic.core.batching import score_in_member_chunks
from evoplastic.core.fitness import resolve_device
from evoplastic.families.kcap.baselines import lookahead_loss, untrained_scores
from evoplastic.families.kcap.data import KcapTasks, sample_tasks
from evoplastic.families.kcap.metrics import objective, raw_scores, score
from evoplastic.families.kcap.network import KcapState, init_state
from evoplastic.families.kcap.rules import initial_theta
from evoplastic.seeding import make_generator

DIAGNOSTIC_TASKS = 4
"""Fresh tasks the periodic diagnostics (EMD, read-out MSE, probe loss) are measured on."""


@dataclass
class KcapBatch:
    """The T tasks of a step and their initial networks (M_in, M_rec, M_out)."""

    tasks: KcapTasks
    init: KcapState

    @property
    def n_tasks(self) -> int:
        return self.tasks.n_tasks

    def subset(self, part: slice) -> KcapBatch:
        """Tasks ``part`` as fresh tensors, so a block never depends on where it sat in the full batch."""
        return KcapBatch(self.tasks.map(lambda t: t[part].clone()), self.init.map(lambda m: m[part].clone()))


class KcapProblem:
    """Scores candidate θ (P, R) of the k-cap family on the tasks of a step."""

    def __init__(self, cfg: ExperimentConfig, device: torch.device | None = None):
        self.cfg, self.kcap = cfg, cfg.kcap
        self.device = device or resolve_device(cfg.device)
        self.dtype = getattr(torch, cfg.dtype)

    def draw(self, step: int | str, purpose: str, n_tasks: int) -> KcapBatch:
        """The T tasks and initial networks of a step, rebuilt identically anywhere."""
        tasks = sample_tasks(self.kcap, n_tasks, make_generator(self.cfg.seed, purpose, "tasks", step))
        init = init_state(self.kcap, n_tasks, make_generator(self.cfg.seed, purpose, "init", step), self.dtype)
        return KcapBatch(tasks.to(self.device, self.dtype), init.map(lambda m: m.to(self.device)))

    def scores(self, theta: torch.Tensor, batch: KcapBatch, chunk: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Meta-loss and probe accuracy (P, T) of P candidates on each task, chunk members per call (0: all)."""
        if theta.requires_grad and torch.is_grad_enabled():
            return self._lookahead_scores(theta, batch)

        def score_chunk(part: torch.Tensor, _: int) -> tuple[torch.Tensor, torch.Tensor]:
            result = self.pair_scores(part, batch, with_emd=self.kcap.objective == "emd")
            return objective(result, self.kcap), result["probe_accuracy"]

        return score_in_member_chunks(theta, batch.n_tasks, chunk, score_chunk)

    def pair_scores(self, theta: torch.Tensor, batch: KcapBatch, with_emd: bool = True) -> dict[str, torch.Tensor]:
        """Every score (P·T,) of P candidates on T tasks (pair p·T + t), without a graph."""
        pairs = theta.repeat_interleave(batch.n_tasks, 0)
        with torch.no_grad():
            return score(pairs, batch.tasks, batch.init, self.kcap, with_emd)

    def _lookahead_scores(self, theta: torch.Tensor, batch: KcapBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """The paper's differentiable meta-loss for one θ (1, R), and its probe accuracy after the stream."""
        if theta.shape[0] != 1:
            raise ValueError(f"the look-ahead (Adam) loss scores one candidate at a time, got {theta.shape[0]}")
        loss = lookahead_loss(theta, batch.tasks, batch.init, self.kcap)
        accuracy = self.pair_scores(theta.detach(), batch, with_emd=False)["probe_accuracy"]
        return loss.expand(1, batch.n_tasks), accuracy.view(1, -1)

    def diagnostics(self, theta: torch.Tensor, step: int | str) -> dict[str, float]:
        """Probe loss, read-out MSE and latent-geometry EMD of the centre θ (R,) on a few fresh tasks."""
        batch = self.draw(step, "diagnostics", DIAGNOSTIC_TASKS)
        result = self.pair_scores(theta.to(self.device, self.dtype).unsqueeze(0), batch, with_emd=True)
        start = self.pair_scores(initial_theta(self.kcap, self.dtype).to(self.device).unsqueeze(0), batch, False)
        with torch.no_grad():
            untrained = untrained_scores(batch.tasks, batch.init, self.kcap, with_emd=False)
            raw = raw_scores(batch.tasks, self.kcap, with_emd=False)
        references = {"start rule": start, "untrained network": untrained, "raw input": raw}
        return {f"eval/{key}": float(value.double().nanmean()) for key, value in result.items()} | {
            f"eval/reference/{name}": float(scores["probe_accuracy"].double().nanmean())
            for name, scores in references.items()}

    def run_notes(self) -> dict[str, list[str]]:
        return {}
