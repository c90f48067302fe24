"""Seeded two-class 2-D tasks (moons, circles, blobs), standardised and randomly projected to n dims.

The generators are written in torch (same shapes as scikit-learn's make_moons, make_circles and
make_blobs) so that one torch.Generator fixes everything; unlike scikit-learn the angle t is drawn
uniformly rather than on a grid, so every point is an independent draw. Sampling runs in float64 on
the CPU; ``KcapTasks.to`` moves and casts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import torch

from evoplastic.families.kcap.config import DATASETS, KcapConfig

BLOB_CENTRE = 2.0
"""The two blobs sit at (±BLOB_CENTRE, 0) before noise and standardising."""


@dataclass
class KcapTasks:
    """T tasks: an unlabelled stream, L labelled samples per class, and a query set with its 2-D truth."""

    unlabelled: torch.Tensor
    """(T, S, n) inputs streamed once to the inner loop, classes drawn with probability 1/2 each."""
    labelled_x: torch.Tensor
    """(T, 2L, n) inputs the probe is fit on: L of class 0, then L of class 1."""
    labelled_y: torch.Tensor
    """(T, 2L) int64 labels of labelled_x."""
    query_x: torch.Tensor
    """(T, Q, n) scored inputs, Q = 2·n_query: n_query of class 0, then of class 1."""
    query_y: torch.Tensor
    """(T, Q) int64 labels of query_x."""
    query_points: torch.Tensor
    """(T, Q, 2) the standardised 2-D points behind query_x (the truth for the EMD)."""
    dataset: torch.Tensor
    """(T,) int64 index into config.DATASETS of each task's generator."""

    @property
    def n_tasks(self) -> int:
        return self.unlabelled.shape[0]

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> KcapTasks:
        """Moved to device; inputs and points cast to dtype, labels and ids kept int64."""
        return KcapTasks(
            self.unlabelled.to(device, dtype), self.labelled_x.to(device, dtype), self.labelled_y.to(device),
            self.query_x.to(device, dtype), self.query_y.to(device), self.query_points.to(device, dtype),
            self.dataset.to(device),
        )

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> KcapTasks:
        """The same tasks with fn applied to every tensor (slicing, cloning)."""
        return KcapTasks(*(fn(getattr(self, f.name)) for f in fields(self)))

    def subset(self, index: torch.Tensor | list[int] | slice) -> KcapTasks:
        """The tasks selected by index along the task axis (kept 3-D even for one task)."""
        if isinstance(index, list):
            index = torch.tensor(index, dtype=torch.long)
        return self.map(lambda t: t[index])


def _moons(labels: torch.Tensor, cfg: KcapConfig, generator: torch.Generator) -> torch.Tensor:
    """Class 0 the upper arc (cos t, sin t), class 1 the lower (1 - cos t, 0.5 - sin t), t ~ U[0, π]."""
    t = torch.rand(len(labels), generator=generator, dtype=torch.float64) * math.pi
    upper = torch.stack([torch.cos(t), torch.sin(t)], 1)
    lower = torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], 1)
    points = torch.where(labels.unsqueeze(1) == 0, upper, lower)
    return points + cfg.moons_noise * torch.randn(points.shape, generator=generator, dtype=torch.float64)


def _circles(labels: torch.Tensor, cfg: KcapConfig, generator: torch.Generator) -> torch.Tensor:
    """Class 0 the unit circle, class 1 the circle of radius circles_factor, angle ~ U[0, 2π)."""
    t = torch.rand(len(labels), generator=generator, dtype=torch.float64) * (2 * math.pi)
    radius = torch.where(labels == 0, 1.0, cfg.circles_factor).to(torch.float64)
    points = radius.unsqueeze(1) * torch.stack([torch.cos(t), torch.sin(t)], 1)
    return points + cfg.circles_noise * torch.randn(points.shape, generator=generator, dtype=torch.float64)


def _blobs(labels: torch.Tensor, cfg: KcapConfig, generator: torch.Generator) -> torch.Tensor:
    """Isotropic Gaussians of std blobs_std around (-BLOB_CENTRE, 0) (class 0) and (+BLOB_CENTRE, 0)."""
    centre = torch.zeros(len(labels), 2, dtype=torch.float64)
    centre[:, 0] = BLOB_CENTRE * (2 * labels.to(torch.float64) - 1)
    return centre + cfg.blobs_std * torch.randn(centre.shape, generator=generator, dtype=torch.float64)


GENERATORS = {"moons": _moons, "circles": _circles, "blobs": _blobs}
"""2-D point generators by name: (labels (B,), cfg, generator) -> points (B, 2) float64."""


def standardise(points: torch.Tensor) -> torch.Tensor:
    """Zero mean and unit variance per coordinate over the points (B, 2) of one task."""
    return (points - points.mean(0)) / points.std(0, unbiased=False).clamp_min(1e-12)


def random_projection(n_features: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 2) matrix with i.i.d. N(0, 1/2) entries: each projected coordinate has unit variance on average."""
    return torch.randn(n_features, 2, generator=generator, dtype=torch.float64) * math.sqrt(0.5)


def task_labels(cfg: KcapConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Labels of the stream (fair coin each), of the labelled set and of the query set (class-sorted)."""
    stream = torch.randint(2, (cfg.n_unlabelled,), generator=generator)
    labelled = torch.arange(2).repeat_interleave(cfg.labels_per_class)
    query = torch.arange(2).repeat_interleave(cfg.n_query)
    return stream, labelled, query


def sample_task(name: str, cfg: KcapConfig, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """One task: stream x, labelled x and y, query x and y, standardised query points (float64)."""
    stream_y, labelled_y, query_y = task_labels(cfg, generator)
    labels = torch.cat([stream_y, labelled_y, query_y])
    points = standardise(GENERATORS[name](labels, cfg, generator))
    inputs = points @ random_projection(cfg.n_features, generator).T
    s, b = cfg.n_unlabelled, cfg.n_unlabelled + len(labelled_y)
    return inputs[:s], inputs[s:b], labelled_y, inputs[b:], query_y, points[b:]


def sample_tasks(cfg: KcapConfig, n_tasks: int, generator: torch.Generator) -> KcapTasks:
    """n_tasks tasks, deterministic for the generator's state (float64, CPU).

    Task i uses cfg.datasets[(offset + i) mod D] with offset drawn uniformly: every batch is as
    balanced over the datasets as its size allows, and every dataset can appear at any n_tasks.
    """
    offset = int(torch.randint(len(cfg.datasets), (1,), generator=generator))
    names = [cfg.datasets[(offset + i) % len(cfg.datasets)] for i in range(n_tasks)]
    parts = [sample_task(name, cfg, generator) for name in names]
    stacked = [torch.stack(column) for column in zip(*parts)]
    ids = torch.tensor([DATASETS.index(name) for name in names], dtype=torch.long)
    return KcapTasks(*stacked, ids)
