"""``evoplastic bench``: every speed figure of the inner loop in one run, as ratios.

Rows (each timed in a fresh process by ``evoplastic.bench.inner``): the plain per-member loop
(eager, N = 1), the batched eager loop, the compiled loop, on CUDA the compiled loop replayed
from CUDA graphs, the reduced precisions, and one autograd (Adam) episode. Each rate is shown
as a multiple of the per-member loop and of the autograd episode, which compare on any machine,
and as a fraction of the roofline of this machine, measured at the start (evoplastic.bench.roofline).
Then the accuracy each reduced precision costs against float32 on the same tasks, and, unless
``--no-mpi``, the ``evoplastic bench mpi`` scaling.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from evoplastic.bench import inner as bench
from evoplastic.bench.inner import Case, Result
from evoplastic.bench.roofline import Machine, measure_machine, member_episode
from evoplastic.config import NetworkConfig, TaskConfig
from evoplastic.families.paper.fused import COMPILED_CHUNK, FusedOptions
from evoplastic.families.paper.inner import run_episode
from evoplastic.families.paper.network import make_activation
from evoplastic.families.paper.rules import resolve_terms
from evoplastic.precision import PRECISIONS, matmul_precision, weight_dtype

REDUCED = tuple(p for p in PRECISIONS if p != "float32")
"""Precisions the suite times and checks against float32."""
CPU_MEMBERS, CUDA_MEMBERS = (8, 32), (256, 2048)
"""Batch sizes N of the eager and compiled rows; the reduced precisions run at the largest."""


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


def suite_cases(args: argparse.Namespace) -> list[Case]:
    """Per-member, eager, compiled (+graph on CUDA), reduced precisions, autograd."""
    cuda = args.device.startswith("cuda")
    members = args.members or (CUDA_MEMBERS if cuda else CPU_MEMBERS)
    k = max(1, args.steps // bench.N_WAY) if args.steps else TaskConfig().k_shot
    case = lambda mode, n, **kw: Case(mode, n, k, args.rule, tuple(args.dims), args.device, args.min_seconds,
                                      args.threads, dataset=args.dataset, **kw)
    cases = [case("nograd", 1)] + [case("nograd", n) for n in members] + [case("compiled", n) for n in members]
    if cuda:
        cases += [case("compiled", n, cuda_graph=True) for n in members]
    cases += [case("compiled", members[-1], cuda_graph=cuda, precision=p) for p in args.precisions]
    return cases + [case("autograd", 1)]


def roofline_percent(result: Result, machine: Machine, n_query: int) -> float:
    """Rate as a percentage of this row's roofline ceiling on the measured machine."""
    c = result.case
    formulation = "compiled" if c.mode == "compiled" else "eager"
    shared = min(c.members, COMPILED_CHUNK) if c.mode == "compiled" and c.device == "cpu" else c.members
    wbytes = torch.finfo(weight_dtype(c.precision) or torch.float32).bits // 8
    work = member_episode(c.dims, c.k_shot * bench.N_WAY, n_query, formulation, wbytes, shared)
    return 100 * result.rate_best / machine.ceiling(work)


def check_precisions(spec: dict) -> list[dict]:
    """Child side: compiled episodes of 8 members on each of spec['tasks'] tasks, per precision."""
    case = Case("compiled", COMPILED_CHUNK * spec["tasks"], spec["k_shot"], spec["rule"], tuple(spec["dims"]),
                spec["device"], 0.0, spec["threads"], dataset=spec["dataset"])
    if case.threads > 0:
        torch.set_num_threads(case.threads)
    device, terms = torch.device(case.device), resolve_terms(case.rule)
    tasks, init, _ = bench.build_inputs(case, device, n_tasks=spec["tasks"])
    theta = bench.make_theta(terms, case.members).to(device)
    activation = make_activation(NetworkConfig(dims=case.dims))
    scores = {}
    for precision in ["float32", *spec["precisions"]]:
        options = FusedOptions.for_precision(precision, cuda_graph=device.type == "cuda")
        with torch.no_grad(), matmul_precision(precision, device):
            result = run_episode(theta, terms, tasks, init, activation, compiled=options)
        scores[precision] = (result.accuracy.double().cpu(), result.loss.double().cpu())
    base = scores["float32"][0]
    return [asdict(AccuracyCheck(p, float(acc.mean()), float(loss.mean()), float((acc - base).mean()),
                                 float((acc - base).abs().max()), len(acc))) for p, (acc, loss) in scores.items()]


def child_env() -> dict[str, str]:
    """This environment with this package importable (also when it is not installed)."""
    path = os.pathsep.join(filter(None, [str(bench.PACKAGE_PARENT), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path)


def run_child(mode: str, payload: dict) -> dict | list:
    """Run ``python -m evoplastic.bench.suite MODE JSON`` and parse its last line."""
    proc = subprocess.run([sys.executable, "-m", "evoplastic.bench.suite", mode, json.dumps(payload)],
                          capture_output=True, text=True, env=child_env(), check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"bench {mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


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


def print_report(args: argparse.Namespace, machine: Machine, results: list[Result], checks: list[dict],
                 mpi: dict | None) -> None:
    """Header (hardware, workload, ceilings), the ratio table, the precision check and MPI scaling."""
    hw, first = bench.hardware(args.device, args.threads), results[0]
    n_query = bench.N_WAY * TaskConfig().n_query
    steps = first.case.k_shot * bench.N_WAY
    eager = member_episode(first.case.dims, steps, n_query, "eager")
    print(f"evoplastic bench: rule {args.rule} ({len(resolve_terms(args.rule))} terms), dims "
          f"{'-'.join(map(str, args.dims))}, {steps} online steps + {n_query} query images per member-episode, "
          f"one task shared by the N members")
    print(f"hardware: CPU {hw['cpu']}, {hw['cores']} cores | torch {hw['torch']}, threads={hw['threads']} | "
          f"CUDA {hw['cuda'] or 'none'} | device {args.device} | data: {first.data}")
    print(f"ceilings measured now: {machine.bandwidth / 1e9:.1f} GB/s streaming (in-place scale over a buffer "
          f"larger than the caches), {machine.flop_rate / 1e9:.1f} GFLOP/s float32 matmul; "
          f"{eager.flops / 1e6:.4g} MFLOP per member-episode")
    print("roofline % = best rate / min(FLOP ceiling, bytes ceiling) for the row's passes over W "
          "(docs/performance.md); data that stays in cache can beat the bytes ceiling\n")
    per_member = next(r for r in results if r.case.mode == "nograd" and r.case.members == 1)
    autograd = next(r for r in results if r.case.mode == "autograd")
    print(f"{'path':24}{'N':>6}{'member-ep/s':>13}{'x per-member':>14}{'x autograd':>12}{'roofline %':>12}"
          f"{'+MiB/member':>13}{'accuracy':>10}")
    for r in results:
        name = "per-member loop" if r is per_member else r.case.label
        print(f"{name:24}{r.case.members:>6}{r.rate_best:>13.2f}{r.rate_best / per_member.rate_best:>14.2f}"
              f"{r.rate_best / autograd.rate_best:>12.1f}{roofline_percent(r, machine, n_query):>12.1f}"
              f"{r.increase_mib / r.case.members:>13.2f}{r.query_accuracy:>10.3f}"
              + (f"  (compile {r.compile_seconds:.0f} s)" if r.case.mode == "compiled" else ""))
    if checks:
        print(f"\nprecision check: compiled loop, {checks[0]['pairs']} (θ, task) pairs "
              f"({checks[0]['pairs'] // COMPILED_CHUNK} tasks × {COMPILED_CHUNK} θ), same tasks and initial W")
        for c in checks:
            print(f"  {c['precision']:9} accuracy {c['accuracy']:.4f}  loss {c['loss']:.4f}  Δ vs float32 "
                  f"{100 * c['mean_delta']:+.2f} points (max |Δ| of a pair {100 * c['max_abs_delta']:.1f})")
    if mpi:
        base = {row["device"]: row for row in mpi["best"] if row["ranks"] == 1}
        print("\nMPI (evoplastic bench mpi, population 16, one thread per rank):")
        for row in mpi["best"]:
            speedup = row["generations_per_s"] / base[row["device"]]["generations_per_s"]
            print(f"  R={row['ranks']} {row['device']}: {row['generations_per_s']:.3f} gen/s, "
                  f"{row['member_episodes_per_s']:.2f} member-episodes/s, {speedup:.2f}x R=1")


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
    """Options of ``evoplastic bench``."""
    p = argparse.ArgumentParser(prog="evoplastic bench", description=__doc__.splitlines()[0])
    ints = lambda text: tuple(int(v) for v in text.replace(",", " ").split())
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda[:N]")
    p.add_argument("--dataset", default="", help=bench.DATASET_HELP)
    p.add_argument("--members", type=ints, default=None,
                   help="batch sizes of the eager/compiled rows (default "
                        f"{','.join(map(str, CPU_MEMBERS))} on CPU, {','.join(map(str, CUDA_MEMBERS))} on CUDA)")
    p.add_argument("--rule", default="pool", help="named rule or term indices (default pool)")
    p.add_argument("--dims", type=ints, default=NetworkConfig().dims, help="layer widths (default the paper's)")
    p.add_argument("--steps", type=int, default=None, help="online steps per episode (default 250)")
    p.add_argument("--precisions", default=None,
                   help="reduced precisions to time and check (default bfloat16,float16, plus tf32 on CUDA)")
    p.add_argument("--check-tasks", type=int, default=8, help="tasks of the precision check (0: skip it)")
    p.add_argument("--min-seconds", type=float, default=3.0, help="time each row for ≥ 2 reps and ≥ this long")
    p.add_argument("--threads", type=int, default=1, help="torch threads per row (default 1; 0: torch default)")
    p.add_argument("--mpi", action=argparse.BooleanOptionalAction, default=True, help="also run bench mpi")
    p.add_argument("--json", type=Path, default=None, help="write every figure to this JSON file")
    p.add_argument("--plot", type=Path, default=None, help="draw the rates and ceilings to this PNG")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda given but torch sees no CUDA device")
    default = "tf32,bfloat16,float16" if args.device.startswith("cuda") else "bfloat16,float16"
    args.precisions = [v for v in (args.precisions or default).replace(",", " ").split()]
    for name in args.precisions:
        if name not in REDUCED:
            p.error(f"unknown precision {name!r}; choose from {', '.join(REDUCED)}")
    try:
        resolve_terms(args.rule)
    except ValueError as err:
        p.error(str(err))
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``evoplastic bench [options]`` (or ``bench all``), and the ``_precision`` child mode."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_precision"]:
        print(json.dumps(check_precisions(json.loads(argv[1]))))
        return 0
    args = parse_args(argv[1:] if argv[:1] == ["all"] else argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    machine = measure_machine(torch.device(args.device))
    results = []
    for case in suite_cases(args):
        try:
            results.append(bench.run_case(case))
        except RuntimeError as err:
            print(err, file=sys.stderr)
            return 1
        print(f"[bench] {case.label} N={case.members}: {results[-1].rate_best:.2f} member-episodes/s",
              file=sys.stderr, flush=True)
    k_shot = results[0].case.k_shot
    spec = {"device": args.device, "dims": list(args.dims), "rule": args.rule, "k_shot": k_shot,
            "tasks": args.check_tasks, "precisions": args.precisions, "threads": args.threads,
            "dataset": args.dataset}
    checks = run_child("_precision", spec) if args.check_tasks and args.precisions else []
    mpi = run_mpi(args) if args.mpi else None
    print_report(args, machine, results, checks, mpi)
    if args.plot:
        print(f"plot: {plot_rates(results, machine, args.plot)}")
    if args.json:
        args.json.write_text(json.dumps({"machine": asdict(machine), "results": [asdict(r) for r in results],
                                         "precision_check": checks, "mpi": mpi}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
