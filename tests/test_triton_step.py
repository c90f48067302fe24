"""The Triton single-pass step (triton_step) equals fused_step and the plain loop.

Every kernel case runs twice over: on CPU tensors in Triton's interpreter and on CUDA tensors
compiled. The interpreter must be switched on (TRITON_INTERPRET=1) before triton is imported, so
the interpreter cases run in one subprocess (test_cpu_cases_under_triton_interpret), which
keeps it away from every other test; CUDA cases skip without a GPU. The rest (activation
mapping, launch shapes, config checks, fallback) needs neither.
"""

import functools
import importlib.util
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from conftest import tiny_config
from test_fused import pending_update_inputs
from test_inner import BIO, POOL, make_init, make_tasks, net_config, pool_theta

from evoplastic.config import ConfigError
from evoplastic.families.paper import fused, static
from evoplastic.families.paper.inner import run_episode
from evoplastic.families.paper.network import ACTIVATIONS, Activation, make_activation
from evoplastic.families.paper.rules import update_rank
from evoplastic.precision import weight_dtype

triton = pytest.importorskip("triton", reason="Triton is not installed (torch's CUDA wheels bring it)")
from evoplastic.families.paper import triton_step  # noqa: E402 — only with triton

INTERPRETED = not isinstance(triton_step._KERNEL, triton.runtime.JITFunction)
DEVICES = [
    pytest.param("cpu", id="interpreter", marks=pytest.mark.skipif(
        not INTERPRETED, reason="runs in test_cpu_cases_under_triton_interpret's TRITON_INTERPRET=1 subprocess")),
    pytest.param("cuda", id="cuda", marks=pytest.mark.skipif(
        not torch.cuda.is_available(), reason="needs a CUDA device (torch sees none)")),
]
STORAGE = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
TOLERANCE = {torch.float32: 2e-6, torch.float16: 5e-3, torch.bfloat16: 2e-2}
"""Largest |triton - fused_step| / max|fused_step| per W storage: float32 summation order, or one
16-bit rounding of W_t flipped by it."""
TERM_SETS = [POOL, BIO, (0,), (3,), (1, 4), (6, 7, 8)]


@pytest.fixture(autouse=True)
def fresh_phases():
    static.clear()
    yield
    static.clear()


def float32_inputs(terms, feedback, device, dims=None):
    """pending_update_inputs (one sample, a non-zero pending update) in float32 on the device."""
    act, theta_full, init_weights, fb, sample, direct = pending_update_inputs(terms, feedback)
    move = lambda t: t.to(device, torch.float32)
    return (act, move(theta_full), [move(w) for w in init_weights], None if fb is None else [move(b) for b in fb],
            [move(t) for t in sample], direct)


def steps_error(step, terms, feedback, device, storage, act=None):
    """fused.self_check of step against the eager fused_step: 3 chained steps from a pending update."""
    default_act, theta_full, init_weights, fb, (x, target, slope), direct = float32_inputs(terms, feedback, device)
    act = act or default_act
    eager = functools.partial(fused.fused_step, terms=terms, activation=act, direct=direct)
    return fused.self_check(step(act, direct), eager, theta_full, init_weights, fb, x, target, slope,
                            update_rank(terms), storage)


# --- kernel cases: CPU under the interpreter (subprocess) and CUDA ---------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("storage", STORAGE)
@pytest.mark.parametrize("act, rank, block_rows, splits", [
    (triton_step.ACT_NONE, 1, None, None), (triton_step.ACT_GIVEN, 3, 4, 2), (triton_step.ACT_SOFTMAX, 2, 4, None),
    (triton_step.ACT_CODES["softplus"], 3, 2, 3), (triton_step.ACT_CODES["tanh"], 1, None, None),
], ids=["none", "given", "softmax", "softplus", "tanh"])
def test_row_pass_against_torch(device, storage, act, rank, block_rows, splits):
    """z, u and the written W_t of one launch, on a layer whose sizes fill no block exactly."""
    g = torch.Generator().manual_seed(act)
    c, rows, cols = 3, 11, 13
    r = lambda *s: torch.randn(*s, generator=g).to(device)
    weights = r(c, rows, cols).to(STORAGE[storage])
    keep, left, right, v, a = r(c).abs(), r(c, rank, rows), r(c, rank, cols), r(1, cols), r(c, rows)
    out = torch.full_like(weights, float("nan"))  # every element must be written
    z, u = triton_step.row_pass(weights, keep, left, right, v=v, a=a if act == triton_step.ACT_GIVEN else None,
                                out=out, act=act, act_param=10.0, block_rows=block_rows, splits=splits)
    w_t = keep[:, None, None] * weights.float() - left.transpose(1, 2) @ right
    z_want = (w_t * v[:, None, :]).sum(2)
    weights_of_rows = {triton_step.ACT_GIVEN: a, triton_step.ACT_SOFTMAX: torch.softmax(z_want, 1),
                       triton_step.ACT_CODES["softplus"]: torch.nn.functional.softplus(z_want, beta=10.0),
                       triton_step.ACT_CODES["tanh"]: torch.tanh(z_want)}.get(act)
    ulp = torch.finfo(STORAGE[storage]).eps * float(w_t.abs().max())  # float32 order may flip one rounding
    torch.testing.assert_close(out.float(), w_t.to(STORAGE[storage]).float(), rtol=0, atol=ulp)
    torch.testing.assert_close(z, z_want, rtol=1e-5, atol=1e-5)
    if weights_of_rows is None:
        assert u is None
    else:
        torch.testing.assert_close(u, (w_t * weights_of_rows[:, :, None]).sum(1), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("storage", ["float32", "float16"])
@pytest.mark.parametrize("feedback", ["fa", "bp", "dfa"])
@pytest.mark.parametrize("terms", TERM_SETS, ids=lambda t: ",".join(map(str, t)))
def test_step_equals_fused_step(device, storage, feedback, terms):
    """Three chained steps from a non-zero pending update: W_t, and the factors left pending."""
    error = steps_error(lambda act, direct: triton_step.make_step(terms, act, direct), terms, feedback, device,
                        STORAGE[storage])
    assert error <= TOLERANCE[STORAGE[storage]], error


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_step_every_activation(device, activation):
    """The pool (which needs u = W_tᵀ σ(z)) with each activation's σ computed in the kernel."""
    act = make_activation(net_config(activation))
    error = steps_error(lambda _, direct: triton_step.make_step(POOL, act, direct), POOL, "fa", device,
                        torch.float32, act)
    assert error <= TOLERANCE[torch.float32], error


def episode_inputs(feedback, device, steps=6):
    """Tiny float32 tasks, networks and pool θ (6 pairs on 2 tasks) on the device."""
    cfg = net_config(feedback=feedback)
    act, tasks, init = make_activation(cfg), make_tasks(steps=steps), make_init(cfg)
    return act, tasks.to(device, torch.float32), init.map(lambda t: t.to(device, torch.float32)), pool_theta(6).to(
        device, torch.float32)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("feedback", ["fa", "bp", "dfa"])
@pytest.mark.parametrize("options", [{}, {"cuda_graph": True, "chunk": 2}, {"weight_dtype": torch.float16}],
                         ids=["plain", "fixed-buffers", "float16"])
def test_episode_equals_plain_loop(device, feedback, options):
    """run_episode through the Triton step (uncompiled; captured on CUDA) scores like the plain loop."""
    act, tasks, init, theta = episode_inputs(feedback, device)
    with torch.no_grad():
        plain = run_episode(theta, POOL, tasks, init, act)
        fast = run_episode(theta, POOL, tasks, init, act,
                           compiled=fused.FusedOptions(compile=False, kernel="triton", **options))
    tolerance = 1e-4 if "weight_dtype" not in options else 1e-2
    torch.testing.assert_close(fast.loss, plain.loss, rtol=tolerance, atol=tolerance)
    for got, want in zip(fast.weights, plain.weights):
        torch.testing.assert_close(got, want, rtol=tolerance, atol=tolerance * want.abs().max())


# --- CUDA only: torch.compile around the kernel, the configured path -------------------------------

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch sees none)")


@CUDA
@pytest.mark.parametrize("storage", STORAGE)
@pytest.mark.parametrize("feedback", ["fa", "bp"])
def test_cuda_compiled_triton_step_equals_fused_step(storage, feedback):
    error = steps_error(lambda act, direct: fused.step_function(POOL, act, True, direct, kernel="triton"), POOL,
                        feedback, "cuda", STORAGE[storage])
    assert error <= TOLERANCE[STORAGE[storage]], error


@CUDA
@pytest.mark.parametrize("precision", ["float32", "float16"])
def test_cuda_configured_triton_fitness_matches_cpu(monkeypatch, precision):
    """es.kernel=triton end to end (compiled, captured): the kernel really runs, and scores like the CPU loop."""
    launches = []
    original = triton_step.row_pass
    monkeypatch.setattr(triton_step, "row_pass", lambda *a, **k: launches.append(1) or original(*a, **k))
    from evoplastic.families import build_fitness

    theta = torch.tensor([[0.01, -0.02, 0.003], [0.02, -0.01, -0.004], [0.015, -0.03, 0.0]])
    cpu = build_fitness(tiny_config("dtype=float32"))(theta, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback must not pass as the kernel
        gpu = build_fitness(tiny_config("dtype=float32", "device=cuda", "es.compile=true", "es.cuda_graph=true",
                                        "es.kernel=triton", f"es.precision={precision}"))(theta, 3)
    assert launches, "es.kernel=triton did not reach the Triton step (PaperProblem builds FusedOptions)"
    tolerance = 1e-3 if precision == "float32" else 0.05
    torch.testing.assert_close(gpu.loss.cpu(), cpu.loss, rtol=tolerance, atol=tolerance)


# --- no kernel launch: the subprocess, activation mapping, launch shapes, config, fallback ---------


def test_cpu_cases_under_triton_interpret():
    """The interpreter cases of this file, in a subprocess with TRITON_INTERPRET=1 (about 30 s)."""
    if INTERPRETED:
        pytest.skip("this process is the interpreter subprocess")
    if importlib.util.find_spec("triton.runtime.interpreter") is None or importlib.util.find_spec("numpy") is None:
        pytest.skip("Triton's interpreter is unavailable (triton.runtime.interpreter or numpy missing)")
    here = Path(__file__).resolve()
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=os.pathsep.join(
        filter(None, [str(here.parents[1]), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(here), "-k",
                           "interpreter"], capture_output=True, text=True, env=env, cwd=here.parent, timeout=600,
                          check=False)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, f"interpreter cases failed: {summary}\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
    assert " passed" in summary and "skipped" not in summary, summary


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_has_a_kernel_form(activation):
    code, param = triton_step.kernel_activation(make_activation(net_config(activation)))
    assert code == triton_step.ACT_CODES[activation]
    assert param == {"softplus": 10.0, "leaky_relu": 0.01}.get(activation, 0.0)


def test_activation_unlike_its_kernel_form_is_refused():
    base = make_activation(net_config("softplus"))
    other_beta = Activation("softplus", lambda z: torch.nn.functional.softplus(z, beta=2.0), base.derivative,
                            base.derivative_from_output, True, base.params)
    with pytest.raises(ValueError, match="'softplus' differs from the Triton step's closed form"):
        triton_step.kernel_activation(other_beta)
    with pytest.raises(ValueError, match="no kernel form of activation 'swish'"):
        triton_step.kernel_activation(Activation("swish", torch.sigmoid, torch.sigmoid, torch.sigmoid, True))


@pytest.mark.parametrize("rows, cols, pairs, act", [(170, 784, 8, 3), (170, 784, 8192, 3), (47, 70, 8, 2),
                                                    (5, 3, 1, 0), (100, 130, 300, 1)])
def test_launch_covers_every_row_once(rows, cols, pairs, act):
    block_rows, block_cols, per_split, splits = triton_step.row_blocks(rows, cols, pairs, act)
    assert block_cols >= cols and block_rows * block_cols <= max(triton_step.TILE, block_cols)
    assert per_split % block_rows == 0 and (splits - 1) * per_split < rows <= splits * per_split
    one = act == triton_step.ACT_SOFTMAX or pairs >= triton_step.TARGET_PROGRAMS or rows <= block_rows
    assert splits == 1 if one else splits > 1
    with pytest.raises(ValueError, match="layers of up to"):
        triton_step.row_blocks(rows, triton_step.MAX_COLUMNS + 1, pairs, act)


GPU_TARGET = ("cuda", 90, 32)
"""An H100/H200-class GPU: Triton compiles for it on a machine without one (its ptxas ships with triton)."""


@pytest.mark.parametrize("scalar", ["fp64", "fp32"])
@pytest.mark.parametrize("act", [triton_step.ACT_SOFTMAX, *triton_step.ACT_CODES.values()],
                         ids=["softmax", *triton_step.ACT_CODES])
def test_kernel_compiles_for_a_gpu_whatever_the_parameter_type(act, scalar):
    """torch.compile hands the kernel a Python float as fp64, a direct launch as fp32: both compile, and
    the only float64 operation is the parameter's cast to float32, if it is used (the arithmetic stays float32)."""
    if INTERPRETED:
        pytest.skip("interpreted kernels are not triton.JITFunction objects")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    kernel = triton_step._KERNEL
    constants = {"RANK": 3, "ACT": act, "WRITE": True, "DOT": True, "BLOCK_R": 4, "BLOCK_C": 1024}
    signature = {name: "constexpr" if name in constants else "*fp16" if name in ("w_ptr", "out_ptr") else
                 "*fp32" if name.endswith("_ptr") else scalar if name == "act_param" else "i32"
                 for name in kernel.arg_names}
    source = ASTSource(kernel, signature, {(kernel.arg_names.index(k),): v for k, v in constants.items()})
    try:
        compiled = triton.compile(source, target=GPUTarget(*GPU_TARGET))
    except triton.compiler.errors.CompilationError:
        raise
    except Exception as err:  # noqa: BLE001 — a missing GPU toolchain is no fault of the kernel
        if "ttir" in str(err).lower():
            raise
        pytest.skip(f"Triton cannot compile for {GPU_TARGET} here: {type(err).__name__}: {str(err)[:200]}")
    wide = [line for line in compiled.asm["ttir"].splitlines() if "f64" in line and "tt.func" not in line]
    assert len(wide) <= 1 and all("arith.truncf %act_param : f64 to f32" in line for line in wide), wide


class _Traced(Exception):
    """Raised by the capturing backend below once Dynamo has traced the whole step."""


def test_step_traces_into_one_graph(monkeypatch):
    """torch.compile(fullgraph=True) traces the Triton step without a graph break, each launch one node.

    Without a GPU, Dynamo treats triton kernels as plain Python unless told that triton is usable;
    the backend stops at the traced graph, so nothing is launched."""
    if INTERPRETED:
        pytest.skip("interpreted kernels are not triton.JITFunction objects")
    import torch.utils._triton as torch_triton

    monkeypatch.setattr(torch_triton, "has_triton", lambda: True)
    monkeypatch.setattr(triton_step, "_kernel_for", lambda device: triton_step._KERNEL)
    graphs = []

    def backend(graph, inputs):
        graphs.append(graph)
        raise _Traced

    act, theta_full, init_weights, fb, (x, target, slope), direct = float32_inputs(POOL, "bp", "cpu")
    weights, left, right, keep = fused.self_check_inputs(theta_full, init_weights, update_rank(POOL), torch.float16)
    step = torch.compile(triton_step.make_step(POOL, act, direct), backend=backend, fullgraph=True)
    try:
        with torch.no_grad():
            step(weights, [torch.empty_like(w) for w in weights], fb, left, right, keep, theta_full, x, target, slope)
    except Exception as err:  # noqa: BLE001 — Dynamo wraps what the backend raises
        if not graphs:
            if "triton" in str(err).lower() and "skipped" in str(err):
                pytest.skip(f"this torch traces triton kernels only with a GPU present: {str(err)[:200]}")
            raise
    launches = [n for n in graphs[0].graph.nodes if "triton_kernel_wrapper" in str(n.target)]
    assert len(graphs) == 1 and len(launches) == 2 * len(weights)  # bp: forward + B_tᵀ e per layer


def test_cpu_tensors_need_triton_interpret():
    if INTERPRETED:
        pytest.skip("the interpreter is on in this process")
    w = torch.zeros(1, 2, 3)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        triton_step.row_pass(w, torch.ones(1), torch.zeros(1, 1, 2), torch.zeros(1, 1, 3), v=torch.zeros(1, 3))


def test_float64_factors_are_refused():
    with pytest.raises(TypeError, match="computes in float32"):
        triton_step.row_pass(torch.zeros(1, 2, 3), torch.ones(1), torch.zeros(1, 1, 2, dtype=torch.float64),
                             torch.zeros(1, 1, 3, dtype=torch.float64))


@pytest.mark.parametrize("overrides, message", [
    (["es.kernel=cuda"], "unknown es.kernel 'cuda'; choose one of: auto, cpp, inductor, triton"),
    (["es.kernel=triton", "dtype=float32", "device=cuda"], "set es.compile=true, or es.kernel=auto"),
    (["es.kernel=triton", "dtype=float32", "es.compile=true"], r"set device=cuda \(or auto\), or es.kernel=auto"),
    (["es.kernel=triton", "device=cuda", "es.compile=true"], "set dtype=float32, or"),
])
def test_kernel_option_is_checked(overrides, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config(*overrides)
    assert tiny_config("es.kernel=triton", "device=cuda", "es.compile=true", "dtype=float32").es.kernel == "triton"


def test_failed_triton_step_falls_back_to_the_inductor_step(monkeypatch):
    """A Triton step that cannot be built warns once, then the Inductor step (here run eagerly) does the work."""
    for name, value in (("_FAILED", set()), ("_CHECKED", set()), ("_FALLBACKS", [])):
        monkeypatch.setattr(fused, name, value)
    kernels = []

    def step_function(terms, activation, compile, direct=False, kernel="inductor"):
        kernels.append(kernel)
        if kernel == "triton":
            raise RuntimeError("no GPU compiler here")
        return functools.partial(fused.fused_step, terms=terms, activation=activation, direct=direct)

    monkeypatch.setattr(fused, "step_function", step_function)
    act, tasks, init, theta = episode_inputs("fa", "cpu")
    options = fused.FusedOptions(kernel="triton")
    with torch.no_grad():
        plain = run_episode(theta, POOL, tasks, init, act)
        with pytest.warns(RuntimeWarning, match="Triton step unavailable.*no GPU compiler.*using the Inductor step"):
            first = run_episode(theta, POOL, tasks, init, act, compiled=options)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # not tried (nor reported) again
            again = run_episode(theta, POOL, tasks, init, act, compiled=options)
    assert kernels == ["triton", "inductor", "inductor"]
    for result in (first, again):
        torch.testing.assert_close(result.loss, plain.loss, rtol=1e-4, atol=1e-5)


def test_options_carry_the_kernel():
    assert fused.FusedOptions().kernel == "inductor"
    options = fused.FusedOptions.for_precision("float16", cuda_graph=True, kernel="triton")
    assert (options.kernel, options.weight_dtype, options.cuda_graph) == ("triton", weight_dtype("float16"), True)
