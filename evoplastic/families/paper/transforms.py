"""Changes of input statistics: thinner or thicker strokes, contrast, inverted polarity, per-sample norms.

A stress set is a dataset passed through one transform at one level (``erode:2``, ``dilate:1``,
``contrast:0.3``, ``invert``), so that any rule can be scored on it beside bp on identical tasks.
The same transforms drawn at random per task make an intensity-augmented meta-training objective.
Images are flattened squares (n, side²) in [0, 1]; morphology uses a 3×3 neighbourhood per level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from evoplastic.families.paper.config import parse_transform


@dataclass(frozen=True)
class Transform:
    """One change of input statistics, e.g. Transform('erode', 2.0)."""

    name: str
    level: float = 1.0

    @classmethod
    def parse(cls, text: str) -> Transform:
        """'erode:2', 'contrast:0.5', 'invert' or 'none' -> a Transform; a ValueError naming the fix."""
        return cls(*parse_transform(text))

    def __str__(self) -> str:
        return self.name if self.name in ("invert", "none") else f"{self.name}:{self.level:g}"

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        """The transform of flattened square images (..., side²), same shape and dtype."""
        if self.name == "none":
            return images
        if self.name == "invert":
            return 1.0 - images
        if self.name == "contrast":
            return (images * self.level).clamp(0.0, 1.0)
        side = math.isqrt(images.shape[-1])
        if side * side != images.shape[-1]:
            raise ValueError(f"{self}: images of {images.shape[-1]} pixels are not square; erode/dilate need the "
                             f"side (e.g. 28×28)")
        grid = images.reshape(-1, 1, side, side)
        sign = 1.0 if self.name == "dilate" else -1.0  # erosion is a max filter of the negated image
        for _ in range(int(self.level)):
            grid = sign * F.max_pool2d(sign * grid, 3, stride=1, padding=1)
        return grid.reshape(images.shape)


def transformed(dataset, text: str):
    """The dataset with one transform applied to every image (its name kept, so that held-out classes are
    found as for the original)."""
    change = Transform.parse(text)
    return replace(dataset, images=change.apply(dataset.images), source=f"{dataset.source} ({change})")


def normalise_inputs(images: torch.Tensor, mode: str, scale: float = 10.0) -> torch.Tensor:
    """Per-sample normalisation of (..., d) images (INPUT_NORMS); unit: to L2 norm ``scale``."""
    if mode == "none":
        return images
    if mode == "unit":
        return images / images.norm(dim=-1, keepdim=True).clamp_min(1e-8) * scale
    mean, std = images.mean(-1, keepdim=True), images.std(-1, keepdim=True).clamp_min(1e-8)
    return (images - mean) / std


def augment_tasks(train_x: torch.Tensor, query_x: torch.Tensor, generator: torch.Generator,
                  levels: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each task's images (T, S, d) and (T, Q, d) through one transform drawn from levels (seeded)."""
    picks = torch.randint(len(levels), (train_x.shape[0],), generator=generator)
    changes = [Transform.parse(levels[int(i)]) for i in picks]
    train = torch.stack([c.apply(x) for c, x in zip(changes, train_x)])
    query = torch.stack([c.apply(x) for c, x in zip(changes, query_x)])
    return train, query
