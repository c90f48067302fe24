"""The interface the training loop sees: one step of an outer optimiser over θ.

ES asks for a population's losses, Adam for one candidate's differentiable loss; both
get the same ``evaluate`` callable and the loop does not branch on which one it has.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch

from evoplastic.core.fitness import Evaluation

Evaluate = Callable[[torch.Tensor], Evaluation]
"""Maps (P, R) candidates θ in paper units to their Evaluation on the current step's tasks."""


class OuterLoop(Protocol):
    """One outer optimiser; its state_dict is the whole checkpoint of the search."""

    needs_grad: bool

    def step(self, evaluate: Evaluate) -> dict[str, Any]:
        """Run one generation/episode; return metrics keyed 'group/name'."""

    def center(self) -> torch.Tensor:
        """The current best estimate of θ, (R,) float64 in the family's units."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

