"""The GPU-oriented options of the fused loop: fixed-buffer phases (CUDA graphs), 16-bit weight
storage, TF32 and memory-sized chunks.

On CPU the fixed-buffer phase runs without capture, so its buffer handling is checked here on
every machine; capture and replay themselves are checked only where torch sees a CUDA device.
"""

import warnings

import pytest
import torch
from conftest import tiny_config
from test_fused import assert_same_weights, fused_weights
from test_inner import BIO, POOL, make_init, make_tasks, net_config, pool_theta

from evoplastic.config import ConfigError
from evoplastic.core.fitness import members_that_fit
from evoplastic.families import build_fitness
from evoplastic.families.paper import static
from evoplastic.families.paper.inner import run_episode
from evoplastic.families.paper.network import make_activation
from evoplastic.families.paper.problem import bytes_per_pair, members_in_cache, weight_bytes
from evoplastic.precision import matmul_precision, weight_dtype

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch sees none)")


@pytest.fixture(autouse=True)
def fresh_phases():
    static.clear()
    yield
    static.clear()


@pytest.mark.parametrize("feedback", ["fa", "bp"])
@pytest.mark.parametrize("chunk", [0, 2])
def test_fixed_buffer_phase_equals_plain_loop(feedback, chunk):
    cfg = net_config(feedback=feedback)
    act, tasks, init = make_activation(cfg), make_tasks(), make_init(cfg)
    for seed in (0, 1):  # the second call reuses the cached buffers: nothing of the first may leak in
        theta = pool_theta(6, seed=seed)
        with torch.no_grad():
            plain = run_episode(theta, POOL, tasks, init, act)
        got = fused_weights(theta, POOL, tasks, init, act, chunk=chunk, cuda_graph=True)
        assert_same_weights(got, plain.weights)
    assert 1 <= len(static._PHASES) <= static.MAX_PHASES


def test_fixed_buffer_phases_are_bounded():
    cfg = net_config()
    act, init = make_activation(cfg), make_init(cfg)
    for steps in range(1, static.MAX_PHASES + 3):  # one shape per step count
        fused_weights(pool_theta(4), POOL, make_tasks(steps=steps), init, act, cuda_graph=True)
    assert len(static._PHASES) == static.MAX_PHASES


def test_failed_capture_falls_back_once(monkeypatch):
    cfg = net_config()
    act, tasks, init, theta = make_activation(cfg), make_tasks(), make_init(cfg), pool_theta(4)[:, list(BIO)]

    def broken(self, *args):
        raise static.CaptureError("CUDA graph capture failed") from RuntimeError("operation not permitted")

    monkeypatch.setattr(static.StaticPhase, "__call__", broken)
    with torch.no_grad():
        plain = run_episode(theta, BIO, tasks, init, act)
    with pytest.warns(RuntimeWarning, match="CUDA graph capture unavailable.*operation not permitted.*uncaptured"):
        got = fused_weights(theta, BIO, tasks, init, act, cuda_graph=True)
    assert_same_weights(got, plain.weights)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # not tried (nor reported) again
        fused_weights(theta, BIO, tasks, init, act, cuda_graph=True)
    static._FAILED.clear()


def test_16_bit_weights_stay_close_and_float16_is_closer():
    cfg = net_config()
    act, init = make_activation(cfg), make_init(cfg)
    tasks, theta = make_tasks(steps=10), pool_theta(4, scale=1.0)
    with torch.no_grad():
        exact = run_episode(theta, POOL, tasks, init, act).weights
    errors = {}
    for name in ("bfloat16", "float16"):
        got = fused_weights(theta, POOL, tasks, init, act, weight_dtype=weight_dtype(name))
        assert all(w.dtype == torch.float64 for w in got)  # handed back in θ's dtype
        errors[name] = max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(got, exact))
    assert 0 < errors["float16"] < errors["bfloat16"] < 0.02, errors


def test_tf32_switch_is_restored():
    matmul = torch.backends.cuda.matmul
    read = (lambda: matmul.fp32_precision) if hasattr(matmul, "fp32_precision") else (lambda: matmul.allow_tf32)
    before = read()
    with matmul_precision("tf32", torch.device("cuda")):
        assert read() in ("tf32", True)
    assert read() == before
    with matmul_precision("tf32", torch.device("cpu")):
        assert read() == before  # CPU: nothing to switch


def test_unknown_precision_is_named():
    with pytest.raises(ValueError, match="unknown precision 'fp8'.*bfloat16"):
        weight_dtype("fp8")


@pytest.mark.parametrize("overrides, message", [
    (["es.precision=half"], "unknown es.precision 'half'"),
    (["es.precision=bfloat16", "dtype=float32"], "set es.compile=true"),
    (["es.precision=tf32", "es.compile=true"], "with dtype=float64 set es.precision=float32"),
    (["es.cuda_graph=true"], "set es.compile=true as well"),
    (["es.cuda_graph=true", "es.compile=true", "device=cpu"], "needs a GPU; set device=cuda"),
])
def test_speed_options_are_checked(overrides, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config(*overrides)


def test_memory_sized_chunks():
    pair = bytes_per_pair((784, 170, 130, 100, 70, 47), torch.float32, 250, autograd=False)
    assert pair == 3 * 178_670 * 4
    assert bytes_per_pair((784, 170, 130, 100, 70, 47), torch.float32, 250, autograd=True) == 753 * 178_670 * 4
    assert members_that_fit(80 * 2**30, pair, 1) == int(0.5 * 80 * 2**30 / pair)  # ~20,000 on an 80 GB GPU
    assert members_that_fit(10 * pair, pair, 2) == 2
    assert members_that_fit(pair, pair, 4) == 1  # always at least one member
    assert members_that_fit(None, pair, 1) == 0  # unknown: no limit


def test_plain_cpu_loop_chunks_to_the_cache():
    paper = weight_bytes((784, 170, 130, 100, 70, 47), torch.float32)
    assert members_in_cache(paper, 2) == 5  # 10 pairs of 0.71 MB within 8 MiB
    assert members_in_cache(paper, 20) == 1
    tiny = weight_bytes((64, 12, 10), torch.float64)
    assert members_in_cache(tiny, 2) > 500  # small networks: the whole population at once


def test_fitness_chunks_to_free_memory(monkeypatch):
    theta = torch.tensor([[0.01, -0.02, 0.003], [0.02, -0.01, -0.004], [0.015, -0.03, 0.0]], dtype=torch.float64)
    fitness = build_fitness(tiny_config())
    whole = fitness(theta, 3)
    calls = []
    original = fitness.problem.auto_chunk
    monkeypatch.setattr("evoplastic.families.paper.problem.free_memory", lambda device: 1)  # one member per call
    monkeypatch.setattr(fitness.problem, "auto_chunk", lambda *a: calls.append(original(*a)) or calls[-1])
    chunked = fitness(theta, 3)
    assert calls == [1]
    torch.testing.assert_close(chunked.loss, whole.loss, rtol=1e-12, atol=0)


def test_bfloat16_fitness_compiled():
    """The configured path end to end: compiled step with 16-bit weights, close to float32."""
    theta = torch.tensor([[0.01, -0.02, 0.003], [0.02, -0.01, -0.004]])
    base = ["dtype=float32", "es.compile=true"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a compiler failure must not pass as the eager loop
        exact = build_fitness(tiny_config(*base))(theta, 3)
        low = build_fitness(tiny_config(*base, "es.precision=bfloat16"))(theta, 3)
    assert not torch.equal(low.loss, exact.loss)  # the weights really were stored in 16 bits
    torch.testing.assert_close(low.loss, exact.loss, rtol=0.02, atol=0.01)


@CUDA
@pytest.mark.parametrize("compile", [False, True])
def test_cuda_graph_replay_equals_uncaptured(compile):
    cfg = net_config()
    act = make_activation(cfg)
    tasks = make_tasks().to("cuda", torch.float32)
    init = make_init(cfg)
    init = type(init)([w.cuda().float() for w in init.weights], [b.cuda().float() for b in init.feedback])
    for seed in (0, 1):  # capture, then replay with new inputs
        theta = pool_theta(6, seed=seed).cuda().float()
        want = fused_weights(theta, POOL, tasks, init, act, eager=not compile)
        got = fused_weights(theta, POOL, tasks, init, act, eager=not compile, cuda_graph=True)
        assert_same_weights(got, want, rtol=1e-5, atol=1e-6)
    assert any(phase.graph is not None for phase in static._PHASES.values())


@CUDA
@pytest.mark.parametrize("options", [[], ["es.compile=true"], ["es.compile=true", "es.cuda_graph=true"],
                                     ["es.compile=true", "es.cuda_graph=true", "es.precision=tf32"],
                                     ["es.compile=true", "es.cuda_graph=true", "es.precision=float16"]],
                         ids=["eager", "compiled", "graph", "graph-tf32", "graph-float16"])
def test_cuda_fitness_matches_cpu(options):
    """Every GPU path of the ES fitness scores like the CPU float32 loop."""
    theta = torch.tensor([[0.01, -0.02, 0.003], [0.02, -0.01, -0.004], [0.015, -0.03, 0.0]])
    cpu = build_fitness(tiny_config("dtype=float32"))(theta, 3)
    gpu = build_fitness(tiny_config("dtype=float32", "device=cuda", *options))(theta, 3)
    tolerance = 0.05 if any("precision" in o for o in options) else 1e-3
    torch.testing.assert_close(gpu.loss.cpu(), cpu.loss, rtol=tolerance, atol=tolerance)
