"""The compiled no-grad inner loop: one fused graph per online step, for the members of one task.

Same episode as the plain loop of ``evoplastic.families.paper.inner`` (tests/test_fused.py checks it), arranged
for speed (docs/performance.md):

- the update of step t-1 stays pending as (keep, L, R), W_t = keep·W_{t-1} - Lᵀ R, and is folded
  into step t's products, W_t v = keep·(W_{t-1} v) - Lᵀ(R v): the products read W_{t-1} from one
  buffer and W_t is written once into a second, decay T3 included; the two buffers swap roles
  every step. No compiled call reads and writes the same tensor: Inductor's CPU backend before
  torch 2.12 reordered such a write before its reads, and ``self_check`` guards
  against the next compiler bug of that kind;
- the pairs of one task share its fixed feedback B, so the error pass is one (c, o) @ (o, i)
  product per layer instead of c matrix-vector products;
- torch.compile fuses each layer's products, nonlinearities and factor arithmetic into a few
  loops; c members per call (COMPILED_CHUNK on CPU) keep their weights in cache.

Compiled once per (rule terms, activation) and input shapes; if compilation or a compiled
call fails, ``learn`` warns once and returns None so that the caller runs the plain loop.
On CUDA, ``FusedOptions.cuda_graph`` captures a chunk's whole online phase as one CUDA graph
(``evoplastic.families.paper.static``), ``FusedOptions.weight_dtype`` stores W in 16 bits, and
``FusedOptions.kernel="triton"`` replaces the products by one Triton row pass per layer
(``evoplastic.families.paper.triton_step``: W read and written once per step).
On CPU, ``FusedOptions.kernel="cpp"`` (what es.compile=true runs there) does the same with a C++
row pass (``evoplastic.families.paper.cpu_step``), in place by default (``FusedOptions.in_place``):
the pass reads each row of W_{t-1} before it writes that row of W_t and runs outside any compiler,
so one buffer serves, its self-check runs in place too, and a failure falls back to two buffers.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from evoplastic.families.paper import static
from evoplastic.families.paper.network import Activation, NetworkState
from evoplastic.families.paper.rules import needs_backprojection, of_layer, update_rank
from evoplastic.families.paper.step_errors import errors_and_factors
from evoplastic.precision import weight_dtype

COMPILED_CHUNK = 8
"""Members of one task per compiled call on CPU: their weights (0.7 MiB each on the paper
network) stay in the last-level cache, which 16 or 32 members overflow (docs/performance.md)."""

CPP_CHUNK = 16
"""Members of one task per call of the C++ single-pass step on CPU: its per-call cost (the vector work
around the passes) is spread over twice the Inductor step's members, while in place the chunk's W
(11 MiB in float32 on the paper network) stays mostly in the last-level cache; 32 ran no faster
(docs/performance.md)."""

CPU_KERNEL = "cpp"
"""The step es.kernel=auto runs on CPU: the C++ single pass (the Inductor step when it cannot be built)."""

FOLD_SLICE = 64
"""Members per slice when the last update is folded into 16-bit weights (bounds the float32 temporary)."""

_COMPILED: dict[tuple, Callable] = {}
"""Compiled step per (terms, activation, direct); torch.compile specialises it on the input shapes."""
_FAILED: set[tuple] = set()
"""Keys whose compilation failed once: they use the plain loop without trying again."""
_CHECKED: set[tuple] = set()
"""Every (key, shapes, dtypes, device) a compiled step has been called with and passed self_check for:
each is a separate specialisation of torch.compile, so each is checked at its first use."""
_FALLBACKS: list[str] = []
"""What self_check rejected in this process, for the run record (meta.json)."""
_RAN: dict[str, int] = {}
"""Calls of learn that each compiled step (FusedOptions.label) computed in this process, for the run record."""

SELF_CHECK_TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-4, torch.bfloat16: 2e-2, torch.float16: 5e-3}
"""Largest accepted |compiled - eager| / max|eager| per weight storage dtype; a step that reads
W_t instead of W_{t-1} is off by the size of the pending update, O(1) relative."""


def pending_times(w: torch.Tensor, keep: torch.Tensor, left: torch.Tensor, right: torch.Tensor,
                  v: torch.Tensor) -> torch.Tensor:
    """W_t v for W_t = keep·w - leftᵀ right: w (c, o, i), keep (c,), left (c, k, o), right (c, k, i), v (c, i)."""
    return keep[:, None] * (w * v[:, None, :]).sum(2) - (left * (right * v[:, None, :]).sum(2, keepdim=True)).sum(1)


def pending_times_transposed(w: torch.Tensor, keep: torch.Tensor, left: torch.Tensor, right: torch.Tensor,
                             v: torch.Tensor) -> torch.Tensor:
    """W_tᵀ v for v (c, o) -> (c, i), W_t as in pending_times."""
    return keep[:, None] * (w * v[:, :, None]).sum(1) - (right * (left * v[:, None, :]).sum(2, keepdim=True)).sum(1)


def pending_weights(w: torch.Tensor, keep: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """W_t = keep·w - Σ_k left_k ⊗ right_k, written as k outer products so that it fuses into one loop."""
    out = keep[:, None, None] * w
    for k in range(left.shape[1]):
        out = out - left[:, k, :, None] * right[:, k, None, :]
    return out


def fused_step(
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
    direct: bool = False,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """One online step of c pairs on one task: reads W_{t-1} from weights, writes W_t into out.

    weights[ℓ], out[ℓ] (c, o, i), distinct buffers (weights is only read); feedback[ℓ] (1, o, i)
    shared, or None for bp (B = W_t), or with direct (dfa) D_ℓ (1, n_L, i) fed by the output
    error; left[ℓ] (c, k, o), right[ℓ] (c, k, i) and keep (c,) the pending update of the previous step;
    theta_full (c, 10), or (c, L, 10) one row per layer with keep (c, L); x, slope (1, D) and target
    (1, n_out) this step's sample. Returns this step's factors (left, right), pending for the next step.
    """
    n, last, uses_back = weights[0].shape[0], len(weights) - 1, needs_backprojection(terms)
    per_layer = keep.dim() == 2
    ys, zs, backs = [x.expand(n, -1)], [], []
    for layer, w in enumerate(weights):
        k = of_layer(keep, layer, per_layer)
        z = pending_times(w, k, left[layer], right[layer], ys[-1])
        y = torch.softmax(z, 1) if layer == last else activation.forward(z)
        backs.append(pending_times_transposed(w, k, left[layer], right[layer], y) if uses_back else None)
        zs.append(z)
        ys.append(y)
    bp_back = lambda layer, e: pending_times_transposed(weights[layer], of_layer(keep, layer, per_layer), left[layer],
                                                        right[layer], e)
    factors = errors_and_factors(weights, feedback, ys, zs, backs, theta_full, target, slope, terms, activation,
                                 direct, bp_back)
    for layer, w in enumerate(weights):
        out[layer].copy_(pending_weights(w, of_layer(keep, layer, per_layer), left[layer], right[layer]))
    return factors


@dataclass(frozen=True)
class FusedOptions:
    """How the fused no-grad loop runs; the defaults are the compiled CPU fast path."""

    compile: bool = True
    """torch.compile the step; False runs fused_step eagerly (tests, debugging)."""
    cuda_graph: bool = False
    """Replay each chunk's whole online phase from one CUDA graph (evoplastic.families.paper.static); on CPU the
    same fixed-buffer code runs without capture."""
    weight_dtype: torch.dtype | None = None
    """Storage of W during the online phase, None for θ's dtype; torch.bfloat16 or torch.float16
    halve the bytes moved per step while the arithmetic stays in θ's dtype."""
    chunk: int | None = None
    """Pairs of one task per call: None for default_chunk(device), 0 for all of them."""
    kernel: str = "inductor"
    """inductor: Inductor fuses fused_step; triton: triton_step's row pass reads and writes W once per step
    (float32 θ; CUDA, or CPU under TRITON_INTERPRET=1); cpp: cpu_step's C++ row pass does so on CPU. Either
    single pass falls back to inductor if it fails."""
    in_place: bool = True
    """The C++ step writes W_t over W_{t-1} (one buffer per layer, checked in place by self_check); False, or a
    failed check, keeps two buffers. The Inductor and Triton steps always use two."""

    @property
    def label(self) -> str:
        """The step these options run, as benches and run records name it: inductor, triton, cpp or cpp-2buf."""
        return "cpp-2buf" if self.kernel == "cpp" and not self.in_place else self.kernel

    @classmethod
    def for_precision(cls, precision: str, cuda_graph: bool = False, kernel: str = "inductor") -> FusedOptions:
        """Options for an es.precision name (its weight storage; TF32 is matmul_precision's part)."""
        return cls(cuda_graph=cuda_graph, weight_dtype=weight_dtype(precision), kernel=kernel)


def resolve_kernel(kernel: str, device: torch.device) -> str:
    """The compiled step es.kernel names on this device (auto: cpp on CPU, inductor elsewhere); ValueError, saying
    what to set, for a step this device or machine cannot run."""
    if kernel == "auto":
        return CPU_KERNEL if device.type == "cpu" else "inductor"
    if kernel == "cpp" and device.type != "cpu":
        raise ValueError(f"es.kernel=cpp is the CPU's compiled step, but the run is on {device.type}; set "
                         "es.kernel=auto (Inductor there) or triton, or device=cpu")
    if kernel == "triton" and device.type != "cuda":
        raise ValueError(f"es.kernel=triton needs a GPU, but the run is on {device.type}; set es.kernel=auto")
    if kernel == "cpp":
        from evoplastic.families.paper.cpu_step import find_compiler

        if find_compiler() is None:
            raise ValueError("es.kernel=cpp builds a C++ pass at first use, but no C++ compiler was found: install "
                             "g++ (or set CXX to one), or set es.kernel=inductor")
    return kernel


def fold(weights: list[torch.Tensor], keep: torch.Tensor, left: list[torch.Tensor],
         right: list[torch.Tensor]) -> None:
    """Write the pending update into the weights: W ← keep·W - Lᵀ R, in place, per layer (keep (c,) or (c, L))."""
    for layer, (w, u, v) in enumerate(zip(weights, left, right)):
        k = of_layer(keep, layer, keep.dim() == 2)
        if w.dtype == u.dtype:
            w.mul_(k.view(-1, 1, 1)).baddbmm_(u.transpose(1, 2), v, alpha=-1)
            continue
        for start in range(0, w.shape[0], FOLD_SLICE):  # 16-bit storage: combine in θ's dtype, slice by slice
            part = slice(start, start + FOLD_SLICE)
            exact = torch.baddbmm(w[part].to(u.dtype) * k[part].view(-1, 1, 1), u[part].transpose(1, 2), v[part],
                                  alpha=-1)
            w[part].copy_(exact)


def online_phase(weights: list[torch.Tensor], feedback: list[torch.Tensor] | None, theta_full: torch.Tensor,
                 keep: torch.Tensor, x: torch.Tensor, target: torch.Tensor, slope: torch.Tensor, *,
                 step: Callable, rank: int, in_place: bool = False) -> None:
    """All S online steps of c pairs of one task, in place on weights (c, o, i); x, slope (S, D).

    Steps alternate between weights and one scratch copy (a step never writes what it reads);
    the result is copied back when S is odd. in_place: the step writes W_t over W_{t-1} (the C++
    step), so weights is both buffers. Its allocations happen in the same order on every call, so
    that it can be captured as a CUDA graph and replayed on the same addresses.
    """
    c = theta_full.shape[0]
    left = [w.new_zeros(c, rank, w.shape[1], dtype=theta_full.dtype) for w in weights]
    right = [w.new_zeros(c, rank, w.shape[2], dtype=theta_full.dtype) for w in weights]
    no_decay = torch.ones_like(keep)
    current, spare = weights, weights if in_place else [torch.empty_like(w) for w in weights] if x.shape[0] else []
    for s in range(x.shape[0]):
        left, right = step(current, spare, feedback, left, right, keep if s else no_decay, theta_full,
                           x[s: s + 1], target[s: s + 1], slope[s: s + 1])
        current, spare = spare, current
    if x.shape[0]:
        fold(current, keep, left, right)
    if current is not weights:
        for w, result in zip(weights, current):
            w.copy_(result)


def step_function(terms: tuple[int, ...], activation: Activation, compile: bool, direct: bool = False,
                  kernel: str = "inductor") -> Callable:
    """fused_step (kernel inductor) or triton_step (kernel triton) for this rule, activation and feedback
    kind, under torch.compile (compiled at its first call) or eager."""
    if kernel == "cpp":  # the C++ pass runs as it is; compile applies to the vector work around it
        from evoplastic.families.paper.cpu_step import make_step as make_cpu_step  # builds the C++ pass

        if not compile:
            return make_cpu_step(terms, activation, direct)
        key = (terms, activation, direct, kernel)
        if key not in _COMPILED:
            _COMPILED[key] = make_cpu_step(terms, activation, direct, compile=True)
        return _COMPILED[key]
    if kernel == "triton":
        from evoplastic.families.paper.triton_step import make_step  # imports triton only when asked for

        if not compile:
            return make_step(terms, activation, direct)
    elif not compile:
        return functools.partial(fused_step, terms=terms, activation=activation, direct=direct)
    key = (terms, activation, direct, kernel)
    if key not in _COMPILED:
        def step(*args: torch.Tensor | list[torch.Tensor] | None) -> tuple[list, list]:
            # a closure guards faster than a partial
            return fused_step(*args, terms=terms, activation=activation, direct=direct)

        _COMPILED[key] = torch.compile(make_step(terms, activation, direct) if kernel == "triton" else step,
                                       fullgraph=True, dynamic=False)
    return _COMPILED[key]


class SelfCheckError(RuntimeError):
    """The compiled step disagrees with the eager step on the same inputs (a compiler bug)."""


def self_check_inputs(theta_full: torch.Tensor, init_weights: list[torch.Tensor], rank: int, weight_dtype: torch.dtype,
                      ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """Weights (c, o, i) and a non-zero pending update (left, right, keep = 0.9) for c = len(theta_full).

    The factors are sized so that Lᵀ R is as large as W: reading the wrong W is then an O(1) error.
    """
    g = torch.Generator().manual_seed(12)
    c, dtype, device = theta_full.shape[0], theta_full.dtype, theta_full.device
    randn = lambda *shape: torch.randn(*shape, generator=g, dtype=dtype).to(device)
    weights = [(w.to(dtype) + w.to(dtype).std() * randn(c, *w.shape)).to(weight_dtype) for w in init_weights]
    scales = [float(w.float().std()) ** 0.5 / max(rank, 1) ** 0.25 for w in weights]
    left = [a * randn(c, rank, w.shape[1]) for a, w in zip(scales, weights)]
    right = [a * randn(c, rank, w.shape[2]) for a, w in zip(scales, weights)]
    keep = torch.full(theta_full.shape[:-1], 0.9, dtype=dtype, device=device)  # (c,) or (c, L) per layer
    return weights, left, right, keep


SELF_CHECK_STEPS = 3
"""Consecutive steps self_check compares: later steps take the compiled factors of earlier ones as
inputs, as online_phase does (torch 2.11's miscompiled variant showed only from such a step on)."""


def self_check(compiled: Callable, eager: Callable, theta_full: torch.Tensor, init_weights: list[torch.Tensor],
               feedback: list[torch.Tensor] | None, x: torch.Tensor, target: torch.Tensor, slope: torch.Tensor,
               rank: int, weight_dtype: torch.dtype, in_place: bool = False) -> float:
    """Largest relative difference of SELF_CHECK_STEPS compiled and eager steps from a non-zero pending update.

    Raises SelfCheckError when it exceeds SELF_CHECK_TOLERANCE for weight_dtype. x, target,
    slope (1, ·) one sample, presented at every step; the compiled step is compiled here for
    these shapes, once. in_place: the compiled step is given one buffer to read and write, as
    online_phase gives it; the eager step always two.
    """
    weights, left, right, keep = self_check_inputs(theta_full, init_weights, rank, weight_dtype)
    results = []
    for step in (compiled, eager):
        current = [w.clone() for w in weights]
        spare = current if in_place and step is compiled else [torch.zeros_like(w) for w in weights]
        factors = ([u.clone() for u in left], [v.clone() for v in right])
        for _ in range(SELF_CHECK_STEPS):
            factors = step(current, spare, feedback, *factors, keep, theta_full, x, target, slope)
            current, spare = spare, current
        results.append([*current, *factors[0], *factors[1]])
    error = max(float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30))
                for a, b in zip(*results))
    if not error <= SELF_CHECK_TOLERANCE.get(weight_dtype, 1e-4):  # NaN fails too
        raise SelfCheckError(f"compiled step differs from the eager step by {error:.3g} (relative) with a pending "
                             f"update, torch {torch.__version__}")
    return error


def check_signature(key: tuple, theta_full: torch.Tensor, init_weights: list[torch.Tensor],
                    feedback: list[torch.Tensor] | None, x: torch.Tensor, weight_dtype: torch.dtype) -> tuple:
    """What torch.compile specialises a step on: shapes, dtypes and device of its inputs, with the step's key."""
    shapes = lambda ts: None if ts is None else tuple(tuple(t.shape) for t in ts)
    return (*key, tuple(theta_full.shape), theta_full.dtype, weight_dtype, theta_full.device.type,
            shapes(init_weights), shapes(feedback), x.shape[-1])


def self_check_shape(key: tuple, step: Callable, weight_dtype: torch.dtype, theta_full: torch.Tensor,
                     init_weights: list[torch.Tensor], feedback: list[torch.Tensor] | None, x: torch.Tensor,
                     target: torch.Tensor, slope: torch.Tensor) -> None:
    """self_check the compiled step on the shapes of one call (c pairs of one task), once per signature.

    Called before every chunk: the remainder chunk, a 1-member evaluation, another dtype each compile
    to their own specialisation, and each must prove itself before it computes anything.
    """
    signature = check_signature(key, theta_full, init_weights, feedback, x, weight_dtype)
    if signature in _CHECKED or x.shape[0] == 0:
        return
    terms, activation, direct, _, in_place = key
    eager = functools.partial(fused_step, terms=terms, activation=activation, direct=direct)
    self_check(step, eager, theta_full, init_weights, feedback, x[:1], target[:1], slope[:1], update_rank(terms),
               weight_dtype, in_place)
    _CHECKED.add(signature)


def compile_fallbacks() -> list[str]:
    """Messages of the compiled steps this process refused (failed to compile or failed self_check)."""
    return list(_FALLBACKS)


def kernel_calls() -> dict[str, int]:
    """Calls of learn each compiled step computed so far in this process (after any fallback), by
    FusedOptions.label: the run record lists its keys, benches difference two reads."""
    return dict(_RAN)


def _ran(options: FusedOptions, weights: list[torch.Tensor]) -> list[torch.Tensor]:
    """weights, with the step that computed them recorded (compiled steps only)."""
    if options.compile:
        _RAN[options.label] = _RAN.get(options.label, 0) + 1
    return weights


def _recompile_limit() -> dict:
    """Dynamo's per-function recompile budget (8), raised: each (terms, activation, shapes) is one entry."""
    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    return {name: max(getattr(config, name), 256)}


def default_chunk(device: torch.device, kernel: str = "inductor") -> int:
    """Pairs per compiled call: COMPILED_CHUNK on CPU (CPP_CHUNK for the C++ step); on a GPU all pairs
    of a task (0), for parallelism."""
    if device.type != "cpu":
        return 0
    return CPP_CHUNK if kernel == "cpp" else COMPILED_CHUNK


def learn_chunk(phase: Callable, theta_full: torch.Tensor, keep: torch.Tensor, init_weights: list[torch.Tensor],
                feedback: list[torch.Tensor] | None, x: torch.Tensor, target: torch.Tensor, slope: torch.Tensor,
                weight_dtype: torch.dtype) -> list[torch.Tensor]:
    """Adapted weights (c, o, i) of c pairs on one task, from that task's W (o, i) and B (1, o, i).

    phase is online_phase with its step and rank bound.
    """
    c = theta_full.shape[0]
    weights = [w.to(weight_dtype).expand(c, -1, -1).clone() for w in init_weights]
    phase(weights, feedback, theta_full, keep, x, target, slope)
    return weights


def _learn_chunks(learn_one: Callable, theta_full: torch.Tensor, keep: torch.Tensor, train_x: torch.Tensor,
                  targets: torch.Tensor, input_slopes: torch.Tensor, init: NetworkState,
                  chunk: int, check: Callable | None = None) -> list[torch.Tensor]:
    """Every pair's adapted weights (N, o, i), learning task by task in chunks of its pairs.

    check(θ, W, B, x, target, slope) runs before each chunk (self_check_shape for a compiled step)."""
    n, n_tasks = theta_full.shape[0], train_x.shape[0]
    out = [w.new_empty(n, *w.shape[1:]) for w in init.weights]
    for task in range(n_tasks):
        pairs = torch.arange(task, n, n_tasks, device=theta_full.device)
        feedback = None if init.feedback is None else [b[task: task + 1] for b in init.feedback]
        for start in range(0, len(pairs), chunk):
            idx = pairs[start: start + chunk]
            if check is not None:
                check(theta_full[idx], [w[task] for w in init.weights], feedback, train_x[task], targets[task],
                      input_slopes[task])
            adapted = learn_one(theta_full[idx], keep[idx], [w[task] for w in init.weights], feedback,
                                train_x[task], targets[task], input_slopes[task])
            for o, w in zip(out, adapted):
                o[idx] = w.to(o.dtype)
    return out


def _warn_unavailable(what: str, terms: tuple[int, ...], activation: Activation, err: Exception,
                      fallback: str) -> None:
    """One RuntimeWarning naming what failed, why, and what runs instead."""
    reason = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
    message = f"{what} unavailable for terms {list(terms)} with {activation.name} ({reason}); using {fallback}"
    _FALLBACKS.append(message)
    warnings.warn(message, RuntimeWarning, stacklevel=4)


def _learn_captured(phase: Callable, options: FusedOptions, key: tuple, weight_dtype: torch.dtype,
                    activation: Activation, args: tuple) -> list[torch.Tensor] | None:
    """_learn_chunks through cached fixed-buffer phases (CUDA graphs); None, with one warning, if capture fails."""
    try:
        return _learn_chunks(static.phase_runner(phase, options.compile, key, weight_dtype), *args)
    except static.CaptureError as err:
        static.mark_failed(key)
        _warn_unavailable("CUDA graph capture", key[0], activation, err.__cause__ or err, "the uncaptured loop")
        return None


def step_key(terms: tuple[int, ...], activation: Activation, direct: bool, options: FusedOptions) -> tuple:
    """(terms, activation, direct, kernel, in place): what a compiled step is cached, checked and refused by."""
    return terms, activation, direct, options.kernel, options.kernel == "cpp" and options.in_place


def _fallback(options: FusedOptions) -> tuple[FusedOptions, str, str] | None:
    """The step to try when options' step fails, what failed and what runs instead: the C++ step in place,
    then with two buffers, then the Inductor step (as a Triton step does); None after the Inductor step."""
    if options.kernel == "cpp" and options.in_place:
        return replace(options, in_place=False), "C++ single-pass step in place", "the two-buffer C++ step"
    if options.kernel != "inductor":
        what = "Triton step" if options.kernel == "triton" else "C++ single-pass step"
        return replace(options, kernel="inductor"), what, "the Inductor step"
    return None


def learn(
    theta_full: torch.Tensor,
    terms: tuple[int, ...],
    train_x: torch.Tensor,
    targets: torch.Tensor,
    input_slopes: torch.Tensor,
    init: NetworkState,
    activation: Activation,
    options: FusedOptions = FusedOptions(),
) -> list[torch.Tensor] | None:
    """Weights (N, o, i) of N = P·T pairs after the online phase, or None if compilation is unavailable.

    theta_full (N, 10), or (N, L, 10) per layer (the Inductor step only): pair n learns task n mod T;
    train_x, input_slopes (T, S, D), targets
    (T, S, n_out). Runs under no_grad (no graph is wanted here). The weights come back in θ's
    dtype whatever options.weight_dtype. A failed CUDA-graph capture warns once and runs uncaptured;
    a compiled step that fails to compile, or fails self_check at the first use of any of its shapes,
    warns once and returns None from then on (a Triton or C++ step: runs the next of _fallback from then on).
    """
    copies = theta_full.shape[0] // train_x.shape[0]
    chunk = default_chunk(theta_full.device, options.kernel) if options.chunk is None else options.chunk
    chunk = min(chunk or copies, copies)
    keep = 1 - theta_full[..., 3] if 3 in terms else theta_full.new_ones(theta_full.shape[:-1])  # (N,) or (N, L)
    weight_dtype = options.weight_dtype or theta_full.dtype
    key = step_key(terms, activation, init.direct, options)
    while options.compile and key in _FAILED and (fallback := _fallback(options)) is not None:
        options = fallback[0]
        key = step_key(terms, activation, init.direct, options)
    if options.compile and key in _FAILED:
        return None
    try:
        with torch.no_grad(), torch._dynamo.config.patch(**_recompile_limit()):
            step = step_function(terms, activation, options.compile, init.direct, options.kernel)
            check = functools.partial(self_check_shape, key, step, weight_dtype) if options.compile else None
            phase = functools.partial(online_phase, step=step, rank=update_rank(terms), in_place=key[-1])
            args = (theta_full, keep, train_x, targets, input_slopes, init, chunk, check)
            if options.cuda_graph and static.usable(key):
                captured = _learn_captured(phase, options, key, weight_dtype, activation, args)
                if captured is not None:
                    return _ran(options, captured)
            return _ran(options, _learn_chunks(functools.partial(learn_chunk, phase, weight_dtype=weight_dtype), *args))
    except Exception as err:  # noqa: BLE001 — whatever the compiler raises, the plain loop does the work
        if not options.compile:
            raise
        _FAILED.add(key)
        fallback = _fallback(options)
        if fallback is None:
            _warn_unavailable("compiled inner loop", terms, activation, err, "the eager loop")
            return None
        _warn_unavailable(fallback[1], terms, activation, err, fallback[2])
        return learn(theta_full, terms, train_x, targets, input_slopes, init, activation, fallback[0])
