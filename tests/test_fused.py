"""The fused (compiled) no-grad inner loop equals the plain differentiable one.

fused_step runs uncompiled here for the many cases (fast); torch.compile is checked on a
tiny float64 network by default, and on the paper network in float32 when EVOPLASTIC_SLOW_TESTS=1.
"""

import os
import warnings

import pytest
import torch
from test_inner import BIO, POOL, make_init, make_tasks, net_config, pool_theta

from evoplastic.bench.inner import make_theta
from evoplastic.families.paper import fused
from evoplastic.families.paper.config import NetworkConfig
from evoplastic.families.paper.inner import run_episode
from evoplastic.families.paper.network import ACTIVATIONS, Activation, init_network, make_activation
from evoplastic.families.paper.rules import expand_theta, low_rank_update, needs_backprojection, update_rank
from evoplastic.families.paper.tasks import TaskBatch
from evoplastic.seeding import make_generator

PAPER_DIMS = NetworkConfig().dims
_SLOW = pytest.mark.skipif(not os.environ.get("EVOPLASTIC_SLOW_TESTS"),
                           reason="compiles the paper network (up to ~1 min without the Inductor cache); "
                                  "set EVOPLASTIC_SLOW_TESTS=1")


TERM_SETS = [POOL, BIO, (0,), (3,), (1, 4), (6, 7, 8), (0, 3, 5, 9)]


def slow(test):
    """Marked slow and skipped unless EVOPLASTIC_SLOW_TESTS is set."""
    return pytest.mark.slow(_SLOW(test))


def fused_weights(theta, terms, tasks, init, act, chunk=None, eager=True, **options):
    """Adapted weights from fused.learn, by default running fused_step uncompiled."""
    targets = torch.nn.functional.one_hot(tasks.train_y, init.weights[-1].shape[1]).to(theta.dtype)
    options = fused.FusedOptions(compile=not eager, chunk=chunk, **options)
    return fused.learn(expand_theta(theta, terms), terms, tasks.train_x, targets,
                       act.derivative_from_output(tasks.train_x), init, act, options)


def assert_same_weights(got, want, rtol=1e-10, atol=1e-12):
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b.detach(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("feedback", ["fa", "bp", "dfa"])
@pytest.mark.parametrize("terms", TERM_SETS, ids=lambda t: ",".join(map(str, t)))
def test_fused_step_equals_autograd_path(feedback, terms):
    cfg = net_config(feedback=feedback)
    act, tasks, init = make_activation(cfg), make_tasks(), make_init(cfg)
    theta = pool_theta(6)[:, list(terms)]  # N = 6: 3 members × 2 tasks
    with torch.enable_grad():
        plain = run_episode(theta.clone().requires_grad_(True), terms, tasks, init, act)
    assert_same_weights(fused_weights(theta, terms, tasks, init, act), plain.weights)


@pytest.mark.parametrize("chunk", [0, 1, 2, 3])
def test_chunks_of_a_task_give_the_same_weights(chunk):
    cfg = net_config()
    act, tasks, init = make_activation(cfg), make_tasks(), make_init(cfg)
    theta = pool_theta(6)
    with torch.no_grad():
        plain = run_episode(theta, POOL, tasks, init, act)
    assert_same_weights(fused_weights(theta, POOL, tasks, init, act, chunk=chunk), plain.weights)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_fused_step_every_activation(activation):
    cfg = net_config(activation)
    act, tasks, init = make_activation(cfg), make_tasks(), make_init(cfg)
    theta = pool_theta(4)
    with torch.no_grad():
        plain = run_episode(theta, POOL, tasks, init, act)
    assert_same_weights(fused_weights(theta, POOL, tasks, init, act), plain.weights)


def test_no_steps_leaves_initial_weights():
    cfg = net_config()
    act, init = make_activation(cfg), make_init(cfg)
    tasks = make_tasks(steps=0)
    weights = fused_weights(pool_theta(4), POOL, tasks, init, act)
    for after, before in zip(weights, init.weights):
        assert torch.equal(after, before.repeat(2, 1, 1))


def paper_inputs(n_tasks=2, steps=3, seed=0):
    """Float32 tasks and networks of the paper's shapes, for a few online steps."""
    g = torch.Generator().manual_seed(seed)
    dims = PAPER_DIMS
    labels = lambda n: torch.randint(0, 5, (n_tasks, n), generator=g)
    tasks = TaskBatch(torch.rand(n_tasks, steps, dims[0], generator=g), labels(steps),
                      torch.rand(n_tasks, 10, dims[0], generator=g), labels(10), torch.arange(5).repeat(n_tasks, 1))
    init = init_network(NetworkConfig(), n_tasks, make_generator(seed, "paper"), torch.float32)
    return tasks, init, make_activation(NetworkConfig())


FLOAT32_TOLERANCE = {"rtol": 1e-4, "atol": 1e-6}
"""Weights are O(0.2) with paper-like θ; both float32 paths stay within ~2e-7 of a float64 run."""


def test_fused_step_paper_shapes_float32():
    tasks, init, act = paper_inputs()
    theta = make_theta(POOL, 4)
    with torch.no_grad():
        plain = run_episode(theta, POOL, tasks, init, act)
    assert_same_weights(fused_weights(theta, POOL, tasks, init, act), plain.weights, **FLOAT32_TOLERANCE)


def test_compiled_run_episode_equals_autograd_path():
    cfg = net_config(feedback="fa")
    act, tasks, init = make_activation(cfg), make_tasks(), make_init(cfg)
    theta = pool_theta(6)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a compiler failure must not pass as the eager loop
        with torch.no_grad():
            fast = run_episode(theta, POOL, tasks, init, act, compiled=True)
    with torch.enable_grad():
        graph = run_episode(theta.clone().requires_grad_(True), POOL, tasks, init, act, compiled=True)
    assert graph.loss.requires_grad  # a recorded graph always takes the plain path
    torch.testing.assert_close(fast.loss, graph.loss.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(fast.accuracy, graph.accuracy)
    assert_same_weights(fast.weights, graph.weights)


def test_compiler_failure_falls_back_to_the_eager_loop():
    cfg = net_config()
    base = make_activation(cfg)

    def untraceable(z):  # splits the graph, which fullgraph=True refuses: compilation fails at once
        torch._dynamo.graph_break()
        return base.forward(z)

    act = Activation("untraceable", untraceable, base.derivative, base.derivative_from_output, True)
    tasks, init, theta = make_tasks(), make_init(cfg), pool_theta(4)[:, list(BIO)]
    with torch.no_grad():
        plain = run_episode(theta, BIO, tasks, init, act)
        with pytest.warns(RuntimeWarning, match="compiled inner loop unavailable.*eager loop"):
            fast = run_episode(theta, BIO, tasks, init, act, compiled=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # a failed key is not tried (nor reported) again
            again = run_episode(theta, BIO, tasks, init, act, compiled=True)
    for result in (fast, again):
        torch.testing.assert_close(result.loss, plain.loss, rtol=0, atol=0)


@slow
@pytest.mark.parametrize("feedback", ["fa", "bp"])
def test_compiled_paper_network_float32(feedback):
    tasks, init, act = paper_inputs(steps=5)
    if feedback == "bp":
        init.feedback = None
    theta = make_theta(POOL, 16)  # 8 members per task: one chunk each
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with torch.no_grad():
            fast = run_episode(theta, POOL, tasks, init, act, compiled=True)
            plain = run_episode(theta, POOL, tasks, init, act)
    assert_same_weights(fast.weights, plain.weights, **FLOAT32_TOLERANCE)
    torch.testing.assert_close(fast.loss, plain.loss, **FLOAT32_TOLERANCE)


@pytest.mark.parametrize("terms", TERM_SETS + [(2,), (9,), (3, 9), (4, 8), (5, 6)], ids=str)
def test_update_rank_is_the_number_of_factor_columns(terms):
    n, n_post, n_pre = 2, 4, 3
    r = lambda *s: torch.rand(*s, dtype=torch.float64)
    theta_full = expand_theta(r(n, len(terms)), terms)
    _, left, right = low_rank_update(theta_full, terms, r(n, n_post, n_pre), r(n, n_pre), r(n, n_post),
                                     r(n, n_pre), r(n, n_post), r(n, n_post), column_dim=1)
    assert left.shape == (n, update_rank(terms), n_post) and right.shape == (n, update_rank(terms), n_pre)
    assert needs_backprojection(terms) == bool({6, 7, 9} & set(terms))


def pending_update_inputs(terms, feedback="fa"):
    """Tiny float64 inputs of one step with a non-zero pending update (keep < 1, random factors)."""
    cfg = net_config(feedback=feedback)
    act, tasks, init = make_activation(cfg), make_tasks(), make_init(cfg)
    theta_full = expand_theta(pool_theta(3)[:, list(terms)], terms)
    targets = torch.nn.functional.one_hot(tasks.train_y, init.weights[-1].shape[1]).to(theta_full.dtype)
    feedback = None if init.feedback is None else [b[:1] for b in init.feedback]
    sample = (tasks.train_x[0, :1], targets[0, :1], act.derivative_from_output(tasks.train_x[0, :1]))
    return act, theta_full, [w[0] for w in init.weights], feedback, sample, init.direct


@pytest.mark.parametrize("feedback", ["fa", "bp"])
def test_compiled_fused_step_reads_the_previous_weights(feedback):
    # torch < 2.12's Inductor wrote W_t before the products read W_{t-1}: exact at step 0 only
    terms = POOL
    act, theta_full, init_weights, fb, (x, target, slope), direct = pending_update_inputs(terms, feedback)
    weights, left, right, keep = fused.self_check_inputs(theta_full, init_weights, update_rank(terms), torch.float64)
    results = []
    for step in (fused.step_function(terms, act, compile=True, direct=direct),
                 fused.step_function(terms, act, compile=False, direct=direct)):
        out = [torch.zeros_like(w) for w in weights]
        with torch.no_grad():
            factors = step([w.clone() for w in weights], out, fb, left, right, keep, theta_full, x, target, slope)
        results.append((out, factors))
    (got, (got_l, got_r)), (want, (want_l, want_r)) = results
    assert_same_weights(got + got_l + got_r, want + want_l + want_r)
    pending = [fused.pending_weights(w, keep, u, v) for w, u, v in zip(weights, left, right)]
    assert_same_weights(want, pending)  # the pending update is what was written, and it is not small
    assert max(float((p - w).abs().max() / w.abs().max()) for p, w in zip(pending, weights)) > 0.1


def test_self_check_rejects_a_step_that_reads_the_new_weights():
    terms = BIO
    act, theta_full, init_weights, fb, (x, target, slope), direct = pending_update_inputs(terms)
    eager = fused.step_function(terms, act, compile=False)

    def misordered(weights, out, *args):  # the torch 2.11 miscompilation: W_t written before it is read
        for w, u, v in zip(weights, args[1], args[2]):
            w.copy_(fused.pending_weights(w, args[3], u, v))
        return eager(weights, out, *args)

    fused.self_check(eager, eager, theta_full, init_weights, fb, x, target, slope, update_rank(terms), torch.float64)
    with pytest.raises(fused.SelfCheckError, match="differs from the eager step"):
        fused.self_check(misordered, eager, theta_full, init_weights, fb, x, target, slope, update_rank(terms),
                         torch.float64)


def test_learn_falls_back_when_the_self_check_fails(monkeypatch):
    cfg = net_config()
    act, tasks, init = make_activation(cfg), make_tasks(), make_init(cfg)
    theta = pool_theta(4)[:, list(BIO)]

    def fail(*args, **kwargs):
        raise fused.SelfCheckError("compiled step differs from the eager step by 0.5 (relative)")

    monkeypatch.setattr(fused, "self_check", fail)
    monkeypatch.setattr(fused, "_FAILED", set())
    monkeypatch.setattr(fused, "_CHECKED", set())
    monkeypatch.setattr(fused, "_FALLBACKS", [])
    with torch.no_grad():
        plain = run_episode(theta, BIO, tasks, init, act)
        with pytest.warns(RuntimeWarning, match="SelfCheckError.*eager loop"):
            fast = run_episode(theta, BIO, tasks, init, act, compiled=True)
    torch.testing.assert_close(fast.loss, plain.loss, rtol=0, atol=0)
    assert len(fused.compile_fallbacks()) == 1 and "differs" in fused.compile_fallbacks()[0]


@pytest.mark.parametrize("calls", [[(6, 2)], [(4, 2), (2, 2)]], ids=["remainder-chunk", "one-member-call"])
def test_self_check_covers_every_compiled_shape(monkeypatch, calls):
    """A 'compiled' step wrong only for chunks of one pair: the remainder chunk (3 pairs per task in chunks of 2)
    or a later 1-member call compiles its own shape, which must be checked (and refused) at its first use."""
    cfg = net_config()
    act, tasks, init = make_activation(cfg), make_tasks(), make_init(cfg)
    eager = fused.step_function(BIO, act, compile=False)

    def wrong_for_one_pair(weights, out, *args):
        factors = eager(weights, out, *args)
        if weights[0].shape[0] == 1:
            out[0].mul_(1.5)
        return factors

    monkeypatch.setattr(fused, "step_function",
                        lambda terms, activation, compile, direct=False, kernel="inductor":
                        wrong_for_one_pair if compile else eager)
    for name, value in (("_FAILED", set()), ("_CHECKED", set()), ("_FALLBACKS", [])):
        monkeypatch.setattr(fused, name, value)
    results = []
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for members, chunk in calls:
            results.append(fused_weights(pool_theta(members)[:, list(BIO)], BIO, tasks, init, act, chunk=chunk,
                                         eager=False))
    assert all(r is not None for r in results[:-1]) and results[-1] is None  # the 1-pair shape was refused
    assert len(fused.compile_fallbacks()) == 1 and "SelfCheckError" in fused.compile_fallbacks()[0]
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == fused.compile_fallbacks()
    assert sum((2, 10) in s for s in fused._CHECKED) == 1  # the 2-pair θ shape was checked once, then trusted
