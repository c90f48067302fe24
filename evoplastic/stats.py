"""Summaries over tasks: mean with a 95 % confidence interval, and paired differences."""

from __future__ import annotations

import math

import torch


def mean_ci95(values: torch.Tensor) -> tuple[float, float]:
    """Mean and 95 % CI half-width (1.96 standard errors) of per-task values."""
    values = values.double()
    ci = 1.96 * float(values.std()) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return float(values.mean()), ci


T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)
"""Student's t quantile 0.975 for 1..10 degrees of freedom (few seeds); beyond, 1.96 is within 14 %."""


def mean_ci95_seeds(values: torch.Tensor) -> tuple[float, float]:
    """Mean and 95 % CI half-width over a few seeds: Student's t, since 1.96 is far too narrow for n = 2 or 3."""
    values = values.double()
    n = len(values)
    if n < 2:
        return float(values.mean()), float("nan")
    quantile = T_975[n - 2] if n - 1 <= len(T_975) else 1.96
    return float(values.mean()), quantile * float(values.std()) / math.sqrt(n)


def paired_difference(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Mean and 95 % CI half-width of a - b over the same tasks (paired)."""
    return mean_ci95(a.double() - b.double())
