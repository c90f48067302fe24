"""``evoplastic bench``: every speed figure of the inner loops in one run, as ratios, each row printed as it completes.

Paper network rows (each timed by ``evoplastic.bench.inner``): the plain per-member loop (eager,
N = 1) and one autograd (Adam) episode first, since every later rate is shown as a multiple of
both (ratios compare on any machine); then the batched eager loop, the compiled loop, on CUDA
the compiled loop replayed from CUDA graphs, and the reduced precisions, each also as a fraction
of this machine's roofline, measured at the start (evoplastic.bench.roofline). Then the accuracy
each reduced precision costs against float32 on the same tasks, the k-cap family's batched
no-grad episode at a few N (evoplastic.bench.family), and the ``evoplastic bench mpi`` scaling.

Processes: on CPU every paper row runs in a fresh process, so that its peak RSS is its own; on
CUDA all rows run in one process (``--one-process``), so each (shape, precision) is compiled and
captured once and shared by the rows and the precision check (the allocator's peak is reset per
row). Inductor's on-disk cache is shared by all processes. On CUDA the default is a short set
(batched rows at the largest N, float16 only, no MPI) that fits in a few minutes; ``--full``
adds eager, compiled and graph rows at every N, tf32 and bfloat16, and MPI.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from evoplastic.bench import inner as bench
from evoplastic.bench.family import FamilyCase, FamilyResult, describe_kcap_workload, family_config, kcap_workload
from evoplastic.bench.family import measure_family as measure_family_case
from evoplastic.bench.inner import Case, Result
from evoplastic.bench.roofline import Machine, measure_machine, member_episode
from evoplastic.families.paper.config import NetworkConfig, TaskConfig
from evoplastic.families.paper.fused import COMPILED_CHUNK, CPP_CHUNK, CPU_KERNEL, FusedOptions
from evoplastic.families.paper.inner import run_episode
from evoplastic.families.paper.network import make_activation
from evoplastic.families.paper.rules import resolve_terms
from evoplastic.precision import PRECISIONS, matmul_precision, weight_dtype

REDUCED = tuple(p for p in PRECISIONS if p != "float32")
"""Precisions the suite can time and check against float32."""
CPU_MEMBERS, CUDA_MEMBERS = (8, 32), (256, 2048)
"""Batch sizes N of the eager and compiled rows; the reduced precisions run at the last."""
FULL_PRECISIONS = {"cpu": "bfloat16,float16", "cuda": "tf32,bfloat16,float16"}
"""Reduced precisions timed and checked by default on CPU, and on CUDA with --full."""
CUDA_QUICK_PRECISIONS = "float16"
"""The one reduced precision of the default CUDA set (16-bit weights, 10-bit mantissa)."""
KCAP_CPU_MEMBERS, KCAP_CUDA_MEMBERS = (1, 16, 64), (1, 512, 8192)
"""Members N of the k-cap rows (one task, the family's default config)."""
CHECK_PAIRS = 16384
"""Most (θ, task) pairs of the CUDA precision check (it runs the timed rows' chunk of N members per task)."""
RESULT = "@evoplastic-bench "
"""Prefix of a child's result lines on stdout; anything else it prints there is ignored."""


@dataclass(frozen=True)
class AccuracyCheck:
    """Query accuracy of one precision against float32 on the same tasks, θ and initial networks."""

    precision: str
    accuracy: float
    loss: float
    mean_delta: float
    """Mean over pairs of (accuracy - float32 accuracy), in accuracy units."""
    max_abs_delta: float
    pairs: int


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the defaults that depend on the device and --full: members, precisions, processes, MPI, k-cap N."""
    device = "cuda" if args.device.startswith("cuda") else "cpu"
    args.members = tuple(args.members or (CUDA_MEMBERS if device == "cuda" else CPU_MEMBERS))
    if args.precisions is None:
        args.precisions = CUDA_QUICK_PRECISIONS if device == "cuda" and not args.full else FULL_PRECISIONS[device]
    if isinstance(args.precisions, str):
        args.precisions = [v for v in args.precisions.replace(",", " ").split()]
    args.one_process = device == "cuda" if args.one_process is None else args.one_process
    args.mpi = (args.full or device == "cpu") if args.mpi is None else args.mpi
    args.kcap_members = tuple(args.kcap_members or (KCAP_CUDA_MEMBERS if device == "cuda" else KCAP_CPU_MEMBERS))
    return args


def suite_cases(args: argparse.Namespace) -> list[Case]:
    """Per-member loop and autograd first (every later ratio needs both), then eager and compiled rows
    (CUDA: replayed from graphs) at each N and the reduced precisions at the last N. On CUDA without
    --full: the batched rows at the last N only, and compiled rows only with graphs. The single-pass
    kernel's rows follow (CPU: the C++ step at each N, then its 16-bit storage; CUDA: Triton)."""
    cuda = args.device.startswith("cuda")
    quick = cuda and not args.full
    k = max(1, args.steps // bench.N_WAY) if args.steps else TaskConfig().k_shot
    case = lambda mode, n, **kw: Case(mode, n, k, args.rule, tuple(args.dims), args.device, args.min_seconds,
                                      args.threads, dataset=args.dataset, **kw)
    sizes = args.members[-1:] if quick else args.members
    cases = [case("nograd", 1), case("autograd", 1)] + [case("nograd", n) for n in sizes]
    cases += [] if quick else [case("compiled", n) for n in sizes]
    cases += [case("compiled", n, cuda_graph=True) for n in sizes] if cuda else []
    if not cuda:  # the C++ single pass (es.compile=true on CPU) at each N, then with each 16-bit storage
        cases += [case("compiled", n, kernel=CPU_KERNEL) for n in sizes]
        return cases + [case("compiled", args.members[-1], precision=p, kernel=CPU_KERNEL) for p in args.precisions]
    cases += [case("compiled", args.members[-1], cuda_graph=True, precision=p) for p in args.precisions]
    # the single-pass Triton kernel: float32 W and each 16-bit storage of the run
    return cases + [case("compiled", args.members[-1], cuda_graph=True, precision=p, kernel="triton")
                    for p in ("float32", *args.precisions) if p != "tf32"]


def check_spec(args: argparse.Namespace, k_shot: int) -> dict:
    """The precision check: per task, COMPILED_CHUNK θ on CPU (the compiled chunk), on CUDA the last N
    (the timed rows' chunk, so their compiled steps and graphs serve it), at most CHECK_PAIRS pairs."""
    per_task = args.members[-1] if args.device.startswith("cuda") else COMPILED_CHUNK
    tasks = max(1, min(args.check_tasks, CHECK_PAIRS // per_task))
    return {"device": args.device, "dims": list(args.dims), "rule": args.rule, "k_shot": k_shot, "tasks": tasks,
            "per_task": per_task, "precisions": args.precisions, "threads": args.threads, "dataset": args.dataset}


def kcap_cases(args: argparse.Namespace) -> list[FamilyCase]:
    """The k-cap family's default config at each of --kcap-members (none with --no-kcap)."""
    return [FamilyCase("kcap", n, args.device, args.min_seconds, args.threads) for n in args.kcap_members] \
        if args.kcap else []


def plan_jobs(args: argparse.Namespace) -> list[list[dict]]:
    """Jobs in the order their results print, grouped by the child process that runs them: one group
    with --one-process, else one per paper row, one for the precision check and one for the k-cap rows."""
    cases = suite_cases(args)
    rows = [{"kind": "case", "case": asdict(c)} for c in cases]
    check = [{"kind": "precision", "spec": check_spec(args, cases[0].k_shot)}] \
        if args.check_tasks and args.precisions else []
    kcap = [{"kind": "family", "case": asdict(c)} for c in kcap_cases(args)]
    if args.one_process:
        return [rows + check + kcap]
    return [[row] for row in rows] + [group for group in (check, kcap) if group]


def roofline_percent(result: Result, machine: Machine, n_query: int) -> float:
    """Rate as a percentage of this row's roofline ceiling on the measured machine."""
    c = result.case
    formulation = ("ideal" if c.kernel in ("triton", "cpp") else "compiled") if c.mode == "compiled" else "eager"
    chunk = CPP_CHUNK if c.kernel == "cpp" else COMPILED_CHUNK
    shared = min(c.members, chunk) if c.mode == "compiled" and c.device == "cpu" else c.members
    wbytes = torch.finfo(weight_dtype(c.precision) or torch.float32).bits // 8
    work = member_episode(c.dims, c.k_shot * bench.N_WAY, n_query, formulation, wbytes, shared)
    return 100 * result.rate_best / machine.ceiling(work)


def check_precisions(spec: dict) -> list[dict]:
    """Child side: compiled episodes of spec['per_task'] θ on each of spec['tasks'] tasks, per precision."""
    case = Case("compiled", spec["per_task"] * spec["tasks"], spec["k_shot"], spec["rule"], tuple(spec["dims"]),
                spec["device"], 0.0, spec["threads"], dataset=spec["dataset"])
    if case.threads > 0:
        torch.set_num_threads(case.threads)
    device, terms = torch.device(case.device), resolve_terms(case.rule)
    tasks, init, _ = bench.build_inputs(case, device, n_tasks=spec["tasks"])
    theta = bench.make_theta(terms, case.members).to(device)
    activation = make_activation(NetworkConfig(dims=case.dims))
    scores = {}
    for precision in ["float32", *spec["precisions"]]:
        options = FusedOptions.for_precision(precision, cuda_graph=device.type == "cuda",
                                             kernel="inductor" if device.type == "cuda" else CPU_KERNEL)
        with torch.no_grad(), matmul_precision(precision, device):
            result = run_episode(theta, terms, tasks, init, activation, compiled=options)
        scores[precision] = (result.accuracy.double().cpu(), result.loss.double().cpu())
    base = scores["float32"][0]
    return [asdict(AccuracyCheck(p, float(acc.mean()), float(loss.mean()), float((acc - base).mean()),
                                 float((acc - base).abs().max()), len(acc))) for p, (acc, loss) in scores.items()]


def run_job(job: dict) -> dict:
    """Child side: one paper row, the precision check or one family row, as a JSON-able message."""
    if job["kind"] == "case":
        return {"kind": "case", "result": asdict(bench.measure(Case.from_dict(job["case"])))}
    if job["kind"] == "precision":
        return {"kind": "precision", "spec": job["spec"], "checks": check_precisions(job["spec"])}
    return {"kind": "family", "result": asdict(measure_family_case(FamilyCase.from_dict(job["case"])))}


def child_env() -> dict[str, str]:
    """This environment with this package importable (also when it is not installed)."""
    path = os.pathsep.join(filter(None, [str(bench.PACKAGE_PARENT), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path)


def stream_jobs(jobs: list[dict]) -> Iterator[dict]:
    """Run jobs in one child process (``python -m evoplastic.bench.suite _jobs JSON``) and yield each
    result the moment the child prints it; RuntimeError with the child's stderr if it fails."""
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen([sys.executable, "-m", "evoplastic.bench.suite", "_jobs", json.dumps(jobs)],
                                stdout=subprocess.PIPE, stderr=errors, text=True, env=child_env())
        try:
            for line in proc.stdout:
                if line.startswith(RESULT):
                    yield json.loads(line[len(RESULT):])
            if proc.wait():
                errors.seek(0)
                raise RuntimeError(f"bench child ({', '.join(job['kind'] for job in jobs)}) failed:\n"
                                   f"{errors.read()[-3000:]}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def run_mpi(args: argparse.Namespace) -> dict | None:
    """``evoplastic bench mpi`` with one repeat; None (with the reason printed) when it cannot run."""
    from evoplastic.bench.mpi import find_mpiexec

    if find_mpiexec() is None:
        print("[bench] MPI skipped: no mpiexec (pip install mpi4py mpich)", file=sys.stderr)
        return None
    with tempfile.TemporaryDirectory(prefix="evoplastic-bench-") as tmp:
        out = Path(tmp) / "mpi.json"
        command = [sys.executable, "-m", "evoplastic.bench.mpi", "--repeats", "1", "--json", str(out),
                   *(["--dataset", args.dataset] if args.dataset else [])]
        done = subprocess.run(command, capture_output=True, text=True, check=False, env=child_env())
        if done.returncode:
            print(f"[bench] MPI run failed:\n{done.stderr[-2000:]}", file=sys.stderr)
            return None
        return json.loads(out.read_text())


class Report:
    """Prints the suite as results arrive and keeps every figure for --json and --plot."""

    def __init__(self, args: argparse.Namespace, machine: Machine):
        self.args, self.machine = args, machine
        self.n_query = bench.N_WAY * TaskConfig().n_query
        self.results: list[Result] = []
        self.checks: list[dict] = []
        self.check_setup: dict = {}
        self.kcap: list[FamilyResult] = []
        self.printed = 0

    def header(self, first: Case) -> None:
        """Workload, hardware, measured ceilings, then the paper table's column names."""
        args, hw = self.args, bench.hardware(self.args.device, self.args.threads)
        steps = first.k_shot * bench.N_WAY
        eager = member_episode(first.dims, steps, self.n_query, "eager")
        print(f"evoplastic bench: rule {args.rule} ({len(resolve_terms(args.rule))} terms), dims "
              f"{'-'.join(map(str, args.dims))}, {steps} online steps + {self.n_query} query images per "
              f"member-episode, one task shared by the N members")
        data = bench.data_source(first.dims, args.dataset)
        print(f"hardware: CPU {hw['cpu']}, {hw['cores']} cores | torch {hw['torch']}, threads={hw['threads']} | "
              f"CUDA {hw['cuda'] or 'none'} | device {args.device} | data: {data}")
        print(f"ceilings measured now: {self.machine.bandwidth / 1e9:.1f} GB/s streaming (in-place scale over a "
              f"buffer larger than the caches), {self.machine.flop_rate / 1e9:.1f} GFLOP/s float32 matmul; "
              f"{eager.flops / 1e6:.4g} MFLOP per member-episode")
        print("roofline % = best rate / min(FLOP ceiling, bytes ceiling) for the row's passes over W "
              "(docs/performance.md; +cpp and +triton rows: the single-pass ceiling, one read and one write of W "
              "per step); data that stays in cache can beat the bytes ceiling")
        where = "all rows in one process" if args.one_process else "each row in a fresh process"
        print(f"rows print as they complete ({where}; {'full set' if args.full else 'default set'})\n")
        print(f"{'path':24}{'N':>6}{'member-ep/s':>13}{'x per-member':>14}{'x autograd':>12}{'roofline %':>12}"
              f"{'+MiB/member':>13}{'accuracy':>10}", flush=True)

    @property
    def per_member(self) -> Result | None:
        return next((r for r in self.results if r.case.mode == "nograd" and r.case.members == 1), None)

    @property
    def autograd(self) -> Result | None:
        return next((r for r in self.results if r.case.mode == "autograd"), None)

    def row(self, r: Result) -> str:
        name = "per-member loop" if r is self.per_member else r.case.label
        roofline = roofline_percent(r, self.machine, self.n_query)
        return (f"{name:24}{r.case.members:>6}{r.rate_best:>13.2f}{r.rate_best / self.per_member.rate_best:>14.2f}"
                f"{r.rate_best / self.autograd.rate_best:>12.1f}{roofline:>12.1f}"
                f"{r.increase_mib / r.case.members:>13.2f}{r.query_accuracy:>10.3f}"
                + (f"  (compile {r.compile_seconds:.0f} s)" if r.case.mode == "compiled" else "") + r.fallback_note)

    def add(self, message: dict) -> None:
        """Print what a child reported: paper rows once the per-member and autograd rates are known."""
        if message["kind"] == "case":
            self.results.append(Result.from_dict(message["result"]))
            if self.per_member and self.autograd:
                for r in self.results[self.printed:]:
                    print(self.row(r), flush=True)
                self.printed = len(self.results)
        elif message["kind"] == "precision":
            self.checks, self.check_setup = message["checks"], message["spec"]
            self.print_checks(message["spec"])
        else:
            self.add_family(FamilyResult.from_dict(message["result"]))

    def print_checks(self, spec: dict) -> None:
        c = self.checks
        print(f"\nprecision check: compiled loop, {c[0]['pairs']} (θ, task) pairs ({spec['tasks']} tasks × "
              f"{spec['per_task']} θ), same tasks and initial W")
        for c in self.checks:
            print(f"  {c['precision']:9} accuracy {c['accuracy']:.4f}  loss {c['loss']:.4f}  Δ vs float32 "
                  f"{100 * c['mean_delta']:+.2f} points (max |Δ| of a pair {100 * c['max_abs_delta']:.1f})", flush=True)

    def add_family(self, r: FamilyResult) -> None:
        if not self.kcap:
            work = kcap_workload(family_config(r.case))
            print(f"\nk-cap family: batched no-grad episode through its Problem (the ES path), "
                  f"{describe_kcap_workload(work)}")
            print(f"{'path':24}{'N':>6}{'member-ep/s':>13}{'median/s':>10}{'x k-cap N=1':>13}"
                  f"{'x paper per-member':>20}{'probe acc.':>12}")
        self.kcap.append(r)
        single = next((k for k in self.kcap if k.case.members == 1), None)
        own = f"{r.rate_best / single.rate_best:>13.2f}" if single else f"{'—':>13}"
        paper = f"{r.rate_best / self.per_member.rate_best:>20.2f}" if self.per_member else f"{'—':>20}"
        print(f"{'k-cap no-grad':24}{r.case.members:>6}{r.rate_best:>13.2f}{r.rate_median:>10.2f}{own}{paper}"
              f"{r.accuracy:>12.3f}", flush=True)

    def print_mpi(self, mpi: dict) -> None:
        base = {row["device"]: row for row in mpi["best"] if row["ranks"] == 1}
        print("\nMPI (evoplastic bench mpi, population 16, one thread per rank):")
        for row in mpi["best"]:
            speedup = row["generations_per_s"] / base[row["device"]]["generations_per_s"]
            print(f"  R={row['ranks']} {row['device']}: {row['generations_per_s']:.3f} gen/s, "
                  f"{row['member_episodes_per_s']:.2f} member-episodes/s, {speedup:.2f}x R=1")

    def figures(self, mpi: dict | None, seconds: float) -> dict:
        """Everything measured, for --json."""
        kcap = {"workload": kcap_workload(family_config(self.kcap[0].case)),
                "results": [asdict(r) for r in self.kcap]} if self.kcap else None
        options = {k: getattr(self.args, k) for k in ("device", "full", "one_process", "members", "precisions",
                                                       "kcap_members", "min_seconds", "threads")}
        return {"machine": asdict(self.machine), "options": options, "results": [asdict(r) for r in self.results],
                "precision_check": self.checks, "precision_check_setup": self.check_setup, "kcap": kcap, "mpi": mpi,
                "wall_seconds": seconds}


def plot_rates(results: list[Result], machine: Machine, out: Path) -> Path:
    """Bar chart of the rates (log axis) with the FLOP and bytes ceilings of the compiled float32 loop."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first, per_member = results[0], results[0].rate_best
    work = member_episode(first.case.dims, first.case.k_shot * bench.N_WAY, bench.N_WAY * TaskConfig().n_query,
                          "compiled", 4, COMPILED_CHUNK)
    labels = ["per-member loop" if i == 0 else f"{r.case.label}, N={r.case.members}" for i, r in enumerate(results)]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(results) + 1.5))
    ax.barh(range(len(results)), [r.rate_best for r in results], color=[f"C{i % 10}" for i in range(len(results))])
    for i, r in enumerate(results):
        ax.text(r.rate_best, i, f" {r.rate_best:.3g}/s ({r.rate_best / per_member:.2g}x)", va="center", fontsize=8)
    ax.axvline(machine.flop_rate / work.flops, color="k", ls="--", lw=1, label="FLOP ceiling")
    ax.axvline(machine.bandwidth / work.bytes, color="gray", ls=":", lw=1.5, label="bytes ceiling (compiled, float32)")
    ax.set_yticks(range(len(results)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("member-episodes/s (best of reps)")
    hw = bench.hardware(first.case.device, first.case.threads)
    where = f"{hw['cpu']}, {hw['threads']} thread(s)" if first.case.device == "cpu" else hw["cuda"]
    ax.set_title(f"{'-'.join(map(str, first.case.dims))} inner loop, rule {first.case.rule}, on {where}", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Options of ``evoplastic bench``, with the device's defaults filled in (resolve)."""
    p = argparse.ArgumentParser(prog="evoplastic bench", description=__doc__.splitlines()[0])
    ints = lambda text: tuple(int(v) for v in text.replace(",", " ").split())
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda[:N]")
    p.add_argument("--full", action="store_true",
                   help="on CUDA every row: eager, compiled and graph rows at each N, tf32/bfloat16/float16, and "
                        "MPI (the CUDA default: batched rows at the last N, float16, no MPI; on CPU the default is "
                        "already the full set)")
    p.add_argument("--dataset", default="", help=bench.DATASET_HELP)
    p.add_argument("--members", type=ints, default=None,
                   help="batch sizes of the eager/compiled rows (default "
                        f"{','.join(map(str, CPU_MEMBERS))} on CPU, {','.join(map(str, CUDA_MEMBERS))} on CUDA)")
    p.add_argument("--rule", default="pool", help="named rule or term indices (default pool)")
    p.add_argument("--dims", type=ints, default=NetworkConfig().dims, help="layer widths (default the paper's)")
    p.add_argument("--steps", type=int, default=None, help="online steps per episode (default 250)")
    p.add_argument("--precisions", default=None,
                   help=f"reduced precisions to time and check (default {FULL_PRECISIONS['cpu']} on CPU, "
                        f"{CUDA_QUICK_PRECISIONS} on CUDA, {FULL_PRECISIONS['cuda']} with --full)")
    p.add_argument("--check-tasks", type=int, default=8, help="tasks of the precision check (0: skip it)")
    p.add_argument("--min-seconds", type=float, default=3.0, help="time each row for ≥ 2 reps and ≥ this long")
    p.add_argument("--threads", type=int, default=1, help="torch threads per row (default 1; 0: torch default)")
    p.add_argument("--one-process", action=argparse.BooleanOptionalAction, default=None,
                   help="run all rows in one child process: each shape compiles once (default on CUDA; on CPU "
                        "each row gets a fresh process, since its peak RSS cannot be reset downwards)")
    p.add_argument("--kcap", action=argparse.BooleanOptionalAction, default=True,
                   help="also time the k-cap family's batched no-grad episode (default on)")
    p.add_argument("--kcap-members", type=ints, default=None,
                   help=f"members N of the k-cap rows (default {','.join(map(str, KCAP_CPU_MEMBERS))} on CPU, "
                        f"{','.join(map(str, KCAP_CUDA_MEMBERS))} on CUDA)")
    p.add_argument("--mpi", action=argparse.BooleanOptionalAction, default=None,
                   help="also run bench mpi (default on CPU, and on CUDA with --full)")
    p.add_argument("--json", type=Path, default=None, help="write every figure to this JSON file")
    p.add_argument("--plot", type=Path, default=None, help="draw the rates and ceilings to this PNG")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda given but torch sees no CUDA device")
    args = resolve(args)
    for name in args.precisions:
        if name not in REDUCED:
            p.error(f"unknown precision {name!r}; choose from {', '.join(REDUCED)}")
    for key, values in (("--members", args.members), ("--kcap-members", args.kcap_members)):
        if not values or min(values) < 1:
            p.error(f"{key} takes member counts ≥ 1, got {','.join(map(str, values))}")
    try:
        resolve_terms(args.rule)
    except ValueError as err:
        p.error(str(err))
    return args


def run_suite(args: argparse.Namespace, report: Report) -> None:
    """Every planned job, each child's results handed to report as they arrive."""
    groups = plan_jobs(args)
    report.header(Case.from_dict(groups[0][0]["case"]))
    for jobs in groups:
        for message in stream_jobs(jobs):
            report.add(message)


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``evoplastic bench [options]`` (or ``bench all``), and the ``_jobs`` child mode."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_jobs"]:
        for job in json.loads(argv[1]):
            print(RESULT + json.dumps(run_job(job)), flush=True)
        return 0
    start = time.perf_counter()
    args = parse_args(argv[1:] if argv[:1] == ["all"] else argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    report = Report(args, measure_machine(torch.device(args.device)))
    try:
        run_suite(args, report)
    except RuntimeError as err:
        print(err, file=sys.stderr)
        return 1
    mpi = run_mpi(args) if args.mpi else None
    if mpi:
        report.print_mpi(mpi)
    seconds = time.perf_counter() - start
    print(f"\nbench: {seconds:.0f} s in all")
    if args.plot:
        print(f"plot: {plot_rates(report.results, report.machine, args.plot)}")
    if args.json:
        args.json.write_text(json.dumps(report.figures(mpi, seconds), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
