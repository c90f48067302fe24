"""Command line: ``evoplastic train | plot | bench``; heavy imports happen inside commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _train(args: argparse.Namespace) -> int:
    from evoplastic.config import load_config, override_config
    from evoplastic.rundir import RunDir
    from evoplastic.train import build_fitness, train

    words = list(args.config_and_overrides)
    config = words.pop(0) if words and "=" not in words[0] else None
    overrides = words + list(args.set or [])
    if args.resume:
        if config is not None:
            raise ValueError(f"--resume continues a run with its saved config; drop {config!r}")
        run = RunDir.open(args.resume)
        cfg = override_config(run.config(), overrides)
    elif config is None:
        raise ValueError("give a config file (e.g. configs/quickstart.yaml) or --resume RUN_DIR")
    else:
        cfg = load_config(config, overrides)
    fitness = build_fitness(cfg)  # fails on missing data before anything is written
    if not args.resume:
        run = RunDir.create(cfg, args.runs_dir)
    print(f"run directory: {run.path}", file=sys.stderr)
    summary = train(cfg, run, resume=bool(args.resume), fitness=fitness, progress=not args.no_progress)
    theta = ", ".join(f"{v:.6g}" for v in summary.theta)
    print(f"final θ = [{theta}]")
    print(f"query accuracy on {cfg.final_eval_tasks} fresh tasks: {100 * summary.accuracy:.2f} % "
          f"± {100 * summary.accuracy_ci95:.2f} (95 % CI)")
    print(f"run record: {run.path}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from evoplastic.report import plot_run
    from evoplastic.rundir import RunDir

    for path in plot_run(RunDir.open(args.run_dir)):
        print(path)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from evoplastic import bench

    return bench.main(args.bench_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evoplastic", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="run an experiment (ES or Adam outer loop) into runs/")
    p.add_argument("config_and_overrides", nargs="*", metavar="CONFIG [KEY=VALUE ...]",
                   help="YAML experiment file (e.g. configs/quickstart.yaml), then overrides such as "
                        "es.population_size=32")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="another override (repeatable)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("--runs-dir", default="runs", help="where new run directories go (default: runs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)

    p = sub.add_parser("plot", help="(re)draw a run's plots")
    p.add_argument("run_dir", type=Path)
    p.set_defaults(func=_plot)

    p = sub.add_parser("bench", help="benchmarks: 'bench inner' (see 'evoplastic bench inner --help')",
                       add_help=False)
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"evoplastic: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("evoplastic: interrupted; continue with 'evoplastic train --resume RUN_DIR'", file=sys.stderr)
        return 130
