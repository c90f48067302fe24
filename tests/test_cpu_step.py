"""The C++ single-pass CPU step (cpu_step) equals the plain loop and the eager fused_step.

Float64 storage runs the same pass in double precision, so the comparisons there are to rounding;
float32 and 16-bit storage keep float32 arithmetic. The step runs in place (one buffer, the default)
or with two buffers (its fallback); the episode tests cover both. The library is built once per machine (about
2 s with g++); tests skip with the reason when no C++ compiler is found.
"""

import functools
import re

import pytest
import torch
from test_fused import TERM_SETS, fused_weights
from test_inner import BIO, POOL, make_init, make_tasks, net_config, pool_theta

from evoplastic.families.paper import cpu_step, fused
from evoplastic.families.paper.inner import run_episode
from evoplastic.families.paper.network import ACTIVATIONS, Activation, make_activation
from evoplastic.families.paper.rules import expand_theta, update_rank
from evoplastic.families.paper.space import RuleSpace

try:
    cpu_step.library()
except RuntimeError as err:  # pragma: no cover — machines without a C++ compiler
    pytest.skip(f"the single-pass CPU step cannot be built here: {err}", allow_module_level=True)

STORAGE = [torch.float64, torch.float32, torch.bfloat16, torch.float16]
ACTS = {"none": cpu_step.ACT_NONE, "given": cpu_step.ACT_GIVEN, "softmax": cpu_step.ACT_SOFTMAX,
        **cpu_step.ACT_CODES}


def reference_pass(weights, keep, left, right, v, a, act, param):
    """W_t, z and u of one pass, in float64 torch."""
    w_t = keep.double()[:, None, None] * weights.double() - left.double().transpose(1, 2) @ right.double()
    z = (w_t * v.double()[:, None, :]).sum(2)
    row_weights = None
    if act == cpu_step.ACT_GIVEN:
        row_weights = a.double()
    elif act == cpu_step.ACT_SOFTMAX:
        row_weights = torch.softmax(z, 1)
    elif act in cpu_step.ACT_CODES.values():
        row_weights = cpu_step.reference_forward(act, param, z)
    return w_t, z, None if row_weights is None else (w_t * row_weights[:, :, None]).sum(1)


@pytest.mark.parametrize("storage", STORAGE, ids=str)
@pytest.mark.parametrize("rank", [0, 1, 2, 3])
@pytest.mark.parametrize("act", ACTS.values(), ids=ACTS.keys())
@pytest.mark.parametrize("in_place", [False, True], ids=["two-buffers", "in-place"])
def test_row_pass_against_torch(storage, rank, act, in_place):
    """W_t written to every element (over W_{t-1} in place), z and u, on a layer of 11 rows (two tiles of 4 and 3
    left over); rank 0 is a plain pass over W (bp's second read after an in-place step)."""
    g = torch.Generator().manual_seed(rank)
    c, rows, cols = 3, 11, 13
    arith = torch.float64 if storage == torch.float64 else torch.float32
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)
    weights, keep, left, right = r(c, rows, cols).to(storage), r(c).abs().to(arith), r(c, rank, rows), r(c, rank, cols)
    v, a = r(1, cols).to(arith), r(c, rows).to(arith)
    left, right = left.to(arith), right.to(arith)
    param = 0.3 if act == cpu_step.ACT_CODES["leaky_relu"] else 2.0
    out = weights.clone() if in_place else torch.full_like(weights, float("nan"))
    if in_place:
        weights = out
    w_t, z_want, u_want = reference_pass(weights, keep, left, right, v, a, act, param)
    y = torch.full((c, rows), float("nan"), dtype=arith) if act in cpu_step.ACT_CODES.values() else None
    z, u = cpu_step.row_pass(weights, keep, left, right, v=v, a=a if act == cpu_step.ACT_GIVEN else None, out=out,
                             act=act, act_param=param, y=y)
    exact = storage == torch.float64
    tol = 1e-12 if exact else 2e-5
    ulp = torch.finfo(storage).eps * float(w_t.abs().max())  # one rounding of W_t may flip with float32 order
    torch.testing.assert_close(out.double(), w_t.to(storage).double(), rtol=0, atol=1e-13 if exact else ulp)
    torch.testing.assert_close(z.double(), z_want, rtol=tol, atol=tol)
    if y is not None:  # the layer's output σ(z), from the pass
        torch.testing.assert_close(y.double(), cpu_step.reference_forward(act, param, z_want), rtol=tol, atol=tol)
    assert (u is None) == (u_want is None)
    if u is not None:
        torch.testing.assert_close(u.double(), u_want, rtol=tol, atol=tol * float(u_want.abs().max()))


def test_row_pass_takes_a_strided_keep_and_per_pair_inputs():
    """A per-layer keep column (a strided view) and one v per pair."""
    g = torch.Generator().manual_seed(5)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)
    weights, keep_all, left, right, v = r(4, 6, 5), r(4, 3).abs(), r(4, 2, 6), r(4, 2, 5), r(4, 5)
    z, u = cpu_step.row_pass(weights, keep_all[:, 1], left, right, v=v, act=cpu_step.ACT_CODES["tanh"])
    w_t, z_want, u_want = reference_pass(weights, keep_all[:, 1], left, right, v, None, cpu_step.ACT_CODES["tanh"], 0)
    torch.testing.assert_close(z, z_want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(u, u_want, rtol=1e-12, atol=1e-12)


def cpp_weights(theta, terms, tasks, init, act, chunk=None, compile=False, in_place=True):
    """Adapted weights from fused.learn through the C++ step."""
    return fused_weights(theta, terms, tasks, init, act, chunk=chunk, eager=not compile, kernel="cpp",
                         in_place=in_place)


def assert_same(got, want, tol=1e-10):
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * float(b.abs().max()))


@pytest.mark.parametrize("in_place", [True, False], ids=["in-place", "two-buffers"])
@pytest.mark.parametrize("feedback", ["fa", "bp", "dfa"])
@pytest.mark.parametrize("terms", TERM_SETS, ids=lambda t: ",".join(map(str, t)))
def test_step_equals_the_plain_loop_float64(feedback, terms, in_place):
    """Every adapted weight after 6 online steps, each term subset, each feedback kind, in place or not."""
    cfg = net_config(feedback=feedback)
    act, tasks, init = make_activation(cfg), make_tasks(), make_init(cfg)
    theta = pool_theta(6)[:, list(terms)]
    with torch.no_grad():
        plain = run_episode(theta, terms, tasks, init, act)
    assert_same(cpp_weights(theta, terms, tasks, init, act, chunk=2, in_place=in_place), plain.weights)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_step_every_activation_float64(activation):
    cfg = net_config(activation)
    act, tasks, init = make_activation(cfg), make_tasks(), make_init(cfg)
    theta = pool_theta(4)
    with torch.no_grad():
        plain = run_episode(theta, POOL, tasks, init, act)
    assert_same(cpp_weights(theta, POOL, tasks, init, act), plain.weights)


@pytest.mark.parametrize("feedback", ["fa", "bp"])
def test_per_layer_coefficients_float64(feedback, monkeypatch):
    """θ with one row of pool coefficients per layer: scores as the plain loop does, through the C++ step."""
    used = []
    real_step = cpu_step.cpu_step
    monkeypatch.setattr(cpu_step, "cpu_step", lambda *a, **k: used.append(a[5].shape) or real_step(*a, **k))
    cfg = net_config(feedback=feedback)
    act, tasks, init = make_activation(cfg), make_tasks(), make_init(cfg)
    layers = len(init.weights)
    space = RuleSpace(POOL, layers, per_layer=True)
    theta = torch.cat([pool_theta(4, seed=layer) for layer in range(layers)], 1)
    with torch.no_grad():
        plain = run_episode(theta, space, tasks, init, act)
        fast = run_episode(theta, space, tasks, init, act, compiled=fused.FusedOptions(compile=False, kernel="cpp"))
    assert used and all(shape[1:] == (layers,) for shape in used)  # the C++ step ran, keep (c, L) per layer
    assert_same(fast.weights, plain.weights)
    torch.testing.assert_close(fast.loss, plain.loss, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("in_place", [True, False], ids=["in-place", "two-buffers"])
@pytest.mark.parametrize("feedback", ["fa", "bp", "dfa"])
@pytest.mark.parametrize("storage", [torch.float32, torch.bfloat16, torch.float16], ids=str)
def test_three_steps_equal_fused_step_in_float32(feedback, storage, in_place):
    """fused.self_check's comparison (3 chained steps from a non-zero pending update) with float32 θ."""
    cfg = net_config(feedback=feedback)
    act, tasks, init = make_activation(cfg), make_tasks(), make_init(cfg)
    theta_full = expand_theta(pool_theta(3), POOL).float()
    targets = torch.nn.functional.one_hot(tasks.train_y, init.weights[-1].shape[1]).float()
    fb = None if init.feedback is None else [b[:1].float() for b in init.feedback]
    x = tasks.train_x[0, :1].float()
    eager = functools.partial(fused.fused_step, terms=POOL, activation=act, direct=init.direct)
    error = fused.self_check(cpu_step.make_step(POOL, act, init.direct), eager, theta_full,
                             [w[0].float() for w in init.weights], fb, x, targets[0, :1], act.derivative_from_output(x),
                             update_rank(POOL), storage, in_place)
    assert error <= fused.SELF_CHECK_TOLERANCE[storage], error


def test_compiled_vector_work_equals_the_plain_loop():
    """es.compile's form: the pass as it is, the vector work under torch.compile (tiny float64 network)."""
    cfg = net_config()
    act, tasks, init = make_activation(cfg), make_tasks(), make_init(cfg)
    theta = pool_theta(4)
    with torch.no_grad():
        plain = run_episode(theta, POOL, tasks, init, act)
    assert_same(cpp_weights(theta, POOL, tasks, init, act, compile=True), plain.weights)


def checked_as_if_compiled(monkeypatch):
    """Fresh fallback state, and the C++ step run eagerly but self-checked as es.compile's step is."""
    for name, value in (("_FAILED", set()), ("_CHECKED", set()), ("_FALLBACKS", []), ("_COMPILED", {})):
        monkeypatch.setattr(fused, name, value)
    real_step_function = fused.step_function
    monkeypatch.setattr(fused, "step_function", lambda terms, activation, compile, direct=False, kernel="inductor":
                        real_step_function(terms, activation, False, direct, kernel))


def test_a_wrong_pass_is_refused_by_the_self_check(monkeypatch):
    """A pass that applies the decay twice is caught at first use, in place and then with two buffers;
    the Inductor step (here run eagerly) does the work and both fallbacks are recorded."""
    checked_as_if_compiled(monkeypatch)
    right_pass = cpu_step.row_pass
    monkeypatch.setattr(cpu_step, "row_pass",
                        lambda w, keep, *a, **k: right_pass(w, keep * keep, *a, **k))
    cfg = net_config()
    act, tasks, init = make_activation(cfg), make_tasks(), make_init(cfg)
    theta = pool_theta(4)[:, list(BIO)]
    with torch.no_grad():
        plain = run_episode(theta, BIO, tasks, init, act)
        with pytest.warns(RuntimeWarning) as caught:
            fast = run_episode(theta, BIO, tasks, init, act, compiled=fused.FusedOptions(kernel="cpp"))
    torch.testing.assert_close(fast.loss, plain.loss, rtol=1e-10, atol=1e-12)
    notes = fused.compile_fallbacks()
    assert [str(w.message) for w in caught] == notes and len(notes) == 2
    assert re.match(r"C\+\+ single-pass step in place unavailable.*SelfCheckError.*two-buffer C\+\+ step", notes[0])
    assert re.match(r"C\+\+ single-pass step unavailable.*SelfCheckError.*the Inductor step", notes[1])


@pytest.mark.parametrize("feedback", ["fa", "bp"])
def test_a_pass_wrong_only_in_place_falls_back_to_two_buffers(monkeypatch, feedback):
    """A pass that writes W_t over W_{t-1} before it reads the row (the hazard of one buffer: here the pending
    update is applied to W_t again) is refused by the in-place self-check; the two-buffer C++ step, which it
    computes right, passes its own check and does the work."""
    checked_as_if_compiled(monkeypatch)
    right_pass = cpu_step.row_pass
    two_buffer_calls = []

    def write_first(w, keep, left, right, *a, out=None, **k):
        if out is w:  # W_t written first, then "read" as if it were W_{t-1}
            right_pass(w, keep, left, right, out=w)
        elif out is not None:
            two_buffer_calls.append(1)
        return right_pass(w, keep, left, right, *a, out=out, **k)

    monkeypatch.setattr(cpu_step, "row_pass", write_first)
    cfg = net_config(feedback=feedback)
    act, tasks, init = make_activation(cfg), make_tasks(), make_init(cfg)
    theta = pool_theta(4)
    with torch.no_grad():
        plain = run_episode(theta, POOL, tasks, init, act)
        with pytest.warns(RuntimeWarning, match="step in place unavailable.*SelfCheckError.*two-buffer C\\+\\+"):
            fast = run_episode(theta, POOL, tasks, init, act, compiled=fused.FusedOptions(kernel="cpp"))
    assert_same(fast.weights, plain.weights)
    assert len(fused.compile_fallbacks()) == 1 and two_buffer_calls


def test_activation_unlike_its_closed_form_is_refused():
    base = make_activation(net_config("softplus"))
    other_beta = Activation("softplus", lambda z: torch.nn.functional.softplus(z, beta=2.0), base.derivative,
                            base.derivative_from_output, True, base.params)
    with pytest.raises(ValueError, match="'softplus' differs from the single-pass step's closed form"):
        cpu_step.kernel_activation(other_beta)
    with pytest.raises(ValueError, match="no kernel form of activation 'swish'"):
        cpu_step.kernel_activation(Activation("swish", torch.sigmoid, torch.sigmoid, torch.sigmoid, True))


def test_factors_in_another_dtype_are_refused():
    with pytest.raises(TypeError, match="computes in torch.float32"):
        cpu_step.row_pass(torch.zeros(1, 2, 3), torch.ones(1), torch.zeros(1, 1, 2, dtype=torch.float64),
                          torch.zeros(1, 1, 3, dtype=torch.float64))


@pytest.mark.parametrize("overrides, message", [
    (["es.kernel=cuda"], "unknown es.kernel 'cuda'; choose one of: auto, cpp, inductor, triton"),
    (["es.kernel=cpp", "es.compile=true", "device=cuda"], r"es.kernel=cpp is the CPU's compiled step.*device=cpu"),
    (["es.kernel=cpp"], "es.kernel=cpp chooses the compiled step; set es.compile=true"),
    (["es.kernel=triton", "es.compile=true"], r"set device=cuda \(or auto\).*, or es.kernel=auto"),
])
def test_impossible_kernel_choices_are_config_errors(overrides, message):
    from conftest import tiny_config

    from evoplastic.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        tiny_config(*overrides)


def test_resolve_kernel_per_device(monkeypatch):
    """auto: the C++ step on CPU, Inductor on CUDA; a step the device or machine cannot run is a clear error."""
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert [fused.resolve_kernel(k, cpu) for k in ("auto", "cpp", "inductor")] == ["cpp", "cpp", "inductor"]
    assert [fused.resolve_kernel(k, cuda) for k in ("auto", "inductor", "triton")] == ["inductor", "inductor", "triton"]
    with pytest.raises(ValueError, match="es.kernel=cpp is the CPU's compiled step, but the run is on cuda"):
        fused.resolve_kernel("cpp", cuda)
    with pytest.raises(ValueError, match="es.kernel=triton needs a GPU, but the run is on cpu; set es.kernel=auto"):
        fused.resolve_kernel("triton", cpu)
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", "")
    with pytest.raises(ValueError, match="no C\\+\\+ compiler was found: install g\\+\\+.*or set es.kernel=inductor"):
        fused.resolve_kernel("cpp", cpu)


@pytest.mark.parametrize("kernel, runs", [("auto", "cpp"), ("cpp", "cpp"), ("inductor", "inductor")])
def test_es_kernel_chooses_the_cpu_step(kernel, runs):
    """es.kernel reaches the compiled loop on CPU (it was ignored there before: auto keeps that behaviour)."""
    from conftest import tiny_config

    from evoplastic.families import build_fitness

    problem = build_fitness(tiny_config("es.compile=true", f"es.kernel={kernel}")).problem
    assert problem.fused.kernel == runs and problem.fused.in_place


def test_the_run_record_names_the_step_that_ran(monkeypatch, tmp_path):
    """meta.json's compiled_kernels: the in-place C++ step on CPU by default."""
    import json

    from conftest import tiny_config

    from evoplastic.run.rundir import RunDir
    from evoplastic.run.train import train

    for name, value in (("_FAILED", set()), ("_CHECKED", set()), ("_FALLBACKS", []), ("_RAN", {})):
        monkeypatch.setattr(fused, name, value)
    cfg = tiny_config("es.compile=true", "steps=1")
    run = RunDir.create(cfg, tmp_path)
    train(cfg, run, progress=False)
    meta = json.loads((run.path / "meta.json").read_text())
    assert meta["compiled_kernels"] == ["cpp"] and meta["compiled_fallbacks"] == []
