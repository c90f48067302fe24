"""The paper's Fig. 1 protocol: one long online stream, test accuracy against samples seen.

Every rule (and baseline) sees the same streams, initial weights and test images. Per-layer
coefficients and a plastic feedback rule learn as in training; alignment angles are measured
against the current feedback, so a plastic B's angle moves over the stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from evoplastic.core.fitness import resolve_device
from evoplastic.families.paper.config import TaskConfig
from evoplastic.families.paper.data import Dataset
from evoplastic.families.paper.inner import learn_sample, query_scores
from evoplastic.families.paper.metrics import mean_alignment_angles
from evoplastic.families.paper.network import init_network, make_activation
from evoplastic.families.paper.rules import split_theta
from evoplastic.families.paper.rulespec import Rule, evaluation_config, format_classes
from evoplastic.seeding import make_generator
from evoplastic.stats import mean_ci95

ALIGNMENT_SAMPLES = 20
"""Test images per checkpoint over which fa alignment angles are averaged."""


@dataclass
class Stream:
    """Samples of R independent online streams and a held-out test set, shared by every rule."""

    images: torch.Tensor
    """(n, D) every image of the dataset."""
    labels: torch.Tensor
    """(n,) targets: class ids, or 0..M-1 when relabelled."""
    order: torch.Tensor
    """(R, N) image indices of each stream, in presentation order."""
    test: torch.Tensor
    """(Q,) image indices of the test set (never in a stream)."""


def make_stream(dataset: Dataset, classes: tuple[int, ...], n_samples: int, test_size: int = 1000,
                repeats: int = 1, seed: int = 0, relabel: bool = False) -> Stream:
    """Hold out test_size images of the classes, then draw each stream from the rest (reshuffled epochs)."""
    if n_samples < 1 or repeats < 1 or test_size < 1:
        raise ValueError(f"--stream, --repeats and --test-size must be ≥ 1, got {n_samples}, {repeats}, {test_size}")
    missing = sorted(set(classes) - set(torch.unique(dataset.labels).tolist()))
    if missing:
        raise ValueError(f"classes {missing} do not occur in {dataset.name}")
    pool = torch.nonzero(torch.isin(dataset.labels, torch.tensor(classes))).squeeze(1)
    if test_size >= len(pool):
        raise ValueError(f"--test-size {test_size} leaves no training images: {dataset.name} has {len(pool)} "
                         f"images of classes {format_classes(classes)}")
    pool = pool[torch.randperm(len(pool), generator=make_generator(seed, "stream", "split"))]
    test, pool = pool[:test_size], pool[test_size:]
    orders = []
    for repeat in range(repeats):
        generator = make_generator(seed, "stream", "order", repeat)
        epochs = -(-n_samples // len(pool))  # a stream longer than the pool repeats images, reshuffled
        orders.append(torch.cat([pool[torch.randperm(len(pool), generator=generator)] for _ in range(epochs)]))
    labels = dataset.labels
    if relabel:
        table = torch.full((int(labels.max()) + 1,), -1, dtype=labels.dtype)
        table[torch.tensor(classes)] = torch.arange(len(classes), dtype=labels.dtype)
        labels = table[labels]
    return Stream(dataset.images, labels, torch.stack(orders)[:, :n_samples], test)


@dataclass
class StreamCurve:
    """Test accuracy of one rule against online samples seen."""

    rule: Rule
    samples: list[int]
    accuracy: torch.Tensor
    """(C, R) accuracy at each checkpoint for each stream."""
    alignment: torch.Tensor | None
    """(C, L-1) mean angle (degrees) of each hidden layer's error, through the feedback of that checkpoint,
    to backprop's; None for bp feedback."""

    def to_json(self) -> dict[str, Any]:
        acc = [mean_ci95(row) if len(row) > 1 else (float(row[0]), float("nan")) for row in self.accuracy]
        return {"label": self.rule.label, "terms": list(self.rule.terms), "theta": list(self.rule.theta),
                "labels": list(self.rule.space.labels()), "feedback": self.rule.config.network.feedback,
                "samples": self.samples,
                "accuracy": [a for a, _ in acc], "accuracy_ci95": [c for _, c in acc],
                "alignment": None if self.alignment is None else self.alignment.tolist()}


def stream_curve(rule: Rule, stream: Stream, every: int = 250, seed: int = 0, device: str = "cpu",
                 bar: tqdm | None = None) -> StreamCurve:
    """Learn online from every stream at once (batch R), testing every ``every`` samples.

    A plastic feedback rule updates each stream's own copy of B (or D) after every sample.
    """
    cfg = replace(rule.config, device=device)
    act, dtype, dev = make_activation(cfg.network), getattr(torch, cfg.dtype), resolve_device(device)
    repeats, n_samples = stream.order.shape
    init = init_network(cfg.network, repeats, make_generator(seed, "stream", "init"), dtype)
    moved = init.map(lambda t: t.to(dev))
    space = rule.space
    theta, phi = split_theta(space, torch.tensor([rule.theta], dtype=dtype, device=dev).repeat(repeats, 1))
    weights = [w.clone() for w in moved.weights]
    feedback = None if moved.feedback is None else [b.clone() for b in moved.feedback]
    images, labels, n_out = stream.images.to(dev, dtype), stream.labels.to(dev), cfg.network.dims[-1]
    test_x = images[stream.test].expand(repeats, -1, -1)
    test_y = labels[stream.test].expand(repeats, -1)
    k = min(ALIGNMENT_SAMPLES, len(stream.test))
    align_target = F.one_hot(test_y[:, :k], n_out).to(dtype)
    samples, accuracy, alignment = [], [], []
    with torch.no_grad():
        for step in range(n_samples + 1):
            if step % every == 0 or step == n_samples:
                samples.append(step)
                accuracy.append(query_scores(weights, test_x, test_y, act)[1].cpu().double())
                if feedback is not None:
                    angles = mean_alignment_angles(weights, feedback, test_x[:, :k], align_target, act,
                                                   init.direct)
                    alignment.append(angles.nanmean(0).cpu().double())
                if bar is not None and step:
                    bar.update(step - samples[-2])
            if step == n_samples:
                break
            index = stream.order[:, step].to(dev)
            x = images[index]
            target = F.one_hot(labels[index], n_out).to(dtype)
            weights, feedback = learn_sample(weights, feedback, theta, phi, space.terms, x, target, act,
                                             act.derivative_from_output(x), init.direct)
    return StreamCurve(rule, samples, torch.stack(accuracy), torch.stack(alignment) if alignment else None)


def evaluate_stream(rules: list[Rule], dataset: Dataset, classes: tuple[int, ...], n_samples: int,
                    every: int = 250, test_size: int = 1000, repeats: int = 1, seed: int = 0,
                    device: str = "cpu", relabel: bool = False, progress: bool = True) -> list[StreamCurve]:
    """Fig. 1: every rule learns the same streams from the same initial weights; test accuracy vs samples."""
    if every < 1:
        raise ValueError(f"--every must be ≥ 1, got {every}")
    stream = make_stream(dataset, classes, n_samples, test_size, repeats, seed, relabel)
    task = TaskConfig(dataset=dataset.name, n_way=len(classes), classes=tuple(classes), relabel=relabel)
    for rule in rules:  # the same network checks as task evaluation, before any work
        evaluation_config(rule, task, dataset, seed, device)
    bar = tqdm(total=n_samples * len(rules), desc="stream", unit="sample", disable=not progress, leave=False)
    curves = [stream_curve(rule, stream, every, seed, device, bar) for rule in rules]
    bar.close()
    return curves


def format_stream_table(curves: list[StreamCurve], header: str = "", max_rows: int = 12) -> str:
    """Test accuracy (%) per checkpoint (at most max_rows, always the last) and rule."""
    samples = curves[0].samples
    keep = sorted(set(range(0, len(samples), max(1, -(-len(samples) // max_rows)))) | {len(samples) - 1})
    rows = [("samples", *(c.rule.label for c in curves))]
    for i in keep:
        cells = []
        for c in curves:
            row = c.accuracy[i]
            mean, ci = mean_ci95(row) if len(row) > 1 else (float(row[0]), float("nan"))
            cells.append(f"{100 * mean:.2f}" + (f" ± {100 * ci:.2f}" if len(row) > 1 else ""))
        rows.append((str(samples[i]), *cells))
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) if j else cell.ljust(w) for j, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(([header] if header else []) + lines)


def plot_stream(curves: list[StreamCurve], out: Path, title: str = "") -> Path:
    """Accuracy vs samples seen (± 95 % CI band over streams), and fa alignment angles per layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    aligned = [c for c in curves if c.alignment is not None]
    fig, axes = plt.subplots(1, 2 if aligned else 1, figsize=(11 if aligned else 6, 3.8), squeeze=False)
    ax = axes[0, 0]
    for i, c in enumerate(curves):
        acc = 100 * c.accuracy
        mean = acc.mean(1).numpy()
        ax.plot(c.samples, mean, color=f"C{i}", label=c.rule.label)
        if acc.shape[1] > 1:
            ci = (1.96 * acc.std(1) / math.sqrt(acc.shape[1])).numpy()
            ax.fill_between(c.samples, mean - ci, mean + ci, color=f"C{i}", alpha=0.2)
    ax.set_xlabel("online training samples seen")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8)
    if aligned:
        ax = axes[0, 1]
        styles = ["-", "--", ":", "-."]
        for j, c in enumerate(aligned):
            for layer in range(c.alignment.shape[1]):
                ax.plot(c.samples, c.alignment[:, layer].numpy(), styles[j % 4], color=f"C{layer}",
                        label=f"{c.rule.label}: e_{layer + 1}")
        ax.set_xlabel("online training samples seen")
        ax.set_ylabel("angle to backprop error (°)")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


