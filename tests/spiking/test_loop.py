"""The batched spiking loop against the plain float64 reference, term by term and option by option."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from evoplastic.families.spiking.config import TERMS, SpikingConfig
from evoplastic.families.spiking.loop import SpikingModel, SpikingTasks, run_episode
from evoplastic.families.spiking.network import init_network
from evoplastic.families.spiking.problem import bernoulli_spikes
from evoplastic.families.spiking.rules import TERM_FORMULAS, TERM_SCALES
from tests.spiking.reference import reference_episode

BASE = SpikingConfig(dims=(7, 6, 5, 4), steps=4, beta=0.7, weight_gain=2.5, surrogate="fast_sigmoid", slope=3.0)
TERM_SIZE = {"eprop": 0.5, "post_err": 0.05, "err_err": 0.2, "decay": 0.02, "oja": 0.05, "stdp_ltp": 0.05,
             "stdp_ltd": 0.05}
"""Coefficient sizes that change the weights visibly within a few samples without blowing them up."""


def make_tasks(n_tasks: int, samples: int, queries: int, dims: tuple[int, ...], sp: SpikingConfig,
               seed: int = 0) -> SpikingTasks:
    g = torch.Generator().manual_seed(seed)
    tx = torch.rand(n_tasks, samples, dims[0], generator=g, dtype=torch.float64)
    qx = torch.rand(n_tasks, queries, dims[0], generator=g, dtype=torch.float64)
    ty = torch.randint(dims[-1], (n_tasks, samples), generator=g)
    qy = torch.randint(dims[-1], (n_tasks, queries), generator=g)
    if sp.input == "bernoulli":
        return SpikingTasks(tx, ty, qx, qy, bernoulli_spikes(tx, sp.steps, g), bernoulli_spikes(qx, sp.steps, g))
    return SpikingTasks(tx, ty, qx, qy)


def random_theta(members: int, terms: tuple[str, ...], layers: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    sizes = torch.tensor([TERM_SIZE[t] for t in terms], dtype=torch.float64).repeat(layers)
    return sizes * (0.5 + torch.rand(members, len(terms) * layers, generator=g, dtype=torch.float64))


def compare(sp: SpikingConfig, terms: tuple[str, ...], members: int = 3, n_tasks: int = 2) -> None:
    """Batched P·T pairs in float64 equal the reference run pair by pair (loss, accuracy, weights)."""
    tasks = make_tasks(n_tasks, 6, 5, sp.dims, sp)
    init = init_network(sp, n_tasks, torch.Generator().manual_seed(2), torch.float64)
    layers = len(sp.dims) - 1 if sp.per_layer else 1
    theta = random_theta(members, terms, layers)
    pairs = theta.repeat_interleave(n_tasks, 0)
    with torch.no_grad():
        result = run_episode(pairs, terms, sp.per_layer, tasks, init, SpikingModel.from_config(sp))
    for n in range(members * n_tasks):
        t = n % n_tasks
        feedback = None if init.feedback is None else [b[t] for b in init.feedback]
        spikes = (None, None) if tasks.train_spikes is None else (tasks.train_spikes[t], tasks.query_spikes[t])
        loss, acc, ws = reference_episode([w[t] for w in init.weights], feedback, sp.feedback, pairs[n], terms,
                                          sp.per_layer, sp, tasks.train_x[t], tasks.train_y[t], tasks.query_x[t],
                                          tasks.query_y[t], *spikes)
        for w_batched, w_ref in zip(result.weights, ws):
            torch.testing.assert_close(w_batched[n], w_ref, rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(result.loss[n], loss, rtol=1e-9, atol=1e-11)
        assert result.accuracy[n].item() == pytest.approx(acc)


@pytest.mark.parametrize("term", TERMS)
def test_each_term_matches_reference(term):
    compare(BASE, (term,))


@pytest.mark.parametrize("options", [
    {},
    {"feedback": "bp"},
    {"feedback": "dfa"},
    {"readout": "count", "readout_scale": 4.0},
    {"reset": "zero"},
    {"refractory": 2},
    {"input": "bernoulli"},
    {"per_layer": True},
    {"surrogate": "triangle"},
    {"surrogate": "atan", "feedback": "bp", "readout": "count"},
    {"surrogate": "sigmoid", "input": "bernoulli", "refractory": 1, "reset": "zero"},
])
def test_all_terms_match_reference(options):
    compare(replace(BASE, **options), TERMS)


def test_weights_actually_change_and_spikes_occur():
    """The comparison above is not vacuous: hidden layers spike and every term moves the weights."""
    sp = BASE
    tasks = make_tasks(1, 6, 5, sp.dims, sp)
    init = init_network(sp, 1, torch.Generator().manual_seed(2), torch.float64)
    model = SpikingModel.from_config(sp)
    from evoplastic.families.spiking.loop import present
    _, traces = present(init.weights, tasks.train_x[:, :1], None, model, record=True)
    rates = [float(tr.post_spikes.mean()) for tr in traces[:-1]]
    assert all(0 < r < 1 for r in rates), rates
    for term in TERMS:
        theta = random_theta(1, (term,), 1)
        with torch.no_grad():
            result = run_episode(theta, (term,), False, tasks, init, model)
        moved = sum(float((w - w0[0]).abs().max()) for w, w0 in zip(result.weights, init.weights))
        assert moved > 1e-4, term


def test_vocabulary_tables_cover_every_term():
    assert set(TERM_FORMULAS) == set(TERMS) == set(TERM_SCALES)
