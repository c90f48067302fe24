"""Summaries over tasks: mean with a 95 % confidence interval, and paired differences."""

from __future__ import annotations

import math

import torch


def mean_ci95(values: torch.Tensor) -> tuple[float, float]:
    """Mean and 95 % CI half-width (1.96 standard errors) of per-task values."""
    values = values.double()
    ci = 1.96 * float(values.std()) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return float(values.mean()), ci


def paired_difference(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Mean and 95 % CI half-width of a - b over the same tasks (paired)."""
    return mean_ci95(a.double() - b.double())
