"""The batched inner loop against a plain per-pair, per-sample reference; no-grad vs autograd."""

import dataclasses

import pytest
import torch

from evoplastic.families.kcap.config import KcapConfig
from evoplastic.families.kcap.data import sample_tasks
from evoplastic.families.kcap.loop import fit_linear, learn
from evoplastic.families.kcap.network import init_state
from evoplastic.families.kcap.rules import initial_theta, theta_size
from evoplastic.seeding import make_generator

TINY = KcapConfig(n_features=4, n_hidden=7, cap=2, recurrent_steps=2, n_unlabelled=6, labels_per_class=2,
                  n_query=3, mlp_hidden=3)


# --- the reference: one network, one sample, one synapse at a time where it matters ---

def ref_kcap(v, k):
    keep = sorted(range(len(v)), key=lambda i: (-v[i].item(), i))[:k]
    out = torch.zeros_like(v)
    out[keep] = 1.0
    return out


def ref_term(name, m, pre, post):
    one_post, one_pre = torch.ones_like(post), torch.ones_like(pre)
    return {
        "hebb": torch.outer(post, pre),
        "post": torch.outer(post, one_pre),
        "pre": torch.outer(one_post, pre),
        "decay": m,
        "oja": torch.outer(post, pre) - torch.diag(post**2) @ m,
        "covariance": torch.outer(post - post.mean(), pre - pre.mean()),
        "gated_decay": torch.diag(post**2) @ m,
    }[name]


def ref_mlp(block, h, pre_j, post_i, m_ij):
    w1, b1, w2, b2 = block[: 3 * h].reshape(h, 3), block[3 * h: 4 * h], block[4 * h: 5 * h], block[5 * h]
    return w2 @ torch.tanh(w1 @ torch.stack([pre_j, post_i, m_ij]) + b1) + b2


def ref_delta(block, cfg, m, pairs):
    total = torch.zeros_like(m)
    for pre, post in pairs:
        if cfg.rule == "pool":
            total += sum(block[r] * ref_term(name, m, pre, post) for r, name in enumerate(cfg.terms))
        else:
            for i in range(m.shape[0]):
                for j in range(m.shape[1]):
                    total[i, j] += ref_mlp(block, cfg.mlp_hidden, pre[j], post[i], m[i, j])
    return total / len(pairs)


def ref_normalise(m, how):
    if how == "none":
        return m
    out = m.clone()
    if how == "row":
        for i in range(m.shape[0]):
            out[i] = m[i] / m[i].norm()
    else:
        for j in range(m.shape[1]):
            out[:, j] = m[:, j] / m[:, j].norm()
    return out


def ref_block(theta_row, cfg, which):
    size = theta_size(cfg) // (len(cfg.plastic) if cfg.per_matrix else 1)
    start = cfg.plastic.index(which) * size if cfg.per_matrix else 0
    return theta_row[start: start + size]


def ref_forward(m_in, m_rec, x, cfg):
    xs = [x, ref_kcap(m_in @ x, cfg.cap)]
    for _ in range(cfg.recurrent_steps):
        xs.append(ref_kcap(m_rec @ xs[-1], cfg.cap))
    return xs


def ref_learn(theta, unlabelled, init, cfg):
    """Adapted (M_in, M_rec, M_out) of pair p = member·T + task, one pair at a time."""
    n_tasks = unlabelled.shape[0]
    out = []
    for p in range(theta.shape[0]):
        t = p % n_tasks
        m_in, m_rec = init.M_in[t].clone(), init.M_rec[t].clone()
        for s in range(unlabelled.shape[1]):
            xs = ref_forward(m_in, m_rec, unlabelled[t, s], cfg)
            new_in, new_rec = m_in, m_rec
            if "M_in" in cfg.plastic:
                delta = ref_delta(ref_block(theta[p], cfg, "M_in"), cfg, m_in, [(xs[0], xs[1])])
                new_in = ref_normalise(m_in + delta, cfg.normalise)
            if "M_rec" in cfg.plastic:
                pairs = [(xs[i], xs[i + 1]) for i in range(1, len(xs) - 1)]
                delta = ref_delta(ref_block(theta[p], cfg, "M_rec"), cfg, m_rec, pairs)
                new_rec = ref_normalise(m_rec + delta, cfg.normalise)
            m_in, m_rec = new_in, new_rec
        z = torch.stack([ref_forward(m_in, m_rec, x, cfg)[-1] for x in unlabelled[t]])
        x = unlabelled[t]
        n, m = z.shape
        m_out = torch.linalg.solve(z.T @ z / n + cfg.readout_ridge * torch.eye(m, dtype=z.dtype), z.T @ x / n).T
        out.append((m_in, m_rec, m_out))
    return out


def setup(cfg, n_tasks=2, members=2, seed=0):
    tasks = sample_tasks(cfg, n_tasks, make_generator(seed, "tasks"))
    init = init_state(cfg, n_tasks, make_generator(seed, "init"), torch.float64)
    g = make_generator(seed, "theta")
    base = initial_theta(cfg, torch.float64)
    scale = base.abs().clamp_min(1e-2)
    members_theta = base + scale * torch.randn(members, len(base), generator=g, dtype=torch.float64)
    return members_theta.repeat_interleave(n_tasks, 0), tasks, init


CASES = [
    dict(rule="pool", terms=("hebb", "oja", "covariance", "decay"), normalise="row"),
    dict(rule="pool", terms=("hebb", "post", "pre", "gated_decay"), normalise="none", per_matrix=True),
    dict(rule="pool", terms=("hebb", "covariance"), normalise="column", plastic=("M_rec",)),
    dict(rule="mlp", normalise="row"),
    dict(rule="mlp", normalise="none", per_matrix=True),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_batched_learn_equals_reference_loop(case):
    cfg = dataclasses.replace(TINY, **case)
    theta, tasks, init = setup(cfg)
    state = learn(theta, tasks.unlabelled, init, cfg)
    assert state.n_pairs == 4
    for p, (m_in, m_rec, m_out) in enumerate(ref_learn(theta, tasks.unlabelled, init, cfg)):
        assert torch.allclose(state.M_in[p], m_in, atol=1e-10)
        assert torch.allclose(state.M_rec[p], m_rec, atol=1e-10)
        assert torch.allclose(state.M_out[p], m_out, atol=1e-8)
    moved = (state.M_rec - init.M_rec.repeat(2, 1, 1)).abs().amax((1, 2))
    assert (moved > 1e-3).all()  # the rule really changed the weights
    if "M_in" not in cfg.plastic:
        assert torch.equal(state.M_in, init.M_in.repeat(2, 1, 1))


@pytest.mark.parametrize("rule", ["pool", "mlp"])
def test_no_grad_and_autograd_agree_and_gradient_flows(rule):
    cfg = dataclasses.replace(TINY, rule=rule)
    theta, tasks, init = setup(cfg, seed=1)
    with torch.no_grad():
        plain = learn(theta, tasks.unlabelled, init, cfg)
    leaf = theta.clone().requires_grad_()
    graph = learn(leaf, tasks.unlabelled, init, cfg)
    for name in ("M_in", "M_rec", "M_out"):
        assert torch.equal(getattr(plain, name), getattr(graph, name).detach())
    (graph.M_in.square().sum() + graph.M_rec.square().sum()).backward()
    assert torch.isfinite(leaf.grad).all() and leaf.grad.abs().sum() > 0


def test_fit_linear_primal_and_dual_agree():
    g = make_generator(2)
    f = torch.randn(3, 5, 8, generator=g, dtype=torch.float64)  # B < F: dual
    y = torch.randn(3, 5, 2, generator=g, dtype=torch.float64)
    w, c = fit_linear(f, y, 0.1, bias=True)
    fc, yc = f - f.mean(1, keepdim=True), y - y.mean(1, keepdim=True)
    primal = torch.linalg.solve(fc.transpose(1, 2) @ fc / 5 + 0.1 * torch.eye(8, dtype=torch.float64),
                                fc.transpose(1, 2) @ yc / 5)
    assert torch.allclose(w, primal) and torch.allclose(c, y.mean(1, keepdim=True) - f.mean(1, keepdim=True) @ w)


def test_bad_shapes_are_explained():
    theta, tasks, init = setup(TINY)
    with pytest.raises(ValueError, match="theta must be"):
        learn(theta[:, :1], tasks.unlabelled, init, TINY)
    with pytest.raises(ValueError, match="multiple of the 2 tasks"):
        learn(theta[:3], tasks.unlabelled, init, TINY)
    with pytest.raises(ValueError, match="features"):
        learn(theta, tasks.unlabelled[..., :3], init, TINY)
