"""``evoplastic bench inner``: speed and peak memory of the inner loop, no-grad (ES) vs autograd (Adam).

With ``--compiled`` it also times the compiled no-grad path (``run_episode(compiled=True)``) at each N,
after a priming call that compiles it (its seconds are reported: less when Inductor's cache is warm).

Every row runs in a fresh subprocess (``python -m evoplastic.bench.inner _one CASE_JSON``) so that its
peak memory is its own. On CPU the child resets the kernel's peak-RSS mark (VmHWM, the counter
behind ``ru_maxrss``) by writing 5 to ``/proc/self/clear_refs`` after loading data and priming the
kernels, so peak and increase cover only the episodes; on CUDA it uses
``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from evoplastic.families.paper.config import NetworkConfig, TaskConfig
from evoplastic.families.paper.data import DATA_ENV, OFFLINE_NPZ, Dataset, data_directory, load_dataset
from evoplastic.families.paper.fused import FusedOptions, kernel_calls
from evoplastic.families.paper.inner import run_episode
from evoplastic.families.paper.network import Activation, NetworkState, init_network, make_activation, n_weights
from evoplastic.families.paper.rules import DEFAULT_TERM_SCALE, resolve_terms
from evoplastic.families.paper.tasks import TaskBatch, TaskSampler
from evoplastic.precision import matmul_precision
from evoplastic.run.rundir import cpu_model
from evoplastic.seeding import make_generator

PACKAGE_PARENT = Path(__file__).resolve().parents[2]
"""The directory that holds the evoplastic package (children get it on PYTHONPATH)."""
EMNIST_FILE = OFFLINE_NPZ[("emnist", "train")]
PAPER_THETA = {0: 0.01, 2: -0.05, 9: -0.006}
"""θ near what the published code learns for bio; other terms get small random values."""
MIB, N_WAY = 2.0**20, TaskConfig().n_way
DATASET_HELP = ("task.dataset of the timed tasks, e.g. npz:data/emnist-balanced-subset.npz (default: the EMNIST "
                f"subset in the data directory (${DATA_ENV}) or ../shared/data when present, else uniform noise)")


@dataclass(frozen=True)
class Case:
    """One measured configuration, sent to the child process as JSON."""

    mode: str  # nograd, compiled (no-grad, run_episode(compiled=True)) or autograd
    members: int
    k_shot: int
    rule: str
    dims: tuple[int, ...]
    device: str
    min_seconds: float
    threads: int
    precision: str = "float32"
    """Compiled rows: es.precision (tf32, or bfloat16/float16 weight storage)."""
    cuda_graph: bool = False
    """Compiled rows: replay each chunk's online phase from a CUDA graph (on CPU: fixed buffers)."""
    dataset: str = ""
    """task.dataset spec of the tasks; empty for the EMNIST subset when present (emnist_subset)."""
    kernel: str = "inductor"
    """Compiled rows: the step's kernel, inductor, triton (the single pass on CUDA) or cpp (on CPU, in place)."""

    @property
    def label(self) -> str:
        """Row name: mode, plus the CUDA graph, the compiled step's kernel and a non-float32 precision."""
        name = {"nograd": "no-grad", "compiled": "compiled"}.get(self.mode, self.mode)
        precision = "" if self.precision == "float32" else f"+{self.precision}"
        kernel = f"+{self.kernel}" if self.mode == "compiled" else ""
        return name + ("+graph" if self.cuda_graph else "") + kernel + precision

    @classmethod
    def from_dict(cls, values: dict) -> Case:
        """Rebuild from its JSON form (dims arrive as a list)."""
        return cls(**{**values, "dims": tuple(values["dims"])})


@dataclass
class Result:
    """Timing (seconds per call, member-episodes/s) and peak memory (MiB) of one case."""

    case: Case
    reps: int
    seconds_median: float
    seconds_best: float
    rate_median: float
    rate_best: float
    peak_mib: float
    increase_mib: float
    query_loss: float
    query_accuracy: float
    data: str
    compile_seconds: float = 0.0
    """Compiled rows: wall time of the priming call (compilation + one online step)."""
    kernels_ran: tuple[str, ...] = ()
    """Compiled rows: the steps that computed the timed episodes (fused.kernel_calls): the case's kernel, or
    what it fell back to (cpp-2buf, inductor) after a failed build or self-check."""

    @classmethod
    def from_dict(cls, values: dict) -> Result:
        """Rebuild from its JSON form (case a dict, kernels_ran a list)."""
        return cls(**{**values, "case": Case.from_dict(values["case"]),
                      "kernels_ran": tuple(values.get("kernels_ran", ()))})

    @property
    def fallback_note(self) -> str:
        """'  ran: …' when a compiled row's timed episodes ran another step than its kernel, else ''."""
        ran = [k for k in self.kernels_ran if k != self.case.kernel]
        return f"  ran: {','.join(self.kernels_ran)}" if self.case.mode == "compiled" and ran else ""


def emnist_subset() -> Path | None:
    """The EMNIST subset file: in the data directory (task.data_dir's default: $EVOPLASTIC_DATA or the
    cache), else in ../shared/data beside the checkout; None when neither has it."""
    for folder in (data_directory()[0], PACKAGE_PARENT.parent / "shared" / "data"):
        if (folder / EMNIST_FILE).is_file():
            return folder / EMNIST_FILE
    return None


def make_dataset(dims: tuple[int, ...], per_class: int, spec: str = "") -> Dataset:
    """The dataset spec if given; else the EMNIST subset when present and 784 pixels wide, else
    uniform noise with 47 classes."""
    if spec:
        return load_dataset(spec)
    if dims[0] == 784 and emnist_subset():
        return load_dataset(f"npz:{emnist_subset()}")
    labels = torch.arange(47).repeat_interleave(per_class)
    images = torch.rand(len(labels), dims[0], generator=make_generator("bench", "images"))
    return Dataset("synthetic", images, labels, tuple(str(c) for c in range(47)))


def make_theta(terms: tuple[int, ...], members: int) -> torch.Tensor:
    """(N, R) θ: paper-like values on terms 0, 2, 9, tiny random ones elsewhere, ±10 % per member."""
    g = make_generator("bench", "theta")
    noise = torch.randn(len(terms), generator=g, dtype=torch.float64).tolist()
    base = torch.tensor([PAPER_THETA.get(t, 0.01 * DEFAULT_TERM_SCALE[t] * z) for t, z in zip(terms, noise)])
    return (base * (1 + 0.1 * torch.randn(members, len(terms), generator=g, dtype=torch.float64))).float()


def build_inputs(case: Case, device: torch.device, n_tasks: int = 1) -> tuple[TaskBatch, NetworkState, str]:
    """n_tasks tasks (one by default) and their initial W (and B) on the device, plus the data source's name."""
    net = NetworkConfig(dims=case.dims, feedback="bp" if case.rule == "bp" else "fa")
    dataset = make_dataset(case.dims, case.k_shot + TaskConfig().n_query, case.dataset)
    task_cfg = TaskConfig(k_shot=case.k_shot, relabel=case.dims[-1] < len(dataset.class_names))
    tasks = TaskSampler(dataset, task_cfg).sample(n_tasks, make_generator("bench", "task")).to(device)
    init = init_network(net, n_tasks, make_generator("bench", "init"), torch.float32)
    return tasks, init.map(lambda t: t.to(device)), data_source(case.dims, case.dataset)


def data_source(dims: tuple[int, ...], spec: str = "") -> str:
    """What make_dataset(dims, …, spec) will load, without loading it."""
    return spec or ("EMNIST balanced subset" if dims[0] == 784 and emnist_subset()
                    else "synthetic (uniform noise, 47 classes)")


def compiled_options(case: Case) -> FusedOptions:
    """FusedOptions of a compiled row; kernel cpp-2buf is the C++ step with two buffers (its fallback)."""
    two_buffers = case.kernel == "cpp-2buf"
    options = FusedOptions.for_precision(case.precision, case.cuda_graph, "cpp" if two_buffers else case.kernel)
    return replace(options, in_place=False) if two_buffers else options


def episode(case: Case, theta: torch.Tensor, tasks: TaskBatch, init: NetworkState,
            activation: Activation) -> tuple[float, float]:
    """One no-grad (eager or compiled) or autograd (forward + backward) episode; mean query loss and accuracy."""
    terms = resolve_terms(case.rule)
    if case.mode in ("nograd", "compiled"):
        options = case.mode == "compiled" and compiled_options(case)
        with torch.no_grad(), matmul_precision(case.precision, theta.device):
            result = run_episode(theta, terms, tasks, init, activation, compiled=options)
    else:
        result = run_episode(theta.clone().requires_grad_(True), terms, tasks, init, activation)
        result.loss.sum().backward()
    return float(result.loss.mean()), float(result.accuracy.mean())


def _status_mib(key: str) -> float:
    """VmRSS or VmHWM (peak RSS) of this process from /proc/self/status, in MiB."""
    return int(re.search(rf"{key}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def reset_peak(device: torch.device) -> float:
    """Open a fresh peak-memory window (CUDA allocator or Linux peak RSS); returns the baseline in MiB."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device) / MIB
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    return _status_mib("VmRSS")


def read_peak(device: torch.device) -> float:
    """Peak memory (MiB) since reset_peak."""
    return torch.cuda.max_memory_allocated(device) / MIB if device.type == "cuda" else _status_mib("VmHWM")


def timed_call(call, sync) -> float:
    """Seconds of one call, the device synchronised before the clock stops."""
    start = time.perf_counter()
    call()
    sync()
    return time.perf_counter() - start


def time_calls(call, min_seconds: float, sync, min_reps: int = 2, warmed: bool = False) -> list[float]:
    """Warm up once (unless warmed), then time calls until ≥ min_reps reps and ≥ min_seconds in total."""
    if not warmed:
        call()
        sync()
    times: list[float] = []
    while len(times) < min_reps or sum(times) < min_seconds:
        times.append(timed_call(call, sync))
    return times


def measure(case: Case) -> Result:
    """Child side: build the inputs, prime the kernels, then time episodes inside a peak-memory window."""
    if case.threads > 0:
        torch.set_num_threads(case.threads)
    device = torch.device(case.device)
    tasks, init, data = build_inputs(case, device)
    theta = make_theta(resolve_terms(case.rule), case.members).to(device)
    activation = make_activation(NetworkConfig(dims=case.dims))  # one object: the compiled step is cached on it
    one_step = TaskBatch(tasks.train_x[:, :1], tasks.train_y[:, :1], tasks.query_x, tasks.query_y, tasks.classes)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    start = time.perf_counter()
    # lazy library/kernel loading (and compilation, at the timed shapes) stays outside the window
    episode(case, theta if case.mode == "compiled" else theta[:1], one_step, init, activation)
    sync()
    compile_seconds = time.perf_counter() - start if case.mode == "compiled" else 0.0
    scores: list[tuple[float, float]] = []
    calls = kernel_calls()
    baseline = reset_peak(device)
    times = time_calls(lambda: scores.append(episode(case, theta, tasks, init, activation)), case.min_seconds, sync)
    peak, n, median = read_peak(device), case.members, statistics.median(times)
    ran = tuple(sorted(k for k, count in kernel_calls().items() if count > calls.get(k, 0)))
    return Result(case, len(times), median, min(times), n / median, n / min(times), peak, peak - baseline,
                  *scores[-1], data, compile_seconds, ran)


def run_case(case: Case) -> Result:
    """Parent side: measure a case in a fresh Python process and parse its JSON line."""
    path = os.pathsep.join(filter(None, [str(PACKAGE_PARENT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path)
    proc = subprocess.run([sys.executable, "-m", "evoplastic.bench.inner", "_one", json.dumps(asdict(case))],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark case {case} failed:\n{proc.stderr[-3000:]}")
    fields = json.loads(proc.stdout.strip().splitlines()[-1])
    return Result.from_dict(fields)


def hardware(device: str, threads: int) -> dict:
    """CPU model and cores, torch version and threads, CUDA device name when one is present."""
    gpu = torch.device(device if device.startswith("cuda") else "cuda:0")
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
            "threads": threads or torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(gpu) if torch.cuda.is_available() else None}


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Options of ``evoplastic bench inner``."""
    p = argparse.ArgumentParser(prog="evoplastic bench inner", description=__doc__.splitlines()[0])
    ints = lambda text: tuple(int(v) for v in text.replace(",", " ").split())
    p.add_argument("--members", type=ints, default=(1, 8, 32, 128), help="no-grad batch sizes N (default 1,8,32,128)")
    p.add_argument("--rule", default="pool", help="named rule (fa, bp, bio, ehebb, oja, pool) or indices '0,2,9'")
    p.add_argument("--dims", type=ints, default=NetworkConfig().dims, help="layer widths (default 784,...,47)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--dataset", default="", help=DATASET_HELP)
    p.add_argument("--steps", type=int, default=None, help="online steps per episode (k_shot = steps // n_way)")
    p.add_argument("--min-seconds", type=float, default=3.0, help="time each row for ≥ 2 reps and ≥ this long")
    p.add_argument("--threads", type=int, default=0, help="torch threads in each child (0: torch default)")
    p.add_argument("--steps-scan", action=argparse.BooleanOptionalAction, default=True,
                   help="also measure memory at 1/5 of the steps (no-grad N=8, autograd N=1)")
    p.add_argument("--compiled", action=argparse.BooleanOptionalAction, default=False,
                   help="also time the compiled no-grad path (run_episode(compiled=True)) at each N")
    p.add_argument("--kernel", default=None,
                   help="compiled rows' step, comma-separated: cpp (C++ single pass in place, CPU), cpp-2buf (the "
                        "same with two buffers), inductor, triton (CUDA) (default cpp on CPU, inductor on CUDA: "
                        "what es.compile=true runs)")
    p.add_argument("--json", type=Path, default=None, help="write all figures to this JSON file")
    args = p.parse_args(argv)
    args.kernel = tuple((args.kernel or ("inductor" if args.device.startswith("cuda") else "cpp")).split(","))
    if set(args.kernel) - {"cpp", "cpp-2buf", "inductor", "triton"}:
        p.error(f"unknown --kernel {','.join(args.kernel)}; choose from cpp, cpp-2buf, inductor, triton")
    try:
        resolve_terms(args.rule)
    except ValueError as err:
        p.error(str(err))
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda given but torch sees no CUDA device")
    return args


def plan(args: argparse.Namespace) -> list[Case]:
    """Cases to run: no-grad at each N, autograd at N=1, plus the short-unroll scan rows."""
    k = max(1, args.steps // N_WAY) if args.steps else TaskConfig().k_shot
    case = lambda mode, n, k_shot, kernel="inductor": Case(mode, n, k_shot, args.rule, tuple(args.dims), args.device,
                                                           args.min_seconds, args.threads, dataset=args.dataset,
                                                           kernel=kernel)
    cases = [case("nograd", n, k) for n in args.members]
    cases += [case("compiled", n, k, kernel) for kernel in args.kernel for n in args.members] if args.compiled else []
    cases += [case("autograd", 1, k)]
    if args.steps_scan and k > 1:
        scan = [case("nograd", 8, max(1, k // 5)), case("nograd", 8, k), case("autograd", 1, max(1, k // 5))]
        cases += [c for c in scan if c not in cases]
    return cases


def print_header(args: argparse.Namespace, hw: dict, first: Result) -> None:
    """What was measured, on what, and how."""
    dims, feedback = tuple(args.dims), "bp" if args.rule == "bp" else "fa"
    w_mib = n_weights(dims) * 4 / MIB
    memory = "CUDA max_memory_allocated" if args.device.startswith("cuda") else "peak RSS (VmHWM)"
    print(f"evoplastic bench inner: rule {args.rule} ({len(resolve_terms(args.rule))} terms), dims "
          f"{'-'.join(map(str, dims))}, softplus β=10, {feedback} feedback, float32")
    print(f"hardware: CPU {hw['cpu']}, {hw['cores']} cores | torch {hw['torch']}, threads={hw['threads']} | "
          f"CUDA {hw['cuda'] or 'none'} | device {args.device}")
    print(f"data: {first.data} | episode: {first.case.k_shot * N_WAY} online steps + "
          f"{N_WAY * TaskConfig().n_query} query images, one task shared by the N members (T=1)")
    tiled = f" + B {w_mib:.3f} MiB per task (fa, shared by its members)" if feedback == "fa" else ""
    print(f"one member's weights: W {w_mib:.3f} MiB{tiled}")
    print(f"memory: {memory} in a fresh process per row, window opened after setup and a 1-step priming episode; "
          "+MiB = peak - memory at the window's start")
    print(f"timing: warm-up once, then ≥ 2 reps and ≥ {args.min_seconds:g} s; rates are member-episodes/s, "
          "median and best of reps (best = least disturbed by other load; the ratio uses it)\n")
    print(f"{'mode':24}{'N':>5}{'steps':>7}{'reps':>6}{'s/call':>10}{'median/s':>11}{'best/s':>9}"
          f"{'peak MiB':>10}{'+MiB':>10}{'+MiB/N':>9}{'acc':>8}")


def format_row(r: Result) -> str:
    """One table row; a non-finite query loss is flagged, not hidden."""
    c, flag = r.case, "" if math.isfinite(r.query_loss) else "  diverged"
    compiled = f"  compile {r.compile_seconds:.1f} s" if c.mode == "compiled" else ""
    return (f"{c.label:24}{c.members:>5}{c.k_shot * N_WAY:>7}{r.reps:>6}"
            f"{r.seconds_median:>10.3f}{r.rate_median:>11.2f}{r.rate_best:>9.2f}{r.peak_mib:>10.1f}"
            f"{r.increase_mib:>10.1f}{r.increase_mib / c.members:>9.2f}{r.query_accuracy:>8.3f}{flag}{compiled}"
            f"{r.fallback_note}")


def report(args: argparse.Namespace, hw: dict, results: list[Result]) -> dict:
    """Print the table, the no-grad/autograd ratio and the unroll scan; return every figure for --json."""
    k, short = results[0].case.k_shot, max(1, results[0].case.k_shot // 5)
    key = lambda r: (r.case.mode, r.case.members, r.case.k_shot, r.case.kernel if r.case.mode == "compiled" else "")
    pick = lambda mode, n, k_shot, kernel="": next((r for r in results if key(r) == (mode, n, k_shot, kernel)), None)
    best = max((pick("nograd", n, k) for n in args.members), key=lambda r: r.rate_best)
    autograd = pick("autograd", 1, k)
    ratio = best.rate_best / autograd.rate_best
    print_header(args, hw, results[0])
    for r in results:
        print(format_row(r))
    print(f"\nratio of best rates: no-grad (N={best.case.members}) {best.rate_best:.2f} member-episodes/s / autograd "
          f"{autograd.rate_best:.3f} episodes/s = {ratio:.1f}x")
    for kernel, n in ((kernel, n) for kernel in (args.kernel if args.compiled else ()) for n in args.members):
        eager, compiled = pick("nograd", n, k), pick("compiled", n, k, kernel)
        if eager and compiled:
            print(f"compiled ({kernel}) / eager no-grad at N={n}: {compiled.rate_best:.2f} / {eager.rate_best:.2f} "
                  f"member-episodes/s = {compiled.rate_best / eager.rate_best:.1f}x "
                  f"(compile + 1 step {compiled.compile_seconds:.1f} s)")
    for mode, n in (("nograd", 8), ("autograd", 1)):
        lo, hi = pick(mode, n, short), pick(mode, n, k)
        if lo and hi and short < k:
            print(f"unroll scan, {mode} N={n}: +{lo.increase_mib:.1f} MiB at {short * N_WAY} steps, "
                  f"+{hi.increase_mib:.1f} MiB at {k * N_WAY} steps")
    return {"hardware": hw, "ratio": ratio, "best_members": best.case.members, "results": [asdict(r) for r in results]}


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``bench inner [options]``, or the internal ``_one CASE_JSON`` child mode."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_one"]:
        print(json.dumps(asdict(measure(Case.from_dict(json.loads(argv[1]))))))
        return 0
    args = parse_args(argv[1:] if argv[:1] == ["inner"] else argv)
    results = []
    for case in plan(args):
        try:
            results.append(run_case(case))
        except RuntimeError as err:
            print(err, file=sys.stderr)
            return 1
        print(f"[bench] {case.mode} N={case.members} steps={case.k_shot * N_WAY}: {results[-1].rate_best:.2f} "
              f"member-episodes/s (best), +{results[-1].increase_mib:.1f} MiB", file=sys.stderr, flush=True)
    figures = report(args, hardware(args.device, args.threads), results)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
