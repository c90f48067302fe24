"""The k-cap ridge probe against ridge regressions solved by hand and by an independent least-squares solve."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evoplastic.families.kcap.metrics import probe


def one_task(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).reshape(1, -1, 1)


@pytest.mark.parametrize("ridge, loss", [(1 / 3, 41 / 72), (2 / 3, 593 / 1152)])
def test_probe_matches_the_ridge_fit_solved_by_hand(ridge, loss):
    """x = 0, 1, 2 labelled 0, 1, 1 (targets -1, 1, 1): w = (2/3) / (2/3 + λ), c = 1/3 - w.

    λ = 1/3: w = 2/3, c = -1/3; λ = 2/3: w = 1/2, c = -1/6. Queries x = 0.25 (label 0) and 3 (label 1).
    """
    labelled, labels = one_task([0.0, 1.0, 2.0]), torch.tensor([[0, 1, 1]])
    query, query_labels = one_task([0.25, 3.0]), torch.tensor([[0, 1]])
    got_loss, accuracy = probe(labelled, labels, query, query_labels, ridge)
    assert float(got_loss) == pytest.approx(loss, rel=1e-12)
    assert float(accuracy) == 1.0


def lstsq_probe_outputs(x: np.ndarray, y: np.ndarray, query: np.ndarray, ridge: float) -> np.ndarray:
    """argmin (1/B)‖X w + c - y‖² + λ‖w‖² as one augmented least-squares problem (c unpenalised)."""
    b, f = x.shape
    design = np.vstack([np.hstack([x, np.ones((b, 1))]) / np.sqrt(b),
                        np.hstack([np.sqrt(ridge) * np.eye(f), np.zeros((f, 1))])])
    target = np.concatenate([y / np.sqrt(b), np.zeros(f)])
    solution = np.linalg.lstsq(design, target, rcond=None)[0]
    return query @ solution[:f] + solution[f]


@pytest.mark.parametrize("features", [2, 9])  # the primal (B ≥ F) and the dual (B < F) normal equations
@pytest.mark.parametrize("ridge", [1e-2, 1.0])
def test_probe_matches_an_independent_least_squares_solve(features, ridge):
    rng = np.random.default_rng(features)
    x, query = rng.normal(size=(6, features)), rng.normal(size=(5, features))
    labels, query_labels = np.array([0, 1, 1, 0, 1, 0]), np.array([1, 0, 1, 1, 0])
    out = lstsq_probe_outputs(x, 2.0 * labels - 1, query, ridge)
    expected_loss = np.mean((out - (2.0 * query_labels - 1)) ** 2)
    expected_accuracy = np.mean((out > 0) == (query_labels == 1))
    loss, accuracy = probe(torch.from_numpy(x)[None], torch.from_numpy(labels)[None], torch.from_numpy(query)[None],
                           torch.from_numpy(query_labels)[None], ridge)
    assert float(loss) == pytest.approx(expected_loss, rel=1e-9)
    assert float(accuracy) == expected_accuracy
