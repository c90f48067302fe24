"""The statistics behind every table, against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from evoplastic.stats import T_975, mean_ci95, mean_ci95_seeds, paired_difference


def test_mean_ci95_uses_the_sample_standard_deviation():
    mean, ci = mean_ci95(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert mean == 2.5
    assert ci == pytest.approx(1.96 * math.sqrt(5 / 3) / 2, rel=1e-12)  # variance 5/3 (n - 1), not 5/4 (n)


def test_mean_ci95_of_one_value_has_no_interval():
    mean, ci = mean_ci95(torch.tensor([0.7]))
    assert mean == pytest.approx(0.7) and math.isnan(ci)


def test_mean_ci95_of_integer_accuracies_counts_in_float64():
    mean, ci = mean_ci95(torch.tensor([0, 1, 1, 1]))
    assert mean == 0.75 and ci == pytest.approx(1.96 * 0.5 / 2, rel=1e-12)  # sample sd of 0,1,1,1 is 1/2


@pytest.mark.parametrize("values, half_width", [
    ([1.0, 3.0], 12.706 * math.sqrt(2) / math.sqrt(2)),  # n = 2: one degree of freedom, t = 12.706
    ([1.0, 2.0, 3.0], 4.303 * 1.0 / math.sqrt(3)),  # n = 3: two degrees of freedom, t = 4.303
    ([2.0, 4.0, 4.0, 6.0], 3.182 * math.sqrt(8 / 3) / 2),  # n = 4: t = 3.182
])
def test_mean_ci95_seeds_uses_student_t_with_n_minus_1_degrees_of_freedom(values, half_width):
    mean, ci = mean_ci95_seeds(torch.tensor(values))
    assert mean == pytest.approx(sum(values) / len(values))
    assert ci == pytest.approx(half_width, rel=1e-12)


def test_t_quantiles_are_the_published_ones():
    assert T_975[:3] == (12.706, 4.303, 3.182) and T_975[9] == 2.228  # 1, 2, 3 and 10 degrees of freedom


def test_mean_ci95_seeds_beyond_the_table_falls_back_on_1_96():
    values = torch.arange(12, dtype=torch.float64)
    assert mean_ci95_seeds(values)[1] == pytest.approx(1.96 * float(values.std()) / math.sqrt(12))


def test_paired_difference_by_hand():
    a = torch.tensor([1.1, 1.9, 3.1, 3.9], dtype=torch.float64)
    b = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    mean, ci = paired_difference(a, b)
    assert mean == pytest.approx(0.0, abs=1e-12)
    assert ci == pytest.approx(1.96 * math.sqrt(0.04 / 3) / 2, rel=1e-9)  # differences ±0.1


def test_paired_interval_is_much_narrower_than_the_unpaired_one_on_correlated_data():
    """Two rules scored on the same tasks share the task difficulty; pairing removes it."""
    g = torch.Generator().manual_seed(0)
    difficulty = torch.rand(100, generator=g, dtype=torch.float64)
    a = difficulty + 0.02 + 0.01 * torch.randn(100, generator=g, dtype=torch.float64)
    b = difficulty + 0.01 * torch.randn(100, generator=g, dtype=torch.float64)
    mean, ci = paired_difference(a, b)
    unpaired = 1.96 * math.sqrt(float(a.var()) / 100 + float(b.var()) / 100)
    assert ci < unpaired / 10
    assert mean == pytest.approx(float((a - b).mean()), rel=1e-12) and abs(mean - 0.02) < ci
