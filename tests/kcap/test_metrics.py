"""Probe, EMD and the score wrapper: known answers, invariances, and NaN-safety."""

import dataclasses

import numpy as np
import pytest
import torch

from evoplastic.families.kcap.config import KcapConfig
from evoplastic.families.kcap.data import sample_tasks
from evoplastic.families.kcap.metrics import emd, matching_cost, objective, probe, raw_scores, score
from evoplastic.families.kcap.network import init_state
from evoplastic.families.kcap.rules import initial_theta, theta_size
from evoplastic.seeding import make_generator

TINY = KcapConfig(n_features=5, n_hidden=12, cap=3, recurrent_steps=2, n_unlabelled=10, labels_per_class=3,
                  n_query=8)


def clusters(n, per_class, gap, seed):
    g = make_generator(seed)
    y = torch.arange(2).repeat_interleave(per_class).expand(n, -1)
    x = 0.3 * torch.randn(n, 2 * per_class, 6, generator=g, dtype=torch.float64)
    x[..., 0] += gap * (2 * y - 1)
    return x, y


def test_ridge_probe_separates_separable_data():
    lab_x, lab_y = clusters(3, 5, 4.0, 0)
    q_x, q_y = clusters(3, 50, 4.0, 1)
    loss, acc = probe(lab_x, lab_y, q_x, q_y, 1e-3)
    assert (acc == 1).all() and (loss < 0.5).all()
    _, chance = probe(lab_x, lab_y, q_x, 1 - q_y, 1e-3)
    assert (chance == 0).all()


def test_matching_cost_by_hand():
    a = np.array([[0.0, 0.0], [1.0, 0.0]])
    b = np.array([[1.0, 1.0], [0.0, 1.0]])
    assert matching_cost(a, b) == pytest.approx(1.0)  # straight up, not crossed (√2 each)
    assert np.isnan(matching_cost(a, b * np.nan))


def test_emd_zero_for_same_geometry_and_invariant_to_flips_and_maps():
    points = torch.randn(2, 40, 2, generator=make_generator(2), dtype=torch.float64)
    points[1, :, 0] *= 3  # anisotropic
    assert torch.allclose(emd(points, points), torch.zeros(2, dtype=torch.float64), atol=1e-9)
    flipped = points * torch.tensor([-1.0, 1.0], dtype=torch.float64)
    assert torch.allclose(emd(flipped, points), torch.zeros(2, dtype=torch.float64), atol=1e-9)
    embedded = points @ torch.randn(2, 2, 7, generator=make_generator(3), dtype=torch.float64)  # rank-2 in 7-D
    assert torch.allclose(emd(embedded, points), torch.zeros(2, dtype=torch.float64), atol=1e-6)
    other = torch.rand(2, 40, 2, generator=make_generator(4), dtype=torch.float64) ** 3
    base = emd(other, points)
    assert (base > 0.05).all()
    assert torch.allclose(emd(other * torch.tensor([1.0, -1.0], dtype=torch.float64), points), base)


def test_emd_survives_degenerate_latents():
    codes = torch.zeros(2, 20, 6)
    codes[:, :10, 0] = 1  # two distinct codes: one principal axis
    codes[1] = 0  # one code: none
    value = emd(codes, torch.randn(2, 20, 2, generator=make_generator(5)))
    assert torch.isfinite(value).all()


def tiny_tasks(n_tasks=3):
    tasks = sample_tasks(TINY, n_tasks, make_generator(0, "tasks")).to("cpu", torch.float64)
    return tasks, init_state(TINY, n_tasks, make_generator(0, "init"), torch.float64)


def test_raw_input_scores_run():
    tasks, _ = tiny_tasks()
    raw = raw_scores(tasks, TINY)
    assert set(raw) == {"probe_loss", "probe_accuracy", "probe_error", "emd"}
    assert all(v.shape == (3,) and torch.isfinite(v).all() for v in raw.values())
    assert torch.allclose(raw["emd"], torch.zeros(3, dtype=torch.float64), atol=1e-6)  # raw = linear map of truth


def test_score_gives_every_metric_and_nan_for_diverged_pairs():
    tasks, init = tiny_tasks(2)
    cfg = dataclasses.replace(TINY, normalise="none")  # row normalisation would rescue the blow-up
    theta = initial_theta(cfg, torch.float64).repeat(6, 1)
    theta[2:4, 0] = float("nan")  # member 1: NaN θ
    theta[4:6, cfg.terms.index("decay")] = 1e200  # member 2: M overflows to inf within the stream
    scores = score(theta, tasks, init, cfg)
    assert set(scores) == {"probe_loss", "probe_accuracy", "probe_error", "emd", "ae_mse"}
    for value in scores.values():
        assert value.shape == (6,)
        assert torch.isfinite(value[:2]).all() and torch.isnan(value[2:]).all()
    assert objective(scores, cfg) is scores["probe_loss"]
    assert "emd" not in score(theta[:2], tasks, init, cfg, with_emd=False)


def test_score_float32_matches_float64():
    tasks, init = tiny_tasks(2)
    theta = initial_theta(TINY, torch.float64).repeat(2, 1)
    s64 = score(theta, tasks, init, TINY)
    s32 = score(theta.float(), tasks.to("cpu", torch.float32), init.map(lambda m: m.float()), TINY)
    assert theta_size(TINY) == theta.shape[1]
    for key in s64:
        assert s32[key].dtype == torch.float32
        assert torch.allclose(s32[key].double(), s64[key], atol=1e-3), key


def test_emd_of_wide_binary_codes_does_not_fail():
    """m = 256, k = 32 codes after a learned rule have covariances with many repeated eigenvalues: eigh
    failed on blobs task 22 of this block (evaluate of an es_pool run), the SVD does not."""
    cfg = dataclasses.replace(KcapConfig(), n_hidden=256, cap=32, datasets=("blobs",))
    tasks = sample_tasks(cfg, 50, make_generator(0, "evaluate", "tasks", "blobs/0")).to("cpu", torch.float32)
    init = init_state(cfg, 50, make_generator(0, "evaluate", "init", "blobs/0"))
    theta = torch.tensor([[0.018796759713847436, 0.015267718138398063, 0.01699277471263986, -0.00012142313406315644]])
    scores = score(theta.repeat(50, 1), tasks, init, cfg)
    assert torch.isfinite(scores["emd"]).all() and (scores["emd"] > 0).all()


def test_logistic_probe_separates_separable_data_and_matches_chance_on_noise():
    from evoplastic.families.kcap.metrics import logistic_probe
    g = make_generator(7)
    y = torch.arange(2).repeat_interleave(20).repeat(3, 1)
    x = torch.randn(3, 40, 5, generator=g, dtype=torch.float64) + 3.0 * (2 * y.unsqueeze(2) - 1) * torch.eye(5)[0]
    assert (logistic_probe(x[:, ::2], y[:, ::2], x[:, 1::2], y[:, 1::2], 1e-3) == 1).all()
    noise = torch.randn(3, 40, 5, generator=g, dtype=torch.float64)
    few = [0, 1, 20, 21]  # two labels per class
    assert logistic_probe(noise[:, few], y[:, few], noise, y, 1e-3).mean() < 0.8


def test_distinct_codes_counts_unique_rows():
    from evoplastic.families.kcap.metrics import distinct_codes
    z = torch.tensor([[[1.0, 0], [1, 0], [0, 1]], [[1.0, 0], [1, 0], [1, 0]]])
    assert distinct_codes(z).tolist() == [2.0, 1.0]
