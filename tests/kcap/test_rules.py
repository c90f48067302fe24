"""Each pool term against hand-computed values; the MLP rule; θ layout, scales and normalisation."""

import dataclasses
import math

import pytest
import torch

from evoplastic.families.kcap.config import KcapConfig
from evoplastic.families.kcap.rules import (
    POOL,
    apply_rule,
    initial_theta,
    mlp_delta,
    normalise,
    theta_block,
    theta_labels,
    theta_scales,
    theta_size,
)
from evoplastic.seeding import make_generator

M = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=torch.float64)
PRE = torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64)
POST = torch.tensor([2.0, -1.0], dtype=torch.float64)
HAND = {  # T_r for M, pre, post above, worked out by hand
    "hebb": [[2, 4, 0], [-1, -2, 0]],
    "post": [[2, 2, 2], [-1, -1, -1]],
    "pre": [[1, 2, 0], [1, 2, 0]],
    "decay": [[1, 2, 3], [4, 5, 6]],
    "oja": [[2 - 4, 4 - 8, 0 - 12], [-1 - 4, -2 - 5, 0 - 6]],  # post preᵀ - diag(post²) M
    "covariance": [[0, 1.5, -1.5], [0, -1.5, 1.5]],  # (post - 0.5)(pre - 1)ᵀ
    "gated_decay": [[4, 8, 12], [4, 5, 6]],
    "hebb_near": [[4, 2, 6], [-2, -1, -3]],  # post (pre_{j-1} + pre_{j+1})ᵀ, cyclic: (2, 1, 3)
    "hebb_far": [[4, 2, 6], [-2, -1, -3]],  # with 3 inputs distance 2 is distance 1 the other way
    "auto": [[0, 0, 0], [0, 0, 0]],  # M (2×3) is not square: no same-step post activity, zero
}


def test_auto_term_is_pre_pre_on_square_matrices():
    cfg = pool_cfg(["auto"])
    sq, pre = torch.eye(3, dtype=torch.float64).unsqueeze(0), torch.tensor([[1.0, 0.0, 2.0]], dtype=torch.float64)
    new = apply_rule(torch.tensor([[0.5]], dtype=torch.float64), sq, pre, torch.zeros(1, 3, dtype=torch.float64),
                     cfg, "M_rec")
    assert torch.allclose(new[0], sq[0] + 0.5 * torch.outer(pre[0], pre[0]))


def pool_cfg(terms, **kw):
    return KcapConfig(rule="pool", terms=tuple(terms), normalise="none", **kw)


@pytest.mark.parametrize("name", list(POOL))
def test_each_term_matches_the_hand_value(name):
    cfg = pool_cfg([name])
    theta = torch.tensor([[0.5], [-2.0]], dtype=torch.float64)  # two pairs, different θ
    new = apply_rule(theta, M.expand(2, 2, 3), PRE.expand(2, 3), POST.expand(2, 2), cfg, "M_in")
    hand = torch.tensor(HAND[name], dtype=torch.float64)
    assert torch.allclose(new[0], M + 0.5 * hand) and torch.allclose(new[1], M - 2.0 * hand)


def test_terms_add_up_and_pairs_average():
    cfg = pool_cfg(list(POOL))
    theta = torch.arange(1.0, len(POOL) + 1, dtype=torch.float64).unsqueeze(0) / 10
    hand = sum(theta[0, r] * torch.tensor(HAND[name], dtype=torch.float64) for r, name in enumerate(POOL))
    one = apply_rule(theta, M.unsqueeze(0), PRE.unsqueeze(0), POST.unsqueeze(0), cfg, "M_in")
    assert torch.allclose(one[0], M + hand)
    # two (pre, post) pairs: ΔM is the mean of the pairs' updates
    pre2, post2 = torch.stack([PRE, 2 * PRE]).unsqueeze(0), torch.stack([POST, -POST]).unsqueeze(0)
    second = apply_rule(theta, M.unsqueeze(0), pre2[:, 1], post2[:, 1], cfg, "M_in") - M
    both = apply_rule(theta, M.unsqueeze(0), pre2, post2, cfg, "M_in") - M
    assert torch.allclose(both, (hand + second) / 2)


def test_mlp_rule_by_hand_and_zero_theta():
    a, b, c, b1, w2, b2 = 0.3, -0.7, 1.1, 0.2, 0.5, 0.01
    theta = torch.tensor([[a, b, c, b1, w2, b2]], dtype=torch.float64)
    delta = mlp_delta(theta, 1, M.unsqueeze(0), PRE.view(1, 1, 3), POST.view(1, 1, 2))
    assert delta.shape == (1, 2, 3)
    i, j = 1, 2
    hand = w2 * math.tanh(a * PRE[j].item() + b * POST[i].item() + c * M[i, j].item() + b1) + b2
    assert delta[0, i, j].item() == pytest.approx(hand)
    cfg8 = KcapConfig(rule="mlp", mlp_hidden=8, normalise="none")
    zero = torch.zeros(3, theta_size(cfg8), dtype=torch.float64)
    m3 = torch.randn(3, 4, 5, dtype=torch.float64)
    same = apply_rule(zero, m3, torch.randn(3, 2, 5, dtype=torch.float64), torch.randn(3, 2, 4, dtype=torch.float64),
                      cfg8, "M_rec")
    assert torch.equal(same, m3)


def test_theta_layout_shared_and_per_matrix():
    shared = KcapConfig(terms=("hebb", "oja"))
    per = dataclasses.replace(shared, per_matrix=True)
    assert theta_size(shared) == 2 and theta_size(per) == 4
    assert theta_labels(per) == ["M_in/hebb", "M_in/oja", "M_rec/hebb", "M_rec/oja"]
    theta = torch.arange(4.0).unsqueeze(0)
    assert theta_block(theta, per, "M_rec").tolist() == [[2.0, 3.0]]
    assert theta_block(theta[:, :2], shared, "M_rec").tolist() == [[0.0, 1.0]]
    assert initial_theta(per, torch.float64).tolist() == [1e-2, 0.0, 1e-2, 0.0]
    assert torch.allclose(theta_scales(per), torch.tensor([1e-2, 1e-2, 1e-2, 1e-2]))
    mlp = KcapConfig(rule="mlp", mlp_hidden=8, per_matrix=True)
    assert theta_size(mlp) == 2 * 41 == len(theta_labels(mlp)) == len(theta_scales(mlp)) == len(initial_theta(mlp))
    assert theta_labels(mlp)[:3] == ["M_in/W1[0,pre]", "M_in/W1[0,post]", "M_in/W1[0,M]"]


def test_mlp_start_is_the_small_hebb_term():
    cfg = KcapConfig(rule="mlp", normalise="none")
    theta = initial_theta(cfg, torch.float64).unsqueeze(0)
    pre = torch.linspace(-2, 2, 9, dtype=torch.float64).view(1, 1, 9)
    post = torch.tensor([[[0.0, 1.0]]], dtype=torch.float64)
    m = torch.randn(1, 2, 9, generator=make_generator(0), dtype=torch.float64)
    delta = mlp_delta(theta, cfg.mlp_hidden, m, pre, post)
    hebb = 1e-2 * post[0, 0].view(2, 1) * pre.view(1, 9)
    assert torch.allclose(delta[0], hebb, atol=3e-4)  # tanh: 1.3 % off at |pre| = 2
    assert torch.allclose(initial_theta(cfg), initial_theta(cfg))  # seeded, no global RNG


def test_normalise_rows_and_columns():
    m = torch.tensor([[[3.0, 4.0], [0.0, 2.0]]])
    assert torch.allclose(normalise(m, "row"), torch.tensor([[[0.6, 0.8], [0.0, 1.0]]]))
    assert torch.allclose(normalise(m, "column"), torch.tensor([[[1.0, 4 / math.sqrt(20)], [0.0, 2 / math.sqrt(20)]]]))
    assert normalise(m, "none") is m
    assert torch.isfinite(normalise(torch.zeros(1, 2, 2), "row")).all()
