"""Untrained networks, backprop autoencoders, and the paper's look-ahead loss with a straight-through k-cap."""

import dataclasses

import pytest
import torch

from evoplastic.families.kcap.baselines import (
    AutoencoderConfig,
    autoencoder_scores,
    kcap_straight_through,
    lookahead_loss,
    lookahead_positions,
    one_step_losses,
    rollout,
    untrained_scores,
)
from evoplastic.families.kcap.config import KcapConfig
from evoplastic.families.kcap.data import sample_tasks
from evoplastic.families.kcap.network import init_state, kcap
from evoplastic.families.kcap.rules import initial_theta
from evoplastic.seeding import make_generator

TINY = KcapConfig(n_features=4, n_hidden=8, cap=2, recurrent_steps=2, n_unlabelled=12, labels_per_class=2,
                  n_query=6, mlp_hidden=3, lookahead_points=4, terms=("hebb", "oja", "covariance", "decay"))


def tiny(cfg=TINY, n_tasks=2, seed=0):
    tasks = sample_tasks(cfg, n_tasks, make_generator(seed, "tasks")).to("cpu", torch.float64)
    return tasks, init_state(cfg, n_tasks, make_generator(seed, "init"), torch.float64)


def test_straight_through_is_hard_forward_identity_backward():
    x = torch.randn(3, 9, dtype=torch.float64, generator=make_generator(1)).requires_grad_()
    out = kcap_straight_through(x, 3)
    assert torch.equal(out.detach(), kcap(x.detach(), 3))
    weights = torch.arange(9.0, dtype=torch.float64)
    (out * weights).sum().backward()
    assert torch.equal(x.grad, weights.expand(3, 9))


def test_lookahead_positions():
    assert lookahead_positions(12, 4) == [0, 3, 7, 10]
    assert lookahead_positions(3, 16) == [0, 1]


@pytest.mark.parametrize("rule", ["pool", "mlp"])
def test_lookahead_loss_has_a_finite_gradient(rule):
    cfg = dataclasses.replace(TINY, rule=rule, per_matrix=rule == "mlp")
    tasks, init = tiny(cfg)
    theta = initial_theta(cfg, torch.float64).unsqueeze(0).requires_grad_()
    loss = lookahead_loss(theta, tasks, init, cfg)
    loss.backward()
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert torch.isfinite(theta.grad).all() and theta.grad.abs().sum() > 0


def test_lookahead_gradient_matches_finite_differences_through_straight_through():
    """The STE gradient is the exact gradient of the cap linearised at θ0 (hard value + drive - drive0):
    recording the drives at θ0 and replaying that linearisation gives a smooth function to difference."""
    cfg = dataclasses.replace(TINY, normalise="row")
    tasks, init = tiny(cfg)
    theta0 = (initial_theta(cfg, torch.float64) + torch.tensor([0.0, 1e-2, 2e-2, -1e-3], dtype=torch.float64))[None]
    roll = rollout(theta0.expand(2, -1), tasks.unlabelled, init, cfg)
    drives = []

    def recording(x, k):
        drives.append(x.detach().clone())
        return kcap_straight_through(x, k)

    leaf = theta0.clone().requires_grad_()
    loss = one_step_losses(leaf, roll, cfg, recording).mean()
    loss.backward()
    assert loss.item() == pytest.approx(lookahead_loss(theta0, tasks, init, cfg).item(), rel=1e-12)

    def replayed(theta):
        frozen = iter(drives)

        def cap(x, k):
            x0 = next(frozen)
            return kcap(x0, k) + (x - x0)

        return one_step_losses(theta, roll, cfg, cap).mean()

    assert replayed(theta0).item() == pytest.approx(loss.item(), rel=1e-12)
    eps = 1e-6
    for r in range(theta0.shape[1]):
        step = torch.zeros_like(theta0)
        step[0, r] = eps
        fd = (replayed(theta0 + step) - replayed(theta0 - step)).item() / (2 * eps)
        assert fd == pytest.approx(leaf.grad[0, r].item(), rel=1e-5, abs=1e-8)
    assert leaf.grad.abs().max() > 1e-3


@pytest.mark.parametrize("kind", ["rnn", "mlp"])
def test_autoencoders_train(kind):
    tasks, _ = tiny()
    untrained = autoencoder_scores(tasks, TINY, AutoencoderConfig(kind=kind, epochs=0), make_generator(2))
    trained = autoencoder_scores(tasks, TINY, AutoencoderConfig(kind=kind, epochs=40), make_generator(2))
    assert set(trained) == {"probe_loss", "probe_accuracy", "probe_error", "emd", "ae_mse"}
    assert all(torch.isfinite(v).all() and v.shape == (2,) for v in trained.values())
    assert (trained["ae_mse"] < 0.5 * untrained["ae_mse"]).all()
    with pytest.raises(ValueError, match="kind"):
        autoencoder_scores(tasks, TINY, AutoencoderConfig(kind="cnn"), make_generator(2))


def test_untrained_scores_run():
    tasks, init = tiny()
    scores = untrained_scores(tasks, init, TINY)
    assert all(torch.isfinite(v).all() and v.shape == (2,) for v in scores.values())
