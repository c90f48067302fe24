"""Spikes exactly where the threshold puts them; surrogate gradients finite and right where they can be checked."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from evoplastic.families.spiking.config import SURROGATES, TERMS, SpikingConfig
from evoplastic.families.spiking.loop import SpikingModel, present, run_episode
from evoplastic.families.spiking.network import init_network
from evoplastic.families.spiking.neuron import LIF, LayerState, Surrogate, lif_step
from tests.spiking.test_loop import BASE, make_tasks, random_theta


def run_layer(currents: list[float], lif: LIF, surrogate: Surrogate | None = None,
              requires_grad: bool = False) -> list[float]:
    state = LayerState.rest((1, 1, 1), torch.zeros(1, dtype=torch.float64))
    out = []
    for c in currents:
        current = torch.tensor([[[c]]], dtype=torch.float64, requires_grad=requires_grad)
        state, _ = lif_step(state, current, lif, surrogate or Surrogate())
        out.append(state.s.item())
    return out


def test_spikes_follow_the_threshold_by_hand():
    """α = 0.5, ϑ = 1, I = 0.6: v = 0.6, 0.9, 1.05 (spike), 0.525 + 0.6 - 1 = 0.125, 0.6625, 0.93125, 1.065625."""
    lif = LIF(beta=0.5, threshold=1.0)
    assert run_layer([0.6] * 7, lif) == [0, 0, 1, 0, 0, 0, 1]
    assert run_layer([0.6] * 7, lif, requires_grad=True) == [0, 0, 1, 0, 0, 0, 1]  # the surrogate changes no spike


def test_spike_needs_to_exceed_the_threshold():
    lif = LIF(beta=0.0, threshold=0.75)
    assert run_layer([0.75, 0.75 + 1e-12, 0.7499], lif) == [0, 1, 0]


def test_zero_reset_and_refractory_by_hand():
    """Zero reset: v = 0.6, 0.9, 1.05 spike, then 0.6 again; refractory 2 blocks the next two crossings."""
    assert run_layer([0.6] * 6, LIF(beta=0.5, reset="zero")) == [0, 0, 1, 0, 0, 1]
    assert run_layer([1.5] * 6, LIF(beta=0.0, refractory=2)) == [1, 0, 0, 1, 0, 0]


@pytest.mark.parametrize("name", SURROGATES)
def test_surrogate_is_a_smooth_step_with_its_derivative(name):
    """F rises from 0 to 1 and F' is its derivative (central differences), for every surrogate."""
    s = Surrogate(name, slope=2.0, dampening=1.0)
    u = torch.linspace(-3, 3, 61, dtype=torch.float64)
    h = 1e-6
    numeric = (s.step(u + h) - s.step(u - h)) / (2 * h)
    torch.testing.assert_close(s.pseudo_derivative(u), numeric, rtol=1e-5, atol=1e-6)
    assert s.step(torch.tensor(-50.0)).item() < 0.01 and s.step(torch.tensor(50.0)).item() > 0.99


def test_spike_backward_is_the_dampened_surrogate():
    s = Surrogate("fast_sigmoid", slope=4.0, dampening=0.3)
    u = torch.tensor([-0.5, 0.0, 0.2], dtype=torch.float64, requires_grad=True)
    spikes = s.spike(u)
    assert spikes.tolist() == [0.0, 0.0, 1.0]
    (grad,) = torch.autograd.grad(spikes.sum(), u)
    torch.testing.assert_close(grad, 0.3 * 0.5 * 4.0 / (1 + 4.0 * u.detach().abs()) ** 2)


def _episode_loss(sp: SpikingConfig, terms: tuple[str, ...], smooth: bool):
    tasks = make_tasks(1, 4, 4, sp.dims, sp)
    init = init_network(sp, 1, torch.Generator().manual_seed(2), torch.float64)
    model = SpikingModel.from_config(sp, smooth=smooth)
    return lambda theta: run_episode(theta, terms, sp.per_layer, tasks, init, model).loss.sum()


@pytest.mark.parametrize("surrogate", ["sigmoid", "fast_sigmoid"])
def test_smoothed_network_gradient_matches_finite_differences(surrogate):
    """With F(u) in place of spikes the network is smooth, and autograd through the rule (ψ included) must
    equal finite differences for every term: the surrogate path's backward formulas, checked."""
    sp = replace(BASE, steps=3, surrogate=surrogate)
    loss = _episode_loss(sp, TERMS, smooth=True)
    theta = random_theta(1, TERMS, 1).requires_grad_(True)
    assert torch.autograd.gradcheck(loss, (theta,), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_surrogate_gradient_is_exact_without_hidden_spikes():
    """A network whose only layer is the membrane read-out never spikes: its surrogate gradient is the true one."""
    sp = replace(BASE, dims=(7, 4), steps=3)
    loss = _episode_loss(sp, TERMS, smooth=False)
    theta = random_theta(1, TERMS, 1).requires_grad_(True)
    assert torch.autograd.gradcheck(loss, (theta,), eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("surrogate", SURROGATES)
def test_surrogate_gradients_are_finite_and_nonzero(surrogate):
    sp = replace(BASE, surrogate=surrogate, input="bernoulli", readout="count", readout_scale=3.0)
    loss = _episode_loss(sp, TERMS, smooth=False)
    theta = random_theta(1, TERMS, 1).requires_grad_(True)
    value = loss(theta)
    (grad,) = torch.autograd.grad(value, theta)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    with torch.no_grad():  # the graph-recording path computes the same exact-spike episode as ES's
        torch.testing.assert_close(value.detach(), loss(theta.detach()))


def test_hidden_spikes_are_binary_on_the_surrogate_path():
    sp = BASE
    tasks = make_tasks(1, 2, 3, sp.dims, sp)
    init = init_network(sp, 1, torch.Generator().manual_seed(2), torch.float64)
    weights = [w.clone().requires_grad_(True) for w in init.weights]
    _, traces = present(weights, tasks.query_x, None, SpikingModel.from_config(sp), record=True)
    for tr in traces[:-1]:
        assert tr.post_spikes.requires_grad and set(tr.post_spikes.unique().tolist()) <= {0.0, 1.0}
