"""``evoplastic bench mpi``: ES generations/s and member-episodes/s under ``mpiexec -n R``.

Each R runs a short real ES run (``evoplastic train`` in a subprocess, one thread per rank
by default) and reads the per-generation times from its metrics, skipping the warm-up
generations, so interpreter, evotorch/ray import and data loading are excluded. Default
workload: the paper network 784-170-130-100-70-47 on the EMNIST subset (found by
bench.inner.emnist_subset in the data directory, else in ``../shared/data``; a small network on
the bundled digits when it is absent), 5-way, 250 online samples, population 16, T = 1. The
runs also show whether the per-member fitnesses agree bit for bit across R.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from evoplastic.bench.inner import emnist_subset
from evoplastic.run.parallel import LAUNCHER_VARS
from evoplastic.run.rundir import environment


def find_mpiexec() -> str | None:
    """The mpiexec installed next to this Python (PyPI mpich), else the one on PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.is_file() else shutil.which("mpiexec")


def mpiexec_command(n_ranks: int) -> list[str]:
    """``mpiexec -n R`` (hydra, i.e. MPICH, launches locally by fork: no ssh needed in sandboxes)."""
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise RuntimeError("mpiexec not found: pip install mpich (or load your cluster's MPI module)")
    fork = ["-launcher", "fork"] if Path(mpiexec).with_name("mpiexec.hydra").exists() else []
    return [mpiexec, *fork, "-n", str(n_ranks)]


def child_env(threads: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without a surrounding launcher's variables, with the thread count per rank."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS and not k.startswith("EVOPLASTIC_FAIL")}
    return {**env, **({"OMP_NUM_THREADS": str(threads)} if threads else {}), **(extra or {})}


def workload(args: argparse.Namespace) -> dict:
    """The benchmark's experiment config (YAML overrides)."""
    emnist = emnist_subset()
    dataset = args.dataset or (f"npz:{emnist}" if emnist else "digits")
    paper = dataset != "digits"
    return {
        "name": "bench_mpi", "steps": args.warmup + args.generations, "tasks_per_step": args.tasks,
        "eval_every": 0, "final_eval_tasks": 2, "dtype": "float32",
        "network": {"dims": [784, 170, 130, 100, 70, 47] if paper else [64, 48, 32, 10]},
        "task": {"dataset": dataset, **({} if paper else {"k_shot": 30})},
        "rule": {"terms": "bio"}, "es": {"algorithm": "cmaes", "population_size": args.population},
    }


def run_once(config: Path, n_ranks: int, device: str, args: argparse.Namespace, out: Path) -> dict:
    """Train under ``mpiexec -n R``; generation rates from the metrics, warm-up excluded."""
    command = [*mpiexec_command(n_ranks), sys.executable, "-m", "evoplastic", "train", str(config),
               f"device={device}", "--runs-dir", str(out), "--no-progress"]
    start = time.perf_counter()
    done = subprocess.run(command, env=child_env(args.threads), capture_output=True, text=True, timeout=args.timeout)
    if done.returncode:
        raise RuntimeError(f"mpiexec -n {n_ranks} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    (run,) = out.iterdir()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    seconds = sum(r["time/step_seconds"] for r in records[args.warmup:])
    rate = len(records[args.warmup:]) / seconds
    return {"ranks": n_ranks, "device": device, "generations_per_s": rate,
            "member_episodes_per_s": rate * args.population * args.tasks,
            "wall_s": time.perf_counter() - start, "members": [r["fitness/members"] for r in records]}


def plan(args: argparse.Namespace) -> list[tuple[int, str]]:
    """(R, device) pairs: the requested CPU rank counts, then one rank per GPU when CUDA is present."""
    rows = [(int(r), "cpu") for r in args.ranks.split(",")]
    if torch.cuda.is_available():
        rows += sorted({(1, "cuda"), (torch.cuda.device_count(), "cuda")})
    return rows


def report(args: argparse.Namespace, best: dict, runs: list[dict], load: tuple[float, float]) -> str:
    """Hardware, workload and one row per (R, device), with the speedup over R = 1 on the same device."""
    env, cfg = environment(), workload(args)
    version = subprocess.run([find_mpiexec(), "--version"], capture_output=True, text=True).stdout
    mpi = next((line.split(":", 1)[1].strip() for line in version.splitlines() if "Version:" in line), "?")
    lines = [
        f"hardware: {env['cpu']}, {env['cpu_count']} cores, torch {env['torch']}, MPICH/hydra {mpi}"
        + (f", {torch.cuda.device_count()} x {env['cuda']}" if env["cuda"] else ""),
        f"workload: dims {cfg['network']['dims']} on {cfg['task']['dataset']}, population {args.population}, "
        f"T = {args.tasks}, {args.generations} timed generations after {args.warmup} warm-up, "
        f"{args.threads or 'auto'} thread(s) per rank, best of {args.repeats}",
        f"load average (1 min) before/after: {load[0]:.2f} / {load[1]:.2f} (other jobs on the machine add noise)",
        "",
        f"{'R':>3} {'device':>6} {'gen/s':>8} {'member-ep/s':>12} {'speedup':>8} {'identical':>9}",
    ]
    for (n_ranks, device), row in best.items():
        base = best.get((1, device))
        same = [r["members"] for r in runs if r["device"] == device]
        identical = "yes" if all(m == same[0] for m in same) else "NO"
        speedup = row["generations_per_s"] / base["generations_per_s"] if base else float("nan")
        lines.append(f"{n_ranks:>3} {device:>6} {row['generations_per_s']:>8.3f} "
                     f"{row['member_episodes_per_s']:>12.2f} {speedup:>7.2f}x {identical:>9}")
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="evoplastic bench mpi", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", default="1,2", help="CPU rank counts to compare (default: 1,2)")
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--tasks", type=int, default=1, help="tasks T per generation (default: 1)")
    parser.add_argument("--generations", type=int, default=4, help="timed generations (default: 4)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first generations (default: 1)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per R, interleaved; best is reported")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per rank; 0: cores / ranks")
    parser.add_argument("--dataset", help="task.dataset (default: the EMNIST subset, else digits)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed per mpiexec run")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``evoplastic bench mpi [options]`` (a leading 'mpi' is accepted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv[1:] if argv[:1] == ["mpi"] else argv)
    load = [os.getloadavg()[0]]
    runs, best = [], {}
    with tempfile.TemporaryDirectory(prefix="evoplastic-bench-mpi-") as tmp:
        config = Path(tmp) / "bench_mpi.yaml"
        config.write_text(yaml.safe_dump(workload(args)))
        for repeat in range(args.repeats):
            for n_ranks, device in plan(args):
                row = run_once(config, n_ranks, device, args, Path(tmp) / f"{device}-{n_ranks}-{repeat}")
                print(f"[bench mpi] R={n_ranks} {device}: {row['generations_per_s']:.3f} gen/s, "
                      f"{row['member_episodes_per_s']:.2f} member-episodes/s ({row['wall_s']:.1f} s with startup)",
                      file=sys.stderr, flush=True)
                runs.append(row)
                key = (n_ranks, device)
                if key not in best or row["generations_per_s"] > best[key]["generations_per_s"]:
                    best[key] = row
    load.append(os.getloadavg()[0])
    print(report(args, best, runs, tuple(load)))
    if args.json:
        strip = lambda r: {k: v for k, v in r.items() if k != "members"}
        args.json.write_text(json.dumps({"best": [strip(r) for r in best.values()],
                                         "runs": [strip(r) for r in runs], "load": load}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
