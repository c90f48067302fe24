"""The paper's outer loop (Alg. 1): Adam on θ, backpropagating through the unrolled episode."""

from __future__ import annotations

import time
from typing import Any

import torch

from evoplastic.config import ExperimentConfig
from evoplastic.core.family import ThetaSpace
from evoplastic.outer.base import Evaluate


class NotDifferentiableError(ValueError):
    """The family's meta-loss cannot be differentiated for this config, so the Adam outer loop cannot use it."""


class AdamLoop:
    """One episode per step: meta-loss under autograd, one Adam update of θ."""

    needs_grad = True

    def __init__(self, cfg: ExperimentConfig, space: ThetaSpace):
        if space.no_gradient_reason:
            raise NotDifferentiableError(space.no_gradient_reason)
        self.scale = space.adam_scale_tensor()
        self.coords = torch.nn.Parameter(space.initial_tensor() / self.scale)
        self.optimizer = torch.optim.Adam([self.coords], lr=cfg.adam.lr)
        self.skipped = 0

    def center(self) -> torch.Tensor:
        return (self.coords.detach() * self.scale).clone()

    def step(self, evaluate: Evaluate) -> dict[str, Any]:
        start = time.perf_counter()
        self.optimizer.zero_grad()
        with torch.enable_grad():
            ev = evaluate((self.coords * self.scale).unsqueeze(0))
            meta_loss = ev.fitness[0]
            finite = bool(torch.isfinite(meta_loss))
            if finite:
                meta_loss.backward()
                finite = bool(torch.isfinite(self.coords.grad).all())
        if finite:
            self.optimizer.step()
        else:  # a NaN/inf meta-loss or gradient is counted and its update skipped
            self.skipped += 1
        return {
            "fitness/best": float(meta_loss.detach()),
            "train/loss": float(ev.loss.detach()[0]),
            "train/accuracy": float(ev.accuracy[0]),
            "theta/center": self.center().tolist(),
            "adam/skipped": self.skipped,
            "adam/grad_norm": float(self.coords.grad.norm()) if finite else float("nan"),
            "time/step_seconds": time.perf_counter() - start,
            "budget/episodes": ev.n_tasks,
        }

    def state_dict(self) -> dict[str, Any]:
        return {"coords": self.coords.detach().clone(), "optimizer": self.optimizer.state_dict(),
                "skipped": self.skipped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.coords.copy_(state["coords"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.skipped = state["skipped"]
