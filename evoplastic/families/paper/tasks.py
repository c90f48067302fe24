"""Few-shot online tasks: M classes, K training images each (shuffled), Q query images each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from evoplastic.families.paper.config import TaskConfig
from evoplastic.families.paper.data import Dataset


@dataclass
class TaskBatch:
    """T tasks as tensors: train stream (T, S, D) with S = M·K, query set (T, Q·M, D)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    classes: torch.Tensor
    """(T, M) dataset class ids of each task, in label order when relabelled."""

    @property
    def n_tasks(self) -> int:
        return self.train_x.shape[0]

    @classmethod
    def cat(cls, batches: list[TaskBatch]) -> TaskBatch:
        """The tasks of several batches in order (their tensors concatenated along the task axis)."""
        fields = ("train_x", "train_y", "query_x", "query_y", "classes")
        return cls(*(torch.cat([getattr(b, f) for b in batches]) for f in fields))

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> TaskBatch:
        """The same tasks with fn applied to every tensor (slicing, cloning)."""
        return TaskBatch(*(fn(t) for t in (self.train_x, self.train_y, self.query_x, self.query_y, self.classes)))

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> TaskBatch:
        return TaskBatch(
            self.train_x.to(device, dtype), self.train_y.to(device),
            self.query_x.to(device, dtype), self.query_y.to(device), self.classes.to(device),
        )


class TaskSampler:
    """Draws seeded M-way tasks from a dataset, optionally from a subset of its classes."""

    def __init__(self, dataset: Dataset, cfg: TaskConfig):
        self.dataset, self.cfg = dataset, cfg
        present = torch.unique(dataset.labels).tolist()
        classes = list(cfg.classes) if cfg.classes else present
        missing = sorted(set(classes) - set(present))
        if missing:
            raise ValueError(f"task.classes {missing} do not occur in dataset {dataset.name} (it has {present})")
        if len(classes) < cfg.n_way:
            raise ValueError(
                f"n_way={cfg.n_way} needs at least that many classes, but only {len(classes)} are "
                f"available ({classes}); lower task.n_way or widen task.classes"
            )
        need = cfg.k_shot + cfg.n_query
        self.by_class = {}
        for c in classes:
            idx = torch.nonzero(dataset.labels == c).squeeze(1)
            if len(idx) < need:
                raise ValueError(
                    f"class {c} of {dataset.name} has {len(idx)} images but k_shot + n_query = {need}; "
                    f"lower task.k_shot/task.n_query or drop the class from task.classes"
                )
            self.by_class[c] = idx
        self.classes = classes

    @property
    def samplers(self) -> tuple[TaskSampler, ...]:
        """The single-dataset samplers behind this one: itself."""
        return (self,)

    def _draw_classes(self, generator: torch.Generator) -> torch.Tensor:
        n = len(self.classes)
        if self.cfg.class_replacement:  # the published code's behaviour, for comparison only
            return torch.randint(n, (self.cfg.n_way,), generator=generator)
        return torch.randperm(n, generator=generator)[: self.cfg.n_way]

    def sample(self, n_tasks: int, generator: torch.Generator) -> TaskBatch:
        """T tasks; classes drawn without replacement (unless configured), the stream shuffled."""
        cfg = self.cfg
        tx, ty, qx, qy, cls = [], [], [], [], []
        for _ in range(n_tasks):
            chosen = [self.classes[i] for i in self._draw_classes(generator)]
            train_idx, query_idx, train_lab, query_lab = [], [], [], []
            picks: dict[int, torch.Tensor] = {}
            for label, c in enumerate(chosen):
                pool = self.by_class[c]
                if c not in picks:  # a repeated class (class_replacement) repeats its images
                    picks[c] = pool[torch.randperm(len(pool), generator=generator)[: cfg.k_shot + cfg.n_query]]
                pick = picks[c]
                target = label if cfg.relabel else c
                train_idx.append(pick[: cfg.k_shot])
                query_idx.append(pick[cfg.k_shot:])
                train_lab += [target] * cfg.k_shot
                query_lab += [target] * cfg.n_query
            train_idx = torch.cat(train_idx)
            order = torch.randperm(len(train_idx), generator=generator)
            tx.append(self.dataset.images[train_idx[order]])
            ty.append(torch.tensor(train_lab)[order])
            qx.append(self.dataset.images[torch.cat(query_idx)])
            qy.append(torch.tensor(query_lab))
            cls.append(torch.tensor(chosen))
        return TaskBatch(torch.stack(tx), torch.stack(ty), torch.stack(qx), torch.stack(qy), torch.stack(cls))


class MixtureSampler:
    """Draws each task from one of several datasets' samplers, picked with the configured weights.

    Seeded like TaskSampler: the same generator gives the same datasets, classes and images.
    """

    def __init__(self, samplers: list[TaskSampler], weights: tuple[float, ...] = ()):
        if not samplers:
            raise ValueError("a task mixture needs at least one dataset")
        sizes = {s.dataset.n_features for s in samplers}
        if len(sizes) > 1:
            names = ", ".join(f"{s.dataset.name} ({s.dataset.n_features} pixels)" for s in samplers)
            raise ValueError(f"task.mixture datasets must have images of one size, got {names}")
        self.samplers = tuple(samplers)
        self.weights = torch.tensor(weights or [1.0] * len(samplers), dtype=torch.float64)

    def sample(self, n_tasks: int, generator: torch.Generator) -> TaskBatch:
        """T tasks, task t from dataset d_t ~ weights; a task's classes all come from its dataset."""
        picks = torch.multinomial(self.weights, n_tasks, replacement=True, generator=generator)
        return TaskBatch.cat([self.samplers[int(d)].sample(1, generator) for d in picks])
