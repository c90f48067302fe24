"""What every family's Problem shares: a step's tasks with their initial networks, and scoring in member chunks.

A family's task and network-state classes only need ``n_tasks`` (tasks) and ``map(fn)`` over their
tensors (both); the pairing of candidate p with task t is p·T + t everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class EpisodeBatch:
    """The T tasks of a step and their initial networks (the family's own tensor containers)."""

    tasks: Any
    init: Any
    noise_seed: int = 0
    """Seed of what stochastic units draw in this step's episodes (0 when the family draws none)."""

    @property
    def n_tasks(self) -> int:
        return self.tasks.n_tasks

    def subset(self, part: slice) -> EpisodeBatch:
        """Tasks ``part`` as fresh tensors, so a block never depends on where it sat in the full batch."""
        return type(self)(self.tasks.map(lambda t: t[part].clone()), self.init.map(lambda t: t[part].clone()),
                          self.noise_seed)

    def noise(self, first_member: int, device: torch.device) -> torch.Generator:
        """The generator stochastic units draw from for the members from first_member on."""
        return torch.Generator(device).manual_seed((self.noise_seed + first_member) % 2**63)


ChunkScorer = Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]
"""(members θ (c, R), index of the first) -> loss and accuracy (c·T,) of every pair, candidate-major."""


def score_in_member_chunks(theta: torch.Tensor, n_tasks: int, chunk: int,
                           score_chunk: ChunkScorer) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, T) loss and accuracy of P candidates, scored chunk members at a time (0: all at once)."""
    chunk = min(chunk or theta.shape[0], theta.shape[0])
    losses, accs = [], []
    for start in range(0, theta.shape[0], chunk):
        loss, acc = score_chunk(theta[start: start + chunk], start)
        losses.append(loss.reshape(-1, n_tasks))
        accs.append(acc.reshape(-1, n_tasks))
    return torch.cat(losses), torch.cat(accs)
