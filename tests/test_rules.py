"""Each plasticity term against a literal per-sample implementation of the paper's table."""

import pytest
import torch

from evoplastic.families.paper.rules import (
    GENERATED_TERMS,
    N_TERMS,
    N_VOCAB,
    NAMED_RULES,
    default_theta,
    expand_theta,
    low_rank_update,
    resolve_terms,
)

SHAPES = [(5, 7), (1, 3), (4, 1), (6, 6)]
"""(n_post, n_pre) layer shapes, including single-unit layers."""


def col(v: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, 1)


def reference_terms(w, pre, post, pre_error, post_error):
    """T0..T9 for one sample, written exactly as the table: column vectors, matrix chains; then the
    generated terms m·q pᵀ, each a dense matrix."""
    y_prev, y, e_prev, e = col(pre), col(post), col(pre_error), col(post_error)
    one = torch.ones_like(y)
    one_pre = torch.ones_like(y_prev)
    modulators = [torch.ones(1, 1, dtype=w.dtype), one.T @ y, y.T @ w @ e_prev, e.T @ w @ y_prev]
    posts, pres = [y, e, one], [y_prev, e_prev, one_pre]
    generated = [modulators[m] * (posts[q] @ pres[p].T) for m, q, p in GENERATED_TERMS]
    return [
        torch.outer(post_error, pre),
        torch.outer(post, pre_error),
        torch.outer(post_error, pre_error),
        w,
        torch.outer(one.squeeze(1), pre_error),
        e @ one.T @ y @ y_prev.T,
        y @ y.T @ w @ e_prev @ e_prev.T,
        e @ y.T @ w @ e_prev @ y_prev.T,
        y @ y_prev.T @ w.T @ e @ e_prev.T,
        y @ y_prev.T - (y @ y.T) @ w,
    ] + generated


def random_layer(shape, n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    n_post, n_pre = shape
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)
    w, pre, post, pre_error, post_error = r(n, n_post, n_pre), r(n, n_pre), r(n, n_post), r(n, n_pre), r(n, n_post)
    drive = torch.stack([w[i] @ pre[i] for i in range(n)])
    return w, pre, post, pre_error, post_error, drive


def reference_delta(theta_full, terms, w, pre, post, pre_error, post_error):
    """-Σ_{r in terms} θ_r T_r, one sample at a time."""
    out = []
    for i in range(w.shape[0]):
        t = reference_terms(w[i], pre[i], post[i], pre_error[i], post_error[i])
        out.append(-sum(theta_full[i, r] * t[r] for r in terms))
    return torch.stack(out)


def factored_delta(theta_full, terms, w, pre, post, pre_error, post_error, drive):
    decay, left, right = low_rank_update(theta_full, terms, w, pre, post, pre_error, post_error, drive)
    delta = -torch.bmm(left, right.transpose(1, 2))
    if decay is not None:
        delta = delta - decay.view(-1, 1, 1) * w
    return delta, left.shape[2]


def check(terms, shape, seed=0, noise_outside=False):
    w, pre, post, pre_error, post_error, drive = random_layer(shape, seed=seed)
    g = torch.Generator().manual_seed(100 + seed)
    theta = torch.randn(w.shape[0], len(terms), generator=g, dtype=torch.float64)
    theta_full = expand_theta(theta, terms)
    if noise_outside:  # coefficients of terms outside the rule must be ignored
        outside = torch.ones(theta_full.shape[1], dtype=torch.bool)
        outside[list(terms)] = False
        theta_full = torch.where(outside, torch.randn(theta_full.shape, generator=g, dtype=torch.float64), theta_full)
    got, rank = factored_delta(theta_full, terms, w, pre, post, pre_error, post_error, drive)
    want = reference_delta(theta_full, terms, w, pre, post, pre_error, post_error)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert rank <= (3 if max(terms) < N_TERMS else 6)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("term", range(N_TERMS))
def test_single_term_matches_reference(term, shape):
    check((term,), shape)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("term", range(N_TERMS, N_VOCAB))
def test_single_generated_term_matches_reference(term, shape):
    check((term,), shape)


@pytest.mark.parametrize("seed", range(4))
def test_random_mix_of_paper_and_generated_terms_matches_reference(seed):
    g = torch.Generator().manual_seed(seed)
    terms = tuple(sorted(torch.randperm(N_VOCAB, generator=g)[:12].tolist()))
    check(terms, (5, 7), seed=seed, noise_outside=True)


def test_generated_terms_are_new():
    """No generated term is proportional to a paper term or to another generated term (de-duplicated):
    over several samples, since a modulated term is a multiple of its product within one sample."""
    w, pre, post, pre_error, post_error, _ = random_layer((5, 7), n=6)
    samples = [reference_terms(w[i], pre[i], post[i], pre_error[i], post_error[i]) for i in range(6)]
    flat = torch.stack([torch.cat([terms[r].flatten() for terms in samples]) for r in range(N_VOCAB)])
    flat = flat / flat.norm(dim=1, keepdim=True)
    cosine = (flat @ flat.T).abs() - torch.eye(N_VOCAB, dtype=flat.dtype)
    assert cosine.max() < 0.999
    assert N_VOCAB - N_TERMS == 24


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", range(4))
def test_random_subset_matches_reference(seed, shape):
    g = torch.Generator().manual_seed(seed)
    size = int(torch.randint(2, N_TERMS, (1,), generator=g))
    terms = tuple(sorted(torch.randperm(N_TERMS, generator=g)[:size].tolist()))
    check(terms, shape, seed=seed)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", sorted(NAMED_RULES))
def test_named_rules_match_reference(name, shape):
    check(NAMED_RULES[name], shape)


@pytest.mark.parametrize("terms", [(2,), (4,), (6,), (3,), (1, 8), (0, 2, 9), (5, 7)])
def test_coefficients_outside_the_rule_are_ignored(terms):
    check(terms, (5, 7), noise_outside=True)


def test_decay_only_rule_scales_weights():
    w, pre, post, pre_error, post_error, drive = random_layer((4, 3))
    theta_full = expand_theta(torch.full((3, 1), 0.25, dtype=torch.float64), (3,))
    got, _ = factored_delta(theta_full, (3,), w, pre, post, pre_error, post_error, drive)
    torch.testing.assert_close(got, -0.25 * w)


def test_no_decay_factor_when_t3_not_searched():
    w, pre, post, pre_error, post_error, drive = random_layer((4, 3))
    decay, _, _ = low_rank_update(expand_theta(torch.ones(3, 2, dtype=torch.float64), (0, 2)), (0, 2),
                                  w, pre, post, pre_error, post_error, drive)
    assert decay is None


def test_expand_theta_places_columns():
    theta = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    full = expand_theta(theta, (0, 2, 9))
    assert full.shape == (2, N_TERMS)
    torch.testing.assert_close(full[:, [0, 2, 9]], theta)
    assert full[:, [1, 3, 4, 5, 6, 7, 8]].abs().sum() == 0


def test_default_theta_is_paper_start():
    assert default_theta((0, 2, 9)) == (1e-3, 0.0, 0.0)
    assert default_theta((2, 9)) == (0.0, 0.0)


@pytest.mark.parametrize(
    "spec, terms",
    [
        ("fa", (0,)), ("bp", (0,)), ("bio", (0, 2, 9)), ("ehebb", (0, 2)), ("oja", (0, 9)),
        ("pool", tuple(range(10))), (" BIO ", (0, 2, 9)), ("0,2,9", (0, 2, 9)), ("9 2 0", (0, 2, 9)),
        ("2,2,0", (0, 2)), ("7", (7,)), ((9, 0), (0, 9)), ([3], (3,)),
    ],
)
def test_resolve_terms(spec, terms):
    assert resolve_terms(spec) == terms


@pytest.mark.parametrize("spec", ["hebb", "0,x", "bio,2"])
def test_resolve_terms_unknown_name_lists_choices(spec):
    with pytest.raises(ValueError, match=r"unknown rule .*bio.*'0,2,9'"):
        resolve_terms(spec)


@pytest.mark.parametrize("spec", ["34", "0,-1", "", (), [40]])
def test_resolve_terms_bad_indices_name_the_range(spec):
    with pytest.raises(ValueError, match=r"0\.\.33"):
        resolve_terms(spec)
