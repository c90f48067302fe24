"""The online step on CPU as one C++ row pass per layer: W read once and written once per step.

fused.fused_step leaves it to Inductor to fuse a layer's products, which reads W three times and
writes it once per step. Here cpu_row_pass.cpp walks the rows of W_{t-1} for c pairs of one task
and, for each row r, forms the row of W_t = keep·W_{t-1} - Σ_k L_k ⊗ R_k (the pending update of the
previous step, as in fused_step) in a small buffer, writes it back over the same row (in place, the
default: one buffer, half the memory traffic of two when a chunk's W fits in cache) or into a second
buffer, takes
z_r = row·y_{ℓ-1} and, when the rule needs u = W_tᵀ y_ℓ (T6, T7, T9), adds σ(z_r)·row to u (the
output layer's softmax against a running maximum). The vector work (σ, errors, factors) stays in
torch (step_errors.errors_and_factors), compiled around the pass by torch.compile, which sees the pass
as one opaque operator.

Arithmetic is float32 over float32, bfloat16 or float16 storage, float64 over float64 (the tests).
The library is built at first use with the system C++ compiler (-O3 -march=native -fopenmp) into
the user's cache, keyed by the source, compiler and CPU flags; if that fails, the caller falls back
to the Inductor step (fused.learn).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

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
from evoplastic.families.paper.rules import needs_backprojection, of_layer
from evoplastic.families.paper.step_errors import errors_and_factors

STORAGE_CODES = {torch.float32: 0, torch.float64: 1, torch.bfloat16: 2, torch.float16: 3}
SOURCE = Path(__file__).with_name("cpu_row_pass.cpp")
COMPILE_FLAGS = ["-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c++17"]


def kernel_activation(activation: Activation) -> tuple[int, float]:
    """(ACT code, parameter) of the activation in this kernel's closed form (row_codes.kernel_activation)."""
    return row_codes.kernel_activation(activation, "single-pass step")


def cache_dir() -> Path:
    """Where built libraries go: $EVOPLASTIC_KERNEL_CACHE, else the user's cache folder."""
    base = os.environ.get("EVOPLASTIC_KERNEL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "evoplastic", "kernels")
    return Path(base)


def _cpu_flags() -> str:
    """The CPU's feature flags (part of the build key: -march=native code runs only where it was built)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.processor()


def find_compiler() -> str | None:
    """The C++ compiler the pass is built with: $CXX, else c++ or g++ on the PATH; None if there is none."""
    return os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")


@functools.cache
def library() -> ctypes.CDLL:
    """The built row pass (built on first call, reused from the cache afterwards); RuntimeError if it cannot be."""
    compiler = find_compiler()
    if compiler is None:
        raise RuntimeError("no C++ compiler found (set CXX, or install g++): the single-pass CPU step needs one")
    source = SOURCE.read_bytes()
    key = hashlib.sha256(b"\0".join([source, compiler.encode(), " ".join(COMPILE_FLAGS).encode(),
                                     _cpu_flags().encode()])).hexdigest()[:16]
    target = cache_dir() / f"row_pass_{key}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            built = Path(tmp) / target.name
            done = subprocess.run([compiler, *COMPILE_FLAGS, "-o", str(built), str(SOURCE)], capture_output=True,
                                  text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"building the single-pass CPU step failed ({compiler}): "
                                   f"{(done.stderr or done.stdout).strip().splitlines()[:1]}")
            os.replace(built, target)  # atomic: concurrent ranks see a whole library or none
    lib = ctypes.CDLL(str(target))
    lib.evoplastic_row_pass.restype = ctypes.c_int
    lib.evoplastic_row_pass.argtypes = [
        ctypes.c_int, *[ctypes.c_void_p] * 3, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
        ctypes.c_void_p, ctypes.c_int64, *[ctypes.c_void_p] * 4, *[ctypes.c_int64] * 3, ctypes.c_int,
        ctypes.c_double, ctypes.c_int]
    return lib


def _pointer(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def row_pass(weights: torch.Tensor, keep: torch.Tensor, left: torch.Tensor, right: torch.Tensor,
             v: torch.Tensor | None = None, a: torch.Tensor | None = None, out: torch.Tensor | None = None,
             act: int = ACT_NONE, act_param: float = 0.0, y: torch.Tensor | None = None,
             ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """One pass over W_t = keep·weights - leftᵀ right of c pairs; returns (z, u), each None if not asked.

    weights (c, o, i) float32/float64/bfloat16/float16; keep (c,) or a (c, ·) column view; left (c, k, o),
    right (c, k, i) in the arithmetic dtype (float64 for float64 W, else float32), 0 ≤ k ≤ 3. v (c or 1, i):
    z = W_t v (c, o). out (c, o, i): W_t is written there; out may be weights itself (in place). act:
    ACT_GIVEN with a (c, o): u = W_tᵀ a; ACT_SOFTMAX: u = W_tᵀ softmax(z); an ACT_CODES value (parameter
    act_param): u = W_tᵀ σ(z), and σ(z) is written into y (c, o) when given.
    """
    c, rows, cols = weights.shape
    arith = torch.float64 if weights.dtype == torch.float64 else torch.float32
    if weights.dtype not in STORAGE_CODES:
        raise TypeError(f"the single-pass CPU step stores W as {list(STORAGE_CODES)}, got {weights.dtype}")
    if left.dtype != arith or right.dtype != arith or keep.dtype != arith:
        raise TypeError(f"the single-pass CPU step computes in {arith} for {weights.dtype} W; got factors in "
                        f"{left.dtype}")
    rank = left.shape[1]
    if act in (ACT_SOFTMAX, *ACT_CODES.values()) and v is None:
        raise ValueError("σ(z) needs z: give v")
    if y is not None and (act not in ACT_CODES.values() or y.shape != (c, rows) or y.dtype != arith
                          or not y.is_contiguous()):
        raise ValueError(f"y receives σ(z): a contiguous ({c}, {rows}) {arith} tensor, with an activation's act")
    if out is not None and not out.is_contiguous():
        raise ValueError("out must be contiguous (W_t is written there row by row)")
    weights, left, right = weights if out is weights else weights.contiguous(), left.contiguous(), right.contiguous()
    keep = keep.contiguous() if keep.dim() == 1 else keep.reshape(c, -1).contiguous()
    shared = v is not None and (v.shape[0] == 1 or v.stride(0) == 0)  # one v for every pair (the input x)
    v = None if v is None else (v[:1] if shared else v).to(arith).contiguous()
    a = None if a is None else a.to(arith).contiguous()
    z = weights.new_empty(c, rows, dtype=arith) if v is not None else None
    u = weights.new_empty(c, cols, dtype=arith) if act != ACT_NONE else None
    status = library().evoplastic_row_pass(
        STORAGE_CODES[weights.dtype], weights.data_ptr(), _pointer(out), keep.data_ptr(), keep.stride(0),
        left.data_ptr(), right.data_ptr(), rank, _pointer(v), 0 if v is None or shared else v.stride(0),
        _pointer(a), _pointer(z), _pointer(u), _pointer(y), c, rows, cols, act, float(act_param),
        torch.get_num_threads())
    if status:
        raise ValueError(f"the single-pass CPU step refused its arguments (rank {rank}, status {status})")
    return z, u


def glue(feedback: list[torch.Tensor], ys: list[torch.Tensor], zs: list[torch.Tensor],
         backs: list[torch.Tensor | None], theta_full: torch.Tensor, target: torch.Tensor, slope: torch.Tensor,
         terms: tuple[int, ...], activation: Activation, direct: bool) -> tuple[list, list]:
    """The step's vector work after the forward passes, for a fixed feedback B (fa, dfa): no W is read
    (u comes from the passes), so torch.compile can fuse it into a few loops without the C++ pass inside."""
    layers = [None] * len(zs)  # low_rank_update reads W only when u is not given
    return errors_and_factors(layers, feedback, ys, zs, backs, theta_full, target, slope, terms, activation,
                              direct, None)


def cpu_step(
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
    compiled_glue: Callable | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """fused.fused_step with its passes over W done by the C++ row pass: same arguments and result, except
    that out may be weights itself (each out[ℓ] is weights[ℓ]: the step runs in place).

    kernel_act is kernel_activation(activation), resolved once outside; compiled_glue, when given, is
    glue under torch.compile, used for fixed feedback (bp reads B_t = W_t through the pass, eagerly).
    """
    n, last, uses_back = weights[0].shape[0], len(weights) - 1, needs_backprojection(terms)
    per_layer = keep.dim() == 2
    ys, zs, backs = [x.expand(n, -1)], [], []
    for layer, w in enumerate(weights):
        act, param = forward_row_weights(layer, last, uses_back, kernel_act)
        y = keep.new_empty(n, w.shape[1]) if act in ACT_CODES.values() else None  # σ(z) from the pass
        z, back = row_pass(w, of_layer(keep, layer, per_layer), left[layer], right[layer], v=ys[-1], out=out[layer],
                        act=act, act_param=param, y=y)
        ys.append(torch.softmax(z, 1) if layer == last else activation.forward(z) if y is None else y)
        zs.append(z)
        backs.append(back)
    if feedback is not None and compiled_glue is not None:
        return compiled_glue(feedback, ys, zs, backs, theta_full, target, slope)
    return errors_and_factors(weights, feedback, ys, zs, backs, theta_full, target, slope, terms, activation,
                              direct, functools.partial(_bp_back, weights, out, keep, left, right))


def _bp_back(weights: list[torch.Tensor], out: list[torch.Tensor], keep: torch.Tensor, left: list[torch.Tensor],
             right: list[torch.Tensor], layer: int, e: torch.Tensor) -> torch.Tensor:
    """bp's B_tᵀ e = W_tᵀ e, a second pass over the layer: over W_t itself when the step ran in place (its W_{t-1}
    is gone), else over W_{t-1} with the pending update applied again."""
    if out[layer] is weights[layer]:
        return row_pass(weights[layer], keep.new_ones(e.shape[0]), left[layer][:, :0], right[layer][:, :0], a=e,
                        act=ACT_GIVEN)[1]
    return row_pass(weights[layer], of_layer(keep, layer, keep.dim() == 2), left[layer], right[layer], a=e,
                    act=ACT_GIVEN)[1]


def make_step(terms: tuple[int, ...], activation: Activation, direct: bool = False,
              compile: bool = False) -> Callable:
    """cpu_step for this rule, activation and feedback kind, with the step's signature in fused.online_phase;
    compile: its vector work (fa, dfa) under torch.compile. Builds the library now, so that a missing
    compiler shows before the first step."""
    kernel_act = kernel_activation(activation)
    library()
    compiled_glue = None
    if compile:
        def vector_work(*args: torch.Tensor | list[torch.Tensor]) -> tuple[list, list]:
            return glue(*args, terms=terms, activation=activation, direct=direct)

        compiled_glue = torch.compile(vector_work, fullgraph=True, dynamic=False)

    def step(*args: torch.Tensor | list[torch.Tensor] | None) -> tuple[list, list]:
        return cpu_step(*args, terms=terms, activation=activation, kernel_act=kernel_act, direct=direct,
                        compiled_glue=compiled_glue)

    return step
