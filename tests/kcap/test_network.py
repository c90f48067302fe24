"""k-cap activation (exactly k ones, lowest index wins ties), initial weights and the forward pass."""

import torch

from evoplastic.families.kcap.config import KcapConfig
from evoplastic.families.kcap.network import KcapState, activity, decode, encode, init_state, kcap
from evoplastic.seeding import make_generator


def test_kcap_has_exactly_k_ones_at_the_largest():
    x = torch.randn(5, 7, 20, generator=make_generator(0), dtype=torch.float64)
    out = kcap(x, 4)
    assert set(out.unique().tolist()) == {0.0, 1.0}
    assert (out.sum(-1) == 4).all()
    kept_min = torch.where(out.bool(), x, torch.inf).min(-1).values
    dropped_max = torch.where(out.bool(), -torch.inf, x).max(-1).values
    assert (kept_min > dropped_max).all()


def test_kcap_ties_go_to_the_lowest_index():
    assert kcap(torch.zeros(1, 6), 2).tolist() == [[1, 1, 0, 0, 0, 0]]
    x = torch.tensor([[0.0, 3.0, 1.0, 3.0, 1.0, 1.0]])
    assert kcap(x, 3).tolist() == [[0, 1, 1, 1, 0, 0]]  # both 3s, then the first of the tied 1s
    assert kcap(x, 1).tolist() == [[0, 1, 0, 0, 0, 0]]
    assert kcap(torch.ones(3, 100), 5)[:, :5].sum() == 15  # beyond topk's small-size paths too


def test_init_state_shapes_scale_and_dtype():
    cfg = KcapConfig(n_features=10, n_hidden=64)
    s32 = init_state(cfg, 3, make_generator(1))
    s64 = init_state(cfg, 3, make_generator(1), torch.float64)
    assert s32.M_in.shape == (3, 64, 10) and s32.M_rec.shape == (3, 64, 64) and s32.M_out.shape == (3, 10, 64)
    assert s64.M_in.dtype == torch.float64 and torch.allclose(s32.M_in.double(), s64.M_in, atol=1e-6)
    assert abs(s64.M_rec.square().sum(2).mean().item() - 1) < 0.05  # rows of norm ≈ 1
    assert (s64.M_out == 0).all()


def test_encode_runs_the_recurrence():
    cfg = KcapConfig(n_features=4, n_hidden=9, cap=3, recurrent_steps=2)
    state = init_state(cfg, 2, make_generator(2), torch.float64)
    x = torch.randn(2, 5, 4, generator=make_generator(3), dtype=torch.float64)
    xs = activity(state, x, cfg)
    assert len(xs) == 4 and (xs[-1].sum(-1) == 3).all()
    x1 = kcap(x @ state.M_in.transpose(1, 2), 3)
    x3 = kcap(kcap(x1 @ state.M_rec.transpose(1, 2), 3) @ state.M_rec.transpose(1, 2), 3)
    assert torch.equal(encode(state, x, cfg), x3)
    assert decode(state, x3).shape == (2, 5, 4)


def test_expand_tiles_tasks_and_is_finite():
    cfg = KcapConfig(n_features=3, n_hidden=4, cap=1)
    state = init_state(cfg, 2, make_generator(4), torch.float64)
    big = state.expand(3)
    assert big.n_pairs == 6 and torch.equal(big.M_rec[4], state.M_rec[0]) and torch.equal(big.M_in[5], state.M_in[1])
    assert state.expand(1) is state
    bad = KcapState(big.M_in.clone(), big.M_rec, big.M_out)
    bad.M_in[2, 0, 0] = float("nan")
    assert bad.is_finite().tolist() == [True, True, False, True, True, True]


def test_codes_are_scale_invariant_without_a_bias():
    """a_k(M_in c x) = a_k(M_in x) for c > 0: the code sees only the input's direction, so concentric
    circles (which differ only in radius) cannot be told apart by any probe on it."""
    cfg = KcapConfig(n_features=10, n_hidden=32, cap=4, recurrent_steps=3)
    state = init_state(cfg, 2, make_generator(5), torch.float64)
    x = torch.randn(2, 50, 10, generator=make_generator(6), dtype=torch.float64)
    for c in (0.5, 2.0, 3.7):
        assert torch.equal(kcap(torch.matmul(c * x, state.M_in.transpose(1, 2)), cfg.cap),
                           kcap(torch.matmul(x, state.M_in.transpose(1, 2)), cfg.cap))
        assert torch.equal(encode(state, c * x, cfg), encode(state, x, cfg))


def test_input_bias_breaks_scale_invariance_and_keeps_other_weights():
    plain = KcapConfig(n_features=10, n_hidden=32, cap=4)
    biased = KcapConfig(n_features=10, n_hidden=32, cap=4, input_bias=1.0)
    s0, s1 = (init_state(c, 2, make_generator(5), torch.float64) for c in (plain, biased))
    assert s1.M_in.shape == (2, 32, 11) and torch.equal(s1.M_in[..., :10], s0.M_in)
    assert torch.equal(s1.M_rec, s0.M_rec)
    x = torch.randn(2, 50, 10, generator=make_generator(6), dtype=torch.float64)
    xs = activity(s1, x, biased)
    assert xs[0].shape == (2, 50, 11) and (xs[0][..., 10] == 1.0).all()
    assert torch.equal(xs[1], kcap(x @ s1.M_in[..., :10].transpose(1, 2) + s1.M_in[..., 10].unsqueeze(1), 4))
    changed = (encode(s1, 0.5 * x, biased) != encode(s1, x, biased)).any(-1).double().mean()
    assert changed > 0.2  # halving the radius now moves many codes
