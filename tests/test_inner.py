"""The batched inner loop: equivalences, backprop exactness, determinism and input errors."""

import pytest
import torch
import torch.nn.functional as F

from evoplastic.families.paper.config import NetworkConfig, TaskConfig
from evoplastic.families.paper.data import Dataset
from evoplastic.families.paper.inner import apply_rule, online_step, run_episode
from evoplastic.families.paper.network import ACTIVATIONS, NetworkState, init_network, make_activation
from evoplastic.families.paper.rules import DEFAULT_TERM_SCALE, N_TERMS, expand_theta, resolve_terms
from evoplastic.families.paper.tasks import TaskBatch, TaskSampler
from evoplastic.seeding import make_generator

DIMS = (12, 7, 5, 4)
POOL = tuple(range(N_TERMS))
BIO = resolve_terms("bio")
SMOOTH = ["softplus", "tanh", "sigmoid", "relu", "leaky_relu", "hardtanh"]
"""Activations whose σ' is the true derivative almost everywhere (heaviside uses a surrogate)."""


def net_config(activation="softplus", feedback="fa", dims=DIMS) -> NetworkConfig:
    return NetworkConfig(dims=dims, activation=activation, feedback=feedback)


def make_tasks(n_tasks=2, steps=6, n_query=5, seed=0, pixels=DIMS[0], n_out=DIMS[-1]) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    return TaskBatch(
        train_x=torch.rand(n_tasks, steps, pixels, generator=g, dtype=torch.float64),
        train_y=torch.randint(0, n_out, (n_tasks, steps), generator=g),
        query_x=torch.rand(n_tasks, n_query, pixels, generator=g, dtype=torch.float64),
        query_y=torch.randint(0, n_out, (n_tasks, n_query), generator=g),
        classes=torch.arange(n_out).repeat(n_tasks, 1),
    )


def make_init(cfg: NetworkConfig, n_tasks=2, seed=0) -> NetworkState:
    return init_network(cfg, n_tasks, make_generator(seed, "init"), torch.float64)


def pool_theta(n, seed=0, scale=3.0) -> torch.Tensor:
    """Random pool coefficients of sensible size per term, θ_0 positive."""
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(n, N_TERMS, generator=g, dtype=torch.float64) * scale
    theta = theta * torch.tensor(DEFAULT_TERM_SCALE, dtype=torch.float64)
    theta[:, 0] = theta[:, 0].abs() + 0.05
    return theta


def slice_pair(tasks: TaskBatch, init: NetworkState, t: int) -> tuple[TaskBatch, NetworkState]:
    one = lambda v: v[t: t + 1]
    sub_tasks = TaskBatch(*(one(v) for v in (tasks.train_x, tasks.train_y, tasks.query_x, tasks.query_y,
                                             tasks.classes)))
    return sub_tasks, init.map(one)


@pytest.mark.parametrize("feedback", ["fa", "bp", "dfa"])
def test_batched_equals_one_pair_at_a_time(feedback):
    cfg = net_config(feedback=feedback)
    act, tasks, init = make_activation(cfg), make_tasks(), make_init(cfg)
    theta = pool_theta(4)  # N = 4 pairs: P = 2 members × T = 2 tasks
    batched = run_episode(theta, POOL, tasks, init, act)
    for n in range(4):
        sub_tasks, sub_init = slice_pair(tasks, init, n % 2)
        single = run_episode(theta[n: n + 1], POOL, sub_tasks, sub_init, act)
        torch.testing.assert_close(batched.loss[n: n + 1], single.loss, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(batched.accuracy[n: n + 1], single.accuracy)
        for w_batched, w_single in zip(batched.weights, single.weights):
            torch.testing.assert_close(w_batched[n: n + 1], w_single, rtol=1e-10, atol=1e-12)


def reference_drives(weights, x, act):
    """z_1..z_L, written independently of evoplastic.families.paper.inner.forward."""
    h, drives = x, []
    for layer, w in enumerate(weights):
        z = torch.einsum("nij,nj->ni", w, h)
        drives.append(z)
        h = act.forward(z) if layer < len(weights) - 1 else z
    return drives


@pytest.mark.parametrize("activation", SMOOTH)
def test_bp_errors_are_cross_entropy_gradients(activation):
    cfg = net_config(activation, feedback="bp")
    act, init = make_activation(cfg), make_init(cfg, n_tasks=3, seed=1)
    g = torch.Generator().manual_seed(2)
    x = torch.rand(3, DIMS[0], generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 3, 1])
    trace = online_step(init.weights, None, x, F.one_hot(labels, DIMS[-1]).double(), act,
                        act.derivative_from_output(x))
    drives = reference_drives([w.clone().requires_grad_(True) for w in init.weights], x, act)
    loss = F.cross_entropy(drives[-1], labels, reduction="sum")  # pairs independent: sum = per-pair grads
    grads = torch.autograd.grad(loss, drives)
    for layer in range(1, len(DIMS)):
        torch.testing.assert_close(trace.errors[layer], grads[layer - 1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("activation", SMOOTH)
def test_bp_pseudo_gradient_step_is_gradient_descent(activation):
    cfg = net_config(activation, feedback="bp")
    act, init = make_activation(cfg), make_init(cfg, n_tasks=2, seed=3)
    tasks = make_tasks(steps=1, seed=4)
    theta_0 = torch.tensor([[0.3], [0.3]], dtype=torch.float64)
    adapted = run_episode(theta_0, (0,), tasks, init, act).weights

    weights = [w.clone().requires_grad_(True) for w in init.weights]
    drives = reference_drives(weights, tasks.train_x[:, 0], act)
    loss = F.cross_entropy(drives[-1], tasks.train_y[:, 0], reduction="sum")
    grads = torch.autograd.grad(loss, weights)
    for before, after, grad in zip(init.weights, adapted, grads):
        torch.testing.assert_close(after - before, -0.3 * grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("feedback", ["fa", "bp"])
def test_zero_theta_leaves_weights_unchanged(feedback):
    cfg = net_config(feedback=feedback)
    act, tasks, init = make_activation(cfg), make_tasks(), make_init(cfg)
    result = run_episode(torch.zeros(4, N_TERMS, dtype=torch.float64), POOL, tasks, init, act)
    for before, after in zip(init.weights, result.weights):
        assert torch.equal(after, before.repeat(2, 1, 1))


def test_inputs_are_not_modified():
    cfg = net_config()
    act, tasks, init = make_activation(cfg), make_tasks(), make_init(cfg)
    saved = [w.clone() for w in init.weights + init.feedback]
    theta = pool_theta(2)
    with torch.no_grad():
        result = run_episode(theta, POOL, tasks, init, act)
    assert all(torch.equal(a, b) for a, b in zip(init.weights + init.feedback, saved))
    assert not torch.equal(result.weights[0], init.weights[0])


def seeded_run(seed: int, feedback="fa"):
    """Tasks and initial networks drawn from seeded generators, as a generation would."""
    g = torch.Generator().manual_seed(99)
    labels = torch.arange(4).repeat_interleave(8)
    dataset = Dataset("toy", torch.rand(32, DIMS[0], generator=g), labels, ("a", "b", "c", "d"))
    sampler = TaskSampler(dataset, TaskConfig(dataset="toy", n_way=3, k_shot=2, n_query=2))
    cfg = net_config(feedback=feedback)
    tasks = sampler.sample(2, make_generator(seed, "tasks")).to("cpu", torch.float64)
    init = make_init(cfg, n_tasks=2, seed=seed)
    return run_episode(pool_theta(4), POOL, tasks, init, make_activation(cfg))


def test_same_seed_same_result_different_seed_differs():
    first, again, other = seeded_run(5), seeded_run(5), seeded_run(6)
    assert torch.equal(first.loss, again.loss)
    assert all(torch.equal(a, b) for a, b in zip(first.weights, again.weights))
    assert not torch.allclose(first.loss, other.loss)
    assert not torch.allclose(first.weights[0], other.weights[0])


@pytest.mark.parametrize("feedback", ["fa", "bp", "dfa"])
def test_in_place_no_grad_path_equals_autograd_path(feedback):
    cfg = net_config(feedback=feedback)
    act, tasks, init = make_activation(cfg), make_tasks(), make_init(cfg)
    theta = pool_theta(4)
    with torch.no_grad():
        fast = run_episode(theta, POOL, tasks, init, act)
    with torch.enable_grad():
        plain = run_episode(theta, POOL, tasks, init, act)  # grad on, θ without grad: in place too
        graph = run_episode(theta.clone().requires_grad_(True), POOL, tasks, init, act)
    assert not fast.loss.requires_grad and graph.loss.requires_grad
    for other in (plain, graph):
        torch.testing.assert_close(other.loss.detach(), fast.loss, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(other.accuracy, fast.accuracy)
        for a, b in zip(other.weights, fast.weights):
            torch.testing.assert_close(a.detach(), b, rtol=1e-10, atol=1e-12)


def test_meta_gradient_matches_finite_differences():
    cfg = net_config("softplus", feedback="fa")
    act, tasks, init = make_activation(cfg), make_tasks(steps=4, n_query=3), make_init(cfg)
    theta = pool_theta(2, seed=7)[:, list(BIO)].clone().requires_grad_(True)
    with torch.enable_grad():
        assert torch.autograd.gradcheck(lambda th: run_episode(th, BIO, tasks, init, act).loss, (theta,))


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_learns_finitely(activation):
    cfg = net_config(activation)
    act, tasks, init = make_activation(cfg), make_tasks(), make_init(cfg)
    theta = torch.tensor([[0.05, -0.05, 0.01]], dtype=torch.float64).repeat(2, 1)
    with torch.no_grad():
        result = run_episode(theta, BIO, tasks, init, act)
    assert torch.isfinite(result.loss).all()
    assert ((result.accuracy >= 0) & (result.accuracy <= 1)).all()
    assert all(not torch.equal(a, b) for a, b in zip(result.weights, init.weights))


def test_apply_rule_updates_every_layer_from_one_trace():
    cfg = net_config(feedback="bp")
    act, init = make_activation(cfg), make_init(cfg, n_tasks=1)
    x = torch.rand(1, DIMS[0], dtype=torch.float64)
    trace = online_step(init.weights, None, x, F.one_hot(torch.tensor([2]), DIMS[-1]).double(), act,
                        act.derivative_from_output(x))
    theta_full = expand_theta(torch.tensor([[0.1]], dtype=torch.float64), (0,))
    updated = apply_rule([w.clone() for w in init.weights], theta_full, (0,), trace)
    for layer, (before, after) in enumerate(zip(init.weights, updated)):
        expected = before - 0.1 * torch.outer(trace.errors[layer + 1][0], trace.activations[layer][0])
        torch.testing.assert_close(after, expected)


def test_error_wrong_theta_width():
    cfg = net_config()
    with pytest.raises(ValueError, match=r"theta must be \(N, 3\) for this rule: theta has 2 values but the rule "
                                         r"searches 3: 3 terms \[0, 2, 9\]"):
        run_episode(torch.zeros(2, 2), BIO, make_tasks(), make_init(cfg), make_activation(cfg))


def test_error_pairs_not_multiple_of_tasks():
    cfg = net_config()
    with pytest.raises(ValueError, match="N=3 pairs must be a multiple of the 2 tasks"):
        run_episode(torch.zeros(3, 3, dtype=torch.float64), BIO, make_tasks(), make_init(cfg), make_activation(cfg))


def test_error_pixels_do_not_match_input_width():
    cfg = net_config()
    with pytest.raises(ValueError, match=r"set network.dims\[0\] = 10"):
        run_episode(torch.zeros(2, 3, dtype=torch.float64), BIO, make_tasks(pixels=10), make_init(cfg),
                    make_activation(cfg))


def test_error_label_beyond_outputs():
    cfg = net_config()
    tasks = make_tasks()
    tasks.query_y[1, 0] = DIMS[-1]
    with pytest.raises(ValueError, match=r"label 4 does not fit 4 output units.*≥ 5.*task.relabel=true"):
        run_episode(torch.zeros(2, 3, dtype=torch.float64), BIO, tasks, make_init(cfg), make_activation(cfg))


def test_error_initial_networks_do_not_match_tasks():
    cfg = net_config()
    with pytest.raises(ValueError, match="initial weights hold 3 episodes"):
        run_episode(torch.zeros(2, 3, dtype=torch.float64), BIO, make_tasks(), make_init(cfg, n_tasks=3),
                    make_activation(cfg))


def test_dfa_errors_come_straight_from_the_output():
    """e_{ℓ-1} = (D_ℓᵀ e_L) ⊙ σ'(z_{ℓ-1}) with D_ℓ (n_L, n_{ℓ-1}), written out independently."""
    cfg = net_config(feedback="dfa")
    act, init = make_activation(cfg), make_init(cfg, n_tasks=3, seed=5)
    assert init.direct and [tuple(d.shape[1:]) for d in init.feedback] == [(DIMS[-1], n) for n in DIMS[:-1]]
    g = torch.Generator().manual_seed(6)
    x = torch.rand(3, DIMS[0], generator=g, dtype=torch.float64)
    target = torch.nn.functional.one_hot(torch.tensor([0, 1, 2]), DIMS[-1]).to(torch.float64)
    trace = online_step(init.weights, init.feedback, x, target, act, act.derivative_from_output(x), direct=True)
    e_out = trace.activations[-1] - target
    torch.testing.assert_close(trace.errors[-1], e_out)
    for layer in range(1, len(DIMS) - 1):
        sent = torch.einsum("nij,ni->nj", init.feedback[layer], e_out)
        torch.testing.assert_close(trace.errors[layer], sent * act.derivative(trace.drives[layer - 1]))
    torch.testing.assert_close(trace.errors[0], torch.einsum("nij,ni->nj", init.feedback[0], e_out)
                               * act.derivative_from_output(x))
