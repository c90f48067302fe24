"""The online step as one Triton row pass per layer: W read once and written once.

fused.fused_step leaves it to Inductor to fuse a layer's products, which reads W three times
and writes it once per step. Here one launch per layer walks the rows of W_{t-1} for c pairs
of one task and, for each row r, forms the row of W_t = keep·W_{t-1} - Σ_k L_k ⊗ R_k (the pending
update of the previous step, as in fused_step), writes it into the other buffer, takes
z_r = row·y_{ℓ-1} and, when the rule needs u = W_tᵀ y_ℓ (T6, T7, T9), adds σ(z_r)·row to u
(the output layer's softmax with a running maximum, as online softmax does). The vector work
(σ, errors, factors) stays in torch, where torch.compile fuses it around the launches.

Bytes per step: one read and one write of W; bp feedback (B = W_t) reads W_{t-1} once more for
B_tᵀ e; fa and dfa read the task's shared B in one matmul. Arithmetic is float32 whatever W's
storage (float32, bfloat16, float16); a launch never reads what it writes. u is reduced in a
fixed order (per-split partial sums added by torch, no atomics), so results do not depend on
the run. On CUDA tensors the kernel is compiled; CPU tensors need Triton's interpreter (TRITON_INTERPRET=1
before triton is imported: the tests, slow).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import triton
import triton.language as tl

from evoplastic.families.paper import row_codes
from evoplastic.families.paper.network import Activation
from evoplastic.families.paper.row_codes import (  # noqa: F401 — the kernel's codes, re-exported
    ACT_CODES,
    ACT_GIVEN,
    ACT_NONE,
    ACT_SOFTMAX,
    SOFTPLUS_THRESHOLD,
    forward_row_weights,
    reference_forward,
)
from evoplastic.families.paper.rules import needs_backprojection
from evoplastic.families.paper.step_errors import errors_and_factors

TILE = 4096
"""Elements of W per block of rows (block_rows · next power of two ≥ columns)."""
MAX_COLUMNS = 4096
"""Widest layer input the kernel takes (a whole row is held in registers); wider ones raise ValueError."""
TARGET_PROGRAMS = 2048
"""Programs per launch worth aiming for: with fewer pairs than this, each pair's rows are split."""


def _row_pass_kernel(
    w_ptr, out_ptr, keep_ptr, left_ptr, right_ptr, v_ptr, a_ptr, z_ptr, u_ptr,
    rows, cols, rows_per_split, act_param,
    stride_wm, stride_wr, stride_om, stride_or, stride_km, stride_lm, stride_lk, stride_rm, stride_rk,
    stride_vm, stride_am, stride_zm, stride_um, stride_us,
    RANK: tl.constexpr, ACT: tl.constexpr, WRITE: tl.constexpr, DOT: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """Program (pair m, split s): rows [s·rows_per_split, …) of W_t = keep·W - Σ_k L_k ⊗ R_k.

    Writes those rows to out (WRITE), z_r = row·v to z (DOT) and Σ_r a_r row to u[m, s] (ACT).
    """
    m = tl.program_id(0).to(tl.int64)  # pair offsets exceed 2^31 elements at large N
    param = tl.cast(act_param, tl.float32)  # torch.compile passes a Python float as fp64: keep the arithmetic float32
    s = tl.program_id(1)
    col = tl.arange(0, BLOCK_C)
    col_ok = col < cols
    keep = tl.load(keep_ptr + m * stride_km).to(tl.float32)
    r0 = tl.load(right_ptr + m * stride_rm + col, mask=col_ok, other=0.0).to(tl.float32)
    if RANK > 1:
        r1 = tl.load(right_ptr + m * stride_rm + stride_rk + col, mask=col_ok, other=0.0).to(tl.float32)
    if RANK > 2:
        r2 = tl.load(right_ptr + m * stride_rm + 2 * stride_rk + col, mask=col_ok, other=0.0).to(tl.float32)
    if DOT:
        v = tl.load(v_ptr + m * stride_vm + col, mask=col_ok, other=0.0).to(tl.float32)
    u = tl.zeros([BLOCK_C], dtype=tl.float32)
    if ACT == 2:
        run_max = tl.max(tl.full([BLOCK_R], float("-inf"), tl.float32), axis=0)
        run_sum = tl.sum(tl.zeros([BLOCK_R], dtype=tl.float32), axis=0)
    first = s * rows_per_split
    last = tl.minimum(first + rows_per_split, rows)
    for start in range(first, last, BLOCK_R):
        row = start + tl.arange(0, BLOCK_R)
        row_ok = row < last
        mask = row_ok[:, None] & col_ok[None, :]
        tile = tl.load(w_ptr + m * stride_wm + row[:, None] * stride_wr + col[None, :], mask=mask, other=0.0)
        l0 = tl.load(left_ptr + m * stride_lm + row, mask=row_ok, other=0.0).to(tl.float32)
        tile = keep * tile.to(tl.float32) - l0[:, None] * r0[None, :]
        if RANK > 1:
            l1 = tl.load(left_ptr + m * stride_lm + stride_lk + row, mask=row_ok, other=0.0).to(tl.float32)
            tile = tile - l1[:, None] * r1[None, :]
        if RANK > 2:
            l2 = tl.load(left_ptr + m * stride_lm + 2 * stride_lk + row, mask=row_ok, other=0.0).to(tl.float32)
            tile = tile - l2[:, None] * r2[None, :]
        if WRITE:
            tl.store(out_ptr + m * stride_om + row[:, None] * stride_or + col[None, :],
                     tile.to(out_ptr.dtype.element_ty), mask=mask)
        if DOT:
            z = tl.sum(tile * v[None, :], axis=1)
            tl.store(z_ptr + m * stride_zm + row, z, mask=row_ok)
        if ACT == 1:
            a = tl.load(a_ptr + m * stride_am + row, mask=row_ok, other=0.0).to(tl.float32)
        if ACT == 2:  # online softmax: u and the normaliser are rescaled to the running maximum
            new_max = tl.maximum(run_max, tl.max(tl.where(row_ok, z, float("-inf")), axis=0))
            rescale = tl.exp(run_max - new_max)
            a = tl.where(row_ok, tl.exp(z - new_max), 0.0)
            run_sum = run_sum * rescale + tl.sum(a, axis=0)
            u = u * rescale
            run_max = new_max
        if ACT == 3:  # softplus(z; β) = (max(βz, 0) + log(1 + e^{-|βz|})) / β, z itself above the threshold
            t = param * z
            soft = (tl.maximum(t, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(t)))) / param
            a = tl.where(t > 20.0, z, soft)
        if ACT == 4:
            a = tl.maximum(z, 0.0)
        if ACT == 5:
            a = tl.where(z > 0, z, z * param)
        if ACT == 6:
            a = 1.0 - 2.0 / (tl.exp(2.0 * z) + 1.0)
        if ACT == 7:
            a = 1.0 / (1.0 + tl.exp(-z))
        if ACT == 8:
            a = tl.minimum(tl.maximum(z, -1.0), 1.0)
        if ACT == 9:
            a = tl.where(z > 0, 1.0, 0.0)
        if ACT != 0:
            a = tl.where(row_ok, a, 0.0)
            u += tl.sum(a[:, None] * tile, axis=0)
    if ACT != 0:
        if ACT == 2:
            u = u / run_sum
        tl.store(u_ptr + m * stride_um + s * stride_us + col, u, mask=col_ok)


_KERNEL = triton.jit(_row_pass_kernel)
"""Compiled for GPU tensors; Triton's interpreter when TRITON_INTERPRET=1 was set before triton was imported."""


def _kernel_for(device: torch.device) -> Callable:
    """The kernel, or a RuntimeError for CPU tensors outside the interpreter."""
    if device.type == "cpu" and isinstance(_KERNEL, triton.runtime.JITFunction):
        raise RuntimeError("the Triton step runs on CPU tensors only in Triton's interpreter: set TRITON_INTERPRET=1 "
                           "before triton is imported (tests/test_triton_step.py does so in a subprocess)")
    return _KERNEL


def kernel_activation(activation: Activation) -> tuple[int, float]:
    """(ACT code, parameter) of the activation in this kernel's closed form (row_codes.kernel_activation)."""
    return row_codes.kernel_activation(activation, "Triton step")


def row_blocks(rows: int, cols: int, pairs: int, act: int, block_rows: int | None = None,
               splits: int | None = None) -> tuple[int, int, int, int]:
    """(BLOCK_R, BLOCK_C, rows per split, splits) of one launch; depends on shapes only, so a pair's
    result never depends on the run (or on which MPI rank computes it)."""
    block_cols = triton.next_power_of_2(cols)
    if block_cols > MAX_COLUMNS:
        raise ValueError(f"the Triton step takes layers of up to {MAX_COLUMNS} inputs, got {cols}")
    block_rows = block_rows or max(1, min(triton.next_power_of_2(rows), TILE // block_cols))
    blocks = -(-rows // block_rows)
    if act == ACT_SOFTMAX:
        splits = 1  # one program sees every z of its pair
    splits = min(blocks, splits or max(1, -(-TARGET_PROGRAMS // pairs)))
    per_split = -(-blocks // splits) * block_rows
    return block_rows, block_cols, per_split, -(-rows // per_split)


def row_pass(weights: torch.Tensor, keep: torch.Tensor, left: torch.Tensor, right: torch.Tensor,
             v: torch.Tensor | None = None, a: torch.Tensor | None = None, out: torch.Tensor | None = None,
             act: int = ACT_NONE, act_param: float = 0.0, block_rows: int | None = None,
             splits: int | None = None, num_warps: int | None = None,
             ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """One launch over W_t = keep·weights - leftᵀ right of c pairs; returns (z, u), each None if not asked.

    weights (c, o, i) in any float dtype with rows contiguous; keep (c,); left (c, k, o) and right
    (c, k, i) float32, k ≤ 3. v (c or 1, i): z = W_t v (c, o). out (c, o, i), not weights: W_t is
    written there. act: ACT_GIVEN with a (c, o): u = W_tᵀ a; ACT_SOFTMAX: u = W_tᵀ softmax(z);
    an ACT_CODES value (parameter act_param): u = W_tᵀ σ(z); ACT_NONE: no u. z and u are float32.
    block_rows, splits, num_warps override the launch shape (row_blocks; 8 warps for rows of ≥ 2048).
    """
    c, rows, cols = weights.shape
    rank = left.shape[1]
    if left.dtype != torch.float32 or right.dtype != torch.float32:
        raise TypeError(f"the Triton step computes in float32; got factors in {left.dtype}")
    if not 1 <= rank <= 3 or weights.stride(2) != 1 or (out is not None and out.stride(2) != 1):
        raise ValueError(f"need rank 1-3 factors and rows stored contiguously, got rank {rank}, "
                         f"strides {weights.stride()}")
    if act in (ACT_SOFTMAX, *ACT_CODES.values()) and v is None:
        raise ValueError("σ(z) needs z: give v")
    block_r, block_c, per_split, n_splits = row_blocks(rows, cols, c, act, block_rows, splits)
    v, a = [t if t is None or t.stride(-1) == 1 else t.contiguous() for t in (v, a)]  # the kernel steps by 1
    dot = v is not None
    z = weights.new_empty(c, rows, dtype=torch.float32) if dot else None
    u = weights.new_empty(c, n_splits, cols, dtype=torch.float32) if act != ACT_NONE else None
    dummy = keep  # stands for pointers the kernel does not touch
    vv = v if dot else dummy
    kernel = _kernel_for(weights.device)
    kernel[(c, n_splits)](
        weights, out if out is not None else dummy, keep, left.contiguous(), right.contiguous(), vv,
        a if a is not None else dummy, z if dot else dummy, u if u is not None else dummy,
        rows, cols, per_split, float(act_param),
        weights.stride(0), weights.stride(1), *(out.stride()[:2] if out is not None else (0, 0)), keep.stride(0),
        rank * rows, rows, rank * cols, cols,
        (vv.stride(0) if vv.shape[0] > 1 else 0) if dot else 0, a.stride(0) if a is not None else 0,
        rows, n_splits * cols, cols,
        RANK=rank, ACT=act, WRITE=out is not None, DOT=dot, BLOCK_R=block_r, BLOCK_C=block_c,
        num_warps=num_warps or (8 if block_c >= 2048 else 4),
    )
    return z, (None if u is None else u[:, 0] if n_splits == 1 else u.sum(1))


def triton_step(
    weights: list[torch.Tensor],
    out: list[torch.Tensor],
    feedback: list[torch.Tensor] | None,
    left: list[torch.Tensor],
    right: list[torch.Tensor],
    keep: torch.Tensor,
    theta_full: torch.Tensor,
    x: torch.Tensor,
    target: torch.Tensor,
    slope: torch.Tensor,
    terms: tuple[int, ...],
    activation: Activation,
    kernel_act: tuple[int, float],
    direct: bool = False,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """fused.fused_step with its passes over W done by row_pass: same arguments and result.

    kernel_act is kernel_activation(activation), resolved once outside (torch.compile traces this).
    """
    n, last, uses_back = weights[0].shape[0], len(weights) - 1, needs_backprojection(terms)
    ys, zs, backs = [x.expand(n, -1)], [], []
    for layer, w in enumerate(weights):
        act, param = forward_row_weights(layer, last, uses_back, kernel_act)
        z, back = row_pass(w, keep, left[layer], right[layer], v=ys[-1], out=out[layer], act=act, act_param=param)
        ys.append(torch.softmax(z, 1) if layer == last else activation.forward(z))
        zs.append(z)
        backs.append(back)
    # bp: B_t = W_t, a second read of W_{t-1} with the pending update
    bp_back = lambda layer, e: row_pass(weights[layer], keep, left[layer], right[layer], a=e, act=ACT_GIVEN)[1]
    return errors_and_factors(weights, feedback, ys, zs, backs, theta_full, target, slope, terms, activation,
                              direct, bp_back)


def make_step(terms: tuple[int, ...], activation: Activation, direct: bool = False) -> Callable:
    """triton_step for this rule, activation and feedback kind, with the step's signature in fused.online_phase."""
    kernel_act = kernel_activation(activation)

    def step(*args: torch.Tensor | list[torch.Tensor] | None) -> tuple[list, list]:
        # a closure guards faster than a partial under torch.compile
        return triton_step(*args, terms=terms, activation=activation, kernel_act=kernel_act, direct=direct)

    return step
