"""``evoplastic bench``: every speed figure of the inner loops in one run, as ratios, each row printed as it completes.

Paper network rows (each timed by ``evoplastic.bench.inner``): the plain per-member loop (eager,
N = 1) and one autograd (Adam) episode first, since every later rate is shown as a multiple of
both (ratios compare on any machine); then the batched eager loop, the compiled loop, on CUDA
the compiled loop replayed from CUDA graphs, and the reduced precisions, each also as a fraction
of this machine's roofline, measured at the start (evoplastic.bench.roofline). Then the accuracy
each reduced precision costs against float32 on the same tasks, then every other registered family
(``--families``) through its Problem (evoplastic.bench.family): its batched no-grad episode at a few N
with member-episodes/s and MiB per member, and one autograd (Adam) episode's time and peak memory;
last the ``evoplastic bench mpi`` scaling. ``--only families`` runs the family rows alone.

Processes: on CPU every paper and family row runs in a fresh process, so that its peak RSS is its own; on
CUDA all rows run in one process (``--one-process``), so each (shape, precision) is compiled and
captured once and shared by the rows and the precision check (the allocator's peak is reset per
row). Inductor's on-disk cache is shared by all processes. On CUDA the default is a short set
(batched rows at the largest N, float16 only, no MPI) that fits in a few minutes; ``--full``
adds eager, compiled and graph rows at every N, tf32 and bfloat16, and MPI.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from evoplastic.bench import inner as bench
from evoplastic.bench.family import (
    CannotTime,
    FamilyCase,
    FamilyResult,
    describe_workload,
    family_config,
    family_members,
)
from evoplastic.bench.family import measure_family as measure_family_case
from evoplastic.bench.inner import Case, Result
from evoplastic.bench.roofline import Machine, measure_machine, member_episode
from evoplastic.config import FAMILIES
from evoplastic.families.paper.config import SCHEMA as PAPER_SCHEMA
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
OWN_FAMILY = PAPER_SCHEMA.name
"""The family whose inner loop the suite's own rows time; --families leaves it out unless named."""
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
    """Fill the defaults that depend on the device and --full: members, precisions, processes, MPI, families."""
    device = "cuda" if args.device.startswith("cuda") else "cpu"
    args.members = tuple(args.members or (CUDA_MEMBERS if device == "cuda" else CPU_MEMBERS))
    if args.precisions is None:
        args.precisions = CUDA_QUICK_PRECISIONS if device == "cuda" and not args.full else FULL_PRECISIONS[device]
    if isinstance(args.precisions, str):
        args.precisions = [v for v in args.precisions.replace(",", " ").split()]
    args.one_process = device == "cuda" if args.one_process is None else args.one_process
    args.mpi = (args.full or device == "cpu") if args.mpi is None else args.mpi
    args.paper_rows = args.only != "families"
    args.mpi = args.mpi and args.paper_rows
    args.families = () if args.only == "paper" else resolve_families(args.families)
    return args


def resolve_families(text: str | None) -> tuple[str, ...]:
    """--families as names: default every registered family but the suite's own; 'none' for no family rows."""
    if text is None:
        return tuple(name for name in FAMILIES.names() if name != OWN_FAMILY)
    names = tuple(dict.fromkeys(v for v in text.replace(",", " ").split() if v != "none"))
    unknown = [name for name in names if name not in FAMILIES.names()]
    if unknown:
        raise ValueError(f"--families: unknown family {', '.join(map(repr, unknown))}; registered: "
                         f"{', '.join(FAMILIES.names())} (or 'none')")
    return names


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


def family_overrides(args: argparse.Namespace, family: str) -> tuple[str, ...]:
    """The KEY=VALUE overrides of --family-set FAMILY:KEY=VALUE that name this family."""
    return tuple(text.partition(":")[2] for text in args.family_set if text.partition(":")[0] == family)


def family_cases(args: argparse.Namespace) -> list[FamilyCase]:
    """Per family of --families: its no-grad rows at each N (--family-members, else its own), then with
    --family-autograd one autograd episode at N = 1. Memory is measured where it is honest: on CUDA, or in
    a fresh CPU process (not with --one-process on CPU)."""
    memory = args.device.startswith("cuda") or not args.one_process
    cases = []
    for family in args.families:
        base = FamilyCase(family, 1, args.device, args.min_seconds, args.threads, family_overrides(args, family),
                          memory=memory)
        cases += [replace(base, members=n) for n in args.family_members or family_members(family, args.device)]
        cases += [replace(base, autograd=True)] if args.family_autograd else []
    return cases


def plan_jobs(args: argparse.Namespace) -> list[list[dict]]:
    """Jobs in the order their results print, grouped by the child process that runs them: one group
    with --one-process, else one per paper row, one for the precision check and one per family row."""
    cases = suite_cases(args) if args.paper_rows else []
    rows = [{"kind": "case", "case": asdict(c)} for c in cases]
    check = [{"kind": "precision", "spec": check_spec(args, cases[0].k_shot)}] \
        if cases and args.check_tasks and args.precisions else []
    families = [{"kind": "family", "case": asdict(c)} for c in family_cases(args)]
    if args.one_process:
        return [rows + check + families] if rows + check + families else []
    return [[row] for row in rows] + ([check] if check else []) + [[job] for job in families]


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
    """Child side: one paper row, the precision check or one family row, as a JSON-able message (a family
    case its family cannot run, e.g. an autograd episode without a gradient, comes back as 'family-skipped')."""
    if job["kind"] == "case":
        return {"kind": "case", "result": asdict(bench.measure(Case.from_dict(job["case"])))}
    if job["kind"] == "precision":
        return {"kind": "precision", "spec": job["spec"], "checks": check_precisions(job["spec"])}
    try:
        return {"kind": "family", "result": asdict(measure_family_case(FamilyCase.from_dict(job["case"])))}
    except CannotTime as err:
        return {"kind": "family-skipped", "case": job["case"], "reason": str(err)}
    except Exception as err:  # noqa: BLE001 — one family's failure is reported and the suite goes on
        return {"kind": "family-failed", "case": job["case"], "reason": f"{type(err).__name__}: {err}"}


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

    def __init__(self, args: argparse.Namespace, machine: Machine | None):
        self.args, self.machine = args, machine
        self.n_query = bench.N_WAY * TaskConfig().n_query
        self.results: list[Result] = []
        self.checks: list[dict] = []
        self.check_setup: dict = {}
        self.families: dict[str, list[FamilyResult]] = {}
        self.workloads: dict[str, str] = {}
        self.skipped: list[dict] = []
        self.printed = 0

    def header(self, first: Case | None) -> None:
        """Workload, hardware, measured ceilings, then the paper table's column names (only the hardware
        when no paper row runs)."""
        args, hw = self.args, bench.hardware(self.args.device, self.args.threads)
        if first is None:
            print(f"evoplastic bench: family rows only ({', '.join(args.families) or 'none'})")
            print(f"hardware: CPU {hw['cpu']}, {hw['cores']} cores | torch {hw['torch']}, threads={hw['threads']} | "
                  f"CUDA {hw['cuda'] or 'none'} | device {args.device}", flush=True)
            return
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
        elif message["kind"] == "family":
            self.add_family(FamilyResult.from_dict(message["result"]))
        else:
            self.skip_family(message)

    def print_checks(self, spec: dict) -> None:
        c = self.checks
        print(f"\nprecision check: compiled loop, {c[0]['pairs']} (θ, task) pairs ({spec['tasks']} tasks × "
              f"{spec['per_task']} θ), same tasks and initial W")
        for c in self.checks:
            print(f"  {c['precision']:9} accuracy {c['accuracy']:.4f}  loss {c['loss']:.4f}  Δ vs float32 "
                  f"{100 * c['mean_delta']:+.2f} points (max |Δ| of a pair {100 * c['max_abs_delta']:.1f})", flush=True)

    @property
    def paper_reference(self) -> float | None:
        """Rate of the paper's per-member loop: its own row, else (--only families) the paper family's N = 1
        no-grad row through its Problem when that was timed first."""
        if self.per_member:
            return self.per_member.rate_best
        own = [r for r in self.families.get(OWN_FAMILY, []) if r.case.members == 1 and not r.case.autograd]
        return own[0].rate_best if own else None

    def family_header(self, case: FamilyCase) -> None:
        """The family's section: what a member-episode is, then the column names (once per family)."""
        if case.family in self.families:
            return
        self.families[case.family] = []
        self.workloads[case.family] = describe_workload(family_config(case))
        memory = "CUDA allocator's peak" if case.device.startswith("cuda") else "peak RSS of a fresh process"
        print(f"\n{case.family} family through its Problem: {self.workloads[case.family]}; one task shared by "
              f"the N members")
        print(f"no-grad: one ES generation of N members; autograd: one Adam step (θ requiring grad, backward of the "
              f"meta-loss); episode MiB: the first call's {memory} above what the process held before it; "
              f"MiB/member: its slope against the family's smallest N; x paper per-member: against the paper's "
              f"per-member loop (with --only families, the {OWN_FAMILY} family's N = 1 row when it is timed)")
        print(f"{'path':24}{'N':>6}{'member-ep/s':>13}{'s/call':>11}{'x its N=1':>11}{'x paper per-member':>20}"
              f"{'episode MiB':>13}{'MiB/member':>12}{'accuracy':>10}", flush=True)

    def add_family(self, r: FamilyResult) -> None:
        """Print a family row: rate against the family's N = 1 no-grad row and the paper's per-member loop."""
        self.family_header(r.case)
        rows = self.families[r.case.family]
        rows.append(r)
        grad_free = [k for k in rows if not k.case.autograd]
        single = next((k for k in grad_free if k.case.members == 1), None)
        smallest = min(grad_free, key=lambda k: k.case.members, default=None)
        own = f"{r.rate_best / single.rate_best:>11.3g}" if single else f"{'—':>11}"
        paper = f"{r.rate_best / self.paper_reference:>20.3g}" if self.paper_reference else f"{'—':>20}"
        slope = (r.episode_mib - smallest.episode_mib) / (r.case.members - smallest.case.members) \
            if smallest and not r.case.autograd and r.case.members > smallest.case.members else math.nan
        mib = lambda v, width: f"{v:>{width}.2f}" if math.isfinite(v) else f"{'—':>{width}}"
        grad = "" if r.grad_finite is None else ("  (gradient finite)" if r.grad_finite else "  (gradient NOT finite)")
        print(f"{r.case.family + ' ' + r.case.label:24}{r.case.members:>6}{r.rate_best:>13.3g}{r.seconds_best:>11.3g}"
              f"{own}{paper}{mib(r.episode_mib, 13)}{mib(slope, 12)}{r.accuracy:>10.3f}{grad}", flush=True)

    def skip_family(self, message: dict) -> None:
        """A family case that could not run: its reason, in the family's section."""
        case = FamilyCase.from_dict(message["case"])
        self.skipped.append(message)
        try:
            self.family_header(case)
        except Exception as err:  # noqa: BLE001 — the config itself may be what failed
            print(f"\n{case.family} family: {type(err).__name__}: {err}")
        word = "skipped" if message["kind"] == "family-skipped" else "FAILED"
        print(f"{case.family + ' ' + case.label:24}{case.members:>6}  {word}: {message['reason']}", flush=True)

    def print_mpi(self, mpi: dict) -> None:
        base = {row["device"]: row for row in mpi["best"] if row["ranks"] == 1}
        print("\nMPI (evoplastic bench mpi, population 16, one thread per rank):")
        for row in mpi["best"]:
            speedup = row["generations_per_s"] / base[row["device"]]["generations_per_s"]
            print(f"  R={row['ranks']} {row['device']}: {row['generations_per_s']:.3f} gen/s, "
                  f"{row['member_episodes_per_s']:.2f} member-episodes/s, {speedup:.2f}x R=1")

    def figures(self, mpi: dict | None, seconds: float) -> dict:
        """Everything measured, for --json."""
        families = {name: {"workload": self.workloads[name], "results": [asdict(r) for r in rows]}
                    for name, rows in self.families.items()}
        options = {k: getattr(self.args, k) for k in ("device", "full", "one_process", "members", "precisions",
                                                       "only", "families", "family_members", "family_set",
                                                       "family_autograd", "min_seconds", "threads")}
        return {"machine": asdict(self.machine) if self.machine else None, "options": options,
                "results": [asdict(r) for r in self.results], "precision_check": self.checks,
                "precision_check_setup": self.check_setup, "families": families,
                "families_skipped": self.skipped, "mpi": mpi, "wall_seconds": seconds}


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
    p.add_argument("--only", choices=("paper", "families"), default=None,
                   help="paper: the paper network's rows, precision check and MPI only; families: the family rows "
                        "only (default both)")
    p.add_argument("--families", default=None, metavar="NAMES",
                   help=f"families timed through their Problem, e.g. kcap,spiking (default: every registered family "
                        f"but {OWN_FAMILY}, whose rows come first; name {OWN_FAMILY} to time it the same way; none: "
                        f"no family rows)")
    p.add_argument("--family-members", type=ints, default=None,
                   help="members N of every family's no-grad rows (default: the N its family names for the "
                        "device, else 1,8 on CPU and 1,256 on CUDA)")
    p.add_argument("--family-set", action="append", default=[], metavar="FAMILY:KEY=VALUE",
                   help="change a family's default config, e.g. spiking:task.dataset=digits (repeatable)")
    p.add_argument("--family-autograd", action=argparse.BooleanOptionalAction, default=True,
                   help="also time one autograd (Adam) episode at N = 1 per family that has a gradient (default on)")
    p.add_argument("--mpi", action=argparse.BooleanOptionalAction, default=None,
                   help="also run bench mpi (default on CPU, and on CUDA with --full)")
    p.add_argument("--json", type=Path, default=None, help="write every figure to this JSON file")
    p.add_argument("--plot", type=Path, default=None, help="draw the rates and ceilings to this PNG")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda given but torch sees no CUDA device")
    try:
        args = resolve(args)
    except ValueError as err:
        p.error(str(err))
    for text in args.family_set:
        if ":" not in text or "=" not in text.partition(":")[2]:
            p.error(f"--family-set {text!r}: write FAMILY:KEY=VALUE, e.g. spiking:task.dataset=digits")
    for name in args.precisions:
        if name not in REDUCED:
            p.error(f"unknown precision {name!r}; choose from {', '.join(REDUCED)}")
    for key, values in (("--members", args.members), ("--family-members", args.family_members or (1,))):
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
    report.header(Case.from_dict(groups[0][0]["case"]) if args.paper_rows else None)
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
    report = Report(args, measure_machine(torch.device(args.device)) if args.paper_rows else None)
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
    if args.plot and report.results:
        print(f"plot: {plot_rates(report.results, report.machine, args.plot)}")
    if args.json:
        args.json.write_text(json.dumps(report.figures(mpi, seconds), indent=2))
    return 1 if any(m["kind"] == "family-failed" for m in report.skipped) else 0


if __name__ == "__main__":
    sys.exit(main())
