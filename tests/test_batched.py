"""Batched products against einsum: batch of one, one matrix per row, and matrices shared by tasks."""

import pytest
import torch

from evoplastic.families.paper.batched import low_rank_step, matvec, vecmat


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("n", [1, 3])
def test_matvec(n):
    w, v = rand(n, 5, 7), rand(n, 7, seed=1)
    torch.testing.assert_close(matvec(w, v), torch.einsum("noi,ni->no", w, v))


@pytest.mark.parametrize("n, t", [(1, 1), (4, 4), (4, 1), (6, 2), (6, 3)])
def test_vecmat_row_n_uses_matrix_n_mod_t(n, t):
    w, v = rand(t, 5, 7), rand(n, 5, seed=1)
    tiled = w.repeat(n // t, 1, 1)  # row n gets matrix n mod T
    torch.testing.assert_close(vecmat(v, w), torch.einsum("noi,no->ni", tiled, v))


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("decay", [False, True])
def test_low_rank_step_in_place_and_out_of_place_agree(n, decay):
    w, left, right = rand(n, 5, 7), rand(n, 5, 2, seed=1), rand(n, 7, 2, seed=2)
    keep = rand(n, seed=3) if decay else None
    want = (w if keep is None else keep.view(-1, 1, 1) * w) - left @ right.transpose(1, 2)
    torch.testing.assert_close(low_rank_step(w, keep, left, right, inplace=False), want)
    torch.testing.assert_close(low_rank_step(w.clone(), keep, left, right, inplace=True), want)
