"""The larger rule spaces (per-layer θ, generated terms, plastic feedback) against a plain per-member loop.

The reference learns one member at a time with dense matrices: every term written out as a
matrix (test_rules.reference_terms), the feedback rule likewise; the batched loop must agree.
"""

import pytest
import torch
import torch.nn.functional as F
from test_inner import DIMS, make_init, make_tasks, net_config
from test_rules import reference_terms

from evoplastic.config import ConfigError, load_config
from evoplastic.families import theta_space
from evoplastic.families.paper.inner import run_episode
from evoplastic.families.paper.network import make_activation
from evoplastic.families.paper.space import RuleSpace
from evoplastic.families.paper.terms import N_VOCAB, VOCAB_SCALE

L = len(DIMS) - 1


def reference_feedback_delta(phi, b, y_prev, e_prev, y_post, e_post):
    """-Σ φ_r F_r for one member, dense: hebb e yᵀ, ee e eᵀ, decay B, Oja y yᵀ - y yᵀ B."""
    terms = [torch.outer(e_post, y_prev), torch.outer(e_post, e_prev), b,
             torch.outer(y_post, y_prev) - torch.outer(y_post, y_post) @ b]
    return -sum(phi[r] * terms[r] for r in range(4))


def reference_episode(space: RuleSpace, theta, tasks, init, activation, task: int):
    """Query loss and final W, B of one member (θ row) on one task, one dense step at a time."""
    weights = [w[task].clone() for w in init.weights]
    feedback = None if init.feedback is None else [b[task].clone() for b in init.feedback]
    per_block = len(space.terms)
    weight_theta = [dict(zip(space.terms, theta[(b if space.per_layer else 0) * per_block:][:per_block].tolist()))
                    for b in range(L)]
    n_fb, offset = len(space.feedback_terms), space.n_weight
    phi = [dict(zip(space.feedback_terms, theta[offset + (b if space.per_layer else 0) * n_fb:][:n_fb].tolist()))
           for b in range(L)]
    n_out = weights[-1].shape[0]
    for step in range(tasks.train_x.shape[1]):
        x = tasks.train_x[task, step]
        ys, zs = [x], []
        for layer, w in enumerate(weights):
            zs.append(w @ ys[-1])
            ys.append(torch.softmax(zs[-1], 0) if layer == L - 1 else activation.forward(zs[-1]))
        errors = [ys[-1] - F.one_hot(tasks.train_y[task, step], n_out).to(x.dtype)]
        for layer in range(L - 1, -1, -1):
            b = weights[layer] if feedback is None else feedback[layer]
            source = errors[-1] if init.direct else errors[0]
            slope = activation.derivative(zs[layer - 1]) if layer else activation.derivative_from_output(x)
            errors.insert(0, (b.T @ source) * slope)
        new_weights = []
        for layer, w in enumerate(weights):
            table = reference_terms(w, ys[layer], ys[layer + 1], errors[layer], errors[layer + 1])
            new_weights.append(w - sum(c * table[t] for t, c in weight_theta[layer].items()))
        if space.feedback_terms:
            post = -1 if init.direct else None
            feedback = [b + reference_feedback_delta(
                [phi[layer].get(r, 0.0) for r in range(4)], b, ys[layer], errors[layer],
                ys[post if post else layer + 1], errors[post if post else layer + 1])
                for layer, b in enumerate(feedback)]
        weights = new_weights
    h = tasks.query_x[task]
    for layer, w in enumerate(weights):
        h = h @ w.T
        h = h if layer == L - 1 else activation.forward(h)
    loss = F.cross_entropy(h, tasks.query_y[task])
    return loss, weights, feedback


def random_theta(space: RuleSpace, n: int, seed: int = 0) -> torch.Tensor:
    """Coefficients of sensible size per coordinate (ES-scale noise around small values)."""
    g = torch.Generator().manual_seed(seed)
    scales = torch.tensor(space.scales(), dtype=torch.float64)
    return torch.randn(n, space.size, generator=g, dtype=torch.float64) * scales * 2


SPACES = {
    "per_layer_bio": dict(terms=(0, 2, 9), per_layer=True),
    "generated": dict(terms=tuple(range(N_VOCAB))),
    "per_layer_generated": dict(terms=(0, 3, 10, 14, 21, 29, 33), per_layer=True),
    "fa_plastic_all": dict(terms=(0, 2, 9), feedback_terms=(0, 1, 2, 3)),
    "fa_plastic_per_layer": dict(terms=(0, 2), per_layer=True, feedback_terms=(0, 2, 3)),
}


@pytest.mark.parametrize("feedback", ["fa", "dfa", "bp"])
@pytest.mark.parametrize("name", sorted(SPACES))
def test_batched_loop_equals_plain_per_member_loop(name, feedback):
    kwargs = SPACES[name]
    if feedback == "bp" and kwargs.get("feedback_terms"):
        pytest.skip("bp has no feedback matrix to make plastic (the config refuses it)")
    cfg = net_config(feedback=feedback)
    act, tasks, init = make_activation(cfg), make_tasks(), make_init(cfg)
    space = RuleSpace(n_layers=L, **kwargs)
    theta = random_theta(space, 6)  # 3 members × 2 tasks: pair n learns task n mod 2
    result = run_episode(theta, space, tasks, init, act)
    for n in range(theta.shape[0]):
        loss, weights, fb = reference_episode(space, theta[n], tasks, init, act, n % 2)
        torch.testing.assert_close(result.loss[n], loss, rtol=1e-9, atol=1e-12)
        for got, want in zip(result.weights, weights):
            torch.testing.assert_close(got[n], want, rtol=1e-9, atol=1e-12)
        if space.feedback_terms:
            for got, want in zip(result.feedback, fb):
                torch.testing.assert_close(got[n], want, rtol=1e-9, atol=1e-12)


def test_per_layer_rule_with_equal_layers_is_the_shared_rule():
    cfg = net_config()
    act, tasks, init = make_activation(cfg), make_tasks(), make_init(cfg)
    shared = RuleSpace((0, 2, 9), L)
    theta = random_theta(shared, 4)
    per_layer = RuleSpace((0, 2, 9), L, per_layer=True)
    a = run_episode(theta, shared, tasks, init, act)
    b = run_episode(theta.repeat(1, L), per_layer, tasks, init, act)
    torch.testing.assert_close(a.loss, b.loss, rtol=0, atol=0)


def test_layers_get_their_own_coefficients():
    """Zeroing one layer's block leaves exactly that layer's weights at their start."""
    cfg = net_config()
    act, tasks, init = make_activation(cfg), make_tasks(), make_init(cfg)
    space = RuleSpace((0, 2, 9), L, per_layer=True)
    theta = random_theta(space, 2)
    theta[:, 3:6] = 0  # W2
    result = run_episode(theta, space, tasks, init, act)
    assert torch.equal(result.weights[1], init.weights[1])
    assert not torch.equal(result.weights[0], init.weights[0])


def test_zero_feedback_rule_is_fixed_feedback():
    cfg = net_config()
    act, tasks, init = make_activation(cfg), make_tasks(), make_init(cfg)
    fixed, plastic = RuleSpace((0, 2, 9), L), RuleSpace((0, 2, 9), L, feedback_terms=(0, 1, 2, 3))
    theta = random_theta(fixed, 4)
    a = run_episode(theta, fixed, tasks, init, act)
    b = run_episode(torch.cat([theta, torch.zeros(4, 4, dtype=theta.dtype)], 1), plastic, tasks, init, act)
    torch.testing.assert_close(a.loss, b.loss, rtol=0, atol=0)
    assert a.feedback is None and torch.equal(b.feedback[0], init.feedback[0].repeat(2, 1, 1))


@pytest.mark.parametrize("name", ["per_layer_generated", "fa_plastic_per_layer"])
def test_no_grad_path_equals_autograd_path(name):
    cfg = net_config()
    act, tasks, init = make_activation(cfg), make_tasks(), make_init(cfg)
    space = RuleSpace(n_layers=L, **SPACES[name])
    theta = random_theta(space, 4)
    with torch.no_grad():
        plain = run_episode(theta, space, tasks, init, act)
    graph = theta.clone().requires_grad_(True)
    traced = run_episode(graph, space, tasks, init, act)
    torch.testing.assert_close(traced.loss.detach(), plain.loss, rtol=1e-12, atol=1e-14)
    traced.loss.sum().backward()
    assert graph.grad is not None and graph.grad.abs().sum() > 0


def test_theta_space_of_each_config():
    per_layer = load_config(None, ["rule.terms=bio", "rule.per_layer=true", "network.dims=[6,4,3,2]"])
    space = theta_space(per_layer)
    assert space.size == 9 and space.labels[:4] == ("θ_0@W1", "θ_2@W1", "θ_9@W1", "θ_0@W2")
    assert space.initial == (1e-3, 0.0, 0.0) * 3
    plastic = load_config(None, ["rule.terms=bio", "rule.feedback_terms=kp"])
    assert theta_space(plastic).labels == ("θ_0", "θ_2", "θ_9", "φ_hebb", "φ_decay")
    generated = load_config(None, ["rule.terms=generated"])
    assert theta_space(generated).size == N_VOCAB and theta_space(generated).scales == VOCAB_SCALE


def test_wrong_width_names_the_layout():
    space = RuleSpace((0, 2, 9), L, per_layer=True, feedback_terms=(0, 2))
    cfg = net_config()
    with pytest.raises(ValueError, match=r"theta has 3 values but the rule searches 15: 3 terms \[0, 2, 9\] "
                                         r"\+ 2 feedback terms per layer × 3 layers"):
        run_episode(torch.zeros(2, 3, dtype=torch.float64), space, make_tasks(), make_init(cfg),
                    make_activation(cfg))


def test_plastic_feedback_needs_a_feedback_matrix():
    cfg = net_config(feedback="bp")
    space = RuleSpace((0,), L, feedback_terms=(0,))
    with pytest.raises(ValueError, match="needs a feedback matrix"):
        run_episode(torch.zeros(2, 2, dtype=torch.float64), space, make_tasks(), make_init(cfg),
                    make_activation(cfg))
    with pytest.raises(ConfigError, match="network.feedback=bp has none"):
        load_config(None, ["rule.feedback_terms=kp", "network.feedback=bp"])


def test_ablations_cover_terms_layers_and_feedback():
    space = RuleSpace((0, 2), 2, per_layer=True, feedback_terms=(0, 2))
    groups = dict(space.ablations())
    assert groups["without θ_0"] == (0, 2) and groups["without φ_decay"] == (5, 7)
    assert groups["W2 fixed"] == (2, 3) and groups["feedback fixed"] == (4, 5, 6, 7)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; the CPU path is checked above")
@pytest.mark.parametrize("name", sorted(SPACES))
def test_cuda_equals_cpu(name):
    cfg = net_config()
    act, tasks, init = make_activation(cfg), make_tasks(), make_init(cfg)
    space = RuleSpace(n_layers=L, **SPACES[name])
    theta = random_theta(space, 6)
    cpu = run_episode(theta, space, tasks, init, act)
    gpu = run_episode(theta.cuda(), space, tasks.to("cuda", torch.float64), init.map(lambda t: t.cuda()), act)
    torch.testing.assert_close(gpu.loss.cpu(), cpu.loss, rtol=1e-9, atol=1e-12)


def test_terms_command_lists_the_vocabulary(capsys):
    from evoplastic.cli import main

    assert main(["terms"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.strip()[:2].strip().isdigit()]
    assert len(rows) == N_VOCAB
    assert "33          1e-04  (e_l^T W_l y_{l-1}) 1 e_{l-1}^T" in out
    assert "kp = ['hebb', 'decay']" in out



@pytest.mark.parametrize("feedback", ["fa", "bp", "dfa"])
@pytest.mark.parametrize("terms", [(0, 2, 9), (0, 3, 5, 6, 7), tuple(range(10))], ids=str)
def test_fused_step_with_per_layer_coefficients_equals_the_plain_loop(terms, feedback):
    """The fused step (run eagerly here) takes one coefficient row and one decay per layer."""
    from evoplastic.families.paper import fused

    cfg = net_config(feedback=feedback)
    act, tasks, init = make_activation(cfg), make_tasks(), make_init(cfg)
    space = RuleSpace(terms, L, per_layer=True)
    theta = random_theta(space, 6)
    plain = run_episode(theta, space, tasks, init, act)
    eager = run_episode(theta, space, tasks, init, act, compiled=fused.FusedOptions(compile=False, chunk=2))
    for got, want in zip(eager.weights, plain.weights):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(eager.loss, plain.loss, rtol=1e-10, atol=1e-12)


def test_compiled_per_layer_run_equals_the_plain_loop():
    """torch.compile'd step with per-layer coefficients (and decay) against the plain loop, float64."""
    from evoplastic.families.paper import fused

    cfg = net_config()
    act, tasks, init = make_activation(cfg), make_tasks(steps=3), make_init(cfg)
    space = RuleSpace((0, 2, 3, 9), L, per_layer=True)
    theta = random_theta(space, 4)
    plain = run_episode(theta, space, tasks, init, act)
    refused_before = len(fused.compile_fallbacks())
    compiled = run_episode(theta, space, tasks, init, act, compiled=fused.FusedOptions(chunk=2))
    assert len(fused.compile_fallbacks()) == refused_before  # compiled, not the plain loop's fallback
    torch.testing.assert_close(compiled.loss, plain.loss, rtol=1e-9, atol=1e-12)
