"""Command line: ``evoplastic train | evaluate | compare | plot | terms | bench``; heavy imports inside commands."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path


def _train(args: argparse.Namespace) -> int:
    from evoplastic.run import parallel

    world = parallel.init_world()  # size 1, no mpi4py import, unless started by mpirun/mpiexec/srun
    if not world.is_root:
        return parallel.serve(world)
    with parallel.guard(world):  # under MPI, an error here aborts every rank instead of hanging them
        return _train_root(args, world)


def _train_root(args: argparse.Namespace, world) -> int:
    from evoplastic.config import load_config, override_config
    from evoplastic.plugins import plugins_used
    from evoplastic.run.parallel import make_scorer
    from evoplastic.run.rundir import RunDir

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
    for c in _seed_configs(cfg, args, world) if args.seeds else [cfg]:
        fitness, score = make_scorer(world, c)  # fails on missing data before anything is written
        if not args.resume:
            run = RunDir.create(c, args.runs_dir, extra={"mpi_ranks": world.size, "plugins": plugins_used(c)})
        _train_run(c, run, fitness, score, args)
    return 0


def _seed_configs(cfg, args: argparse.Namespace, world) -> list:
    """One config per --seeds value, named <name>_seed<s> (the seeds differ in nothing else)."""
    from dataclasses import replace

    if args.resume:
        raise ValueError("--seeds starts new runs; resume each run with its own --resume RUN_DIR")
    if world.size > 1:
        raise ValueError("--seeds runs one experiment after another in one process; under mpiexec start one "
                         "job per seed (seed=S name=NAME_seedS)")
    return [replace(cfg, seed=seed, name=f"{cfg.name}_seed{seed}") for seed in _parse_seeds(args.seeds)]


def _parse_seeds(text: str) -> list[int]:
    """'0,1,2' or '0-4' (inclusive) -> seeds; anything else is a clear error."""
    try:
        if "-" in text.strip("-"):
            first, last = (int(v) for v in text.split("-"))
            seeds = list(range(first, last + 1))
        else:
            seeds = [int(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise ValueError(f"--seeds {text!r}: give seeds such as 0,1,2 or 0-4") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {text!r}: give distinct seeds such as 0,1,2 or 0-4")
    return seeds


def _train_run(cfg, run, fitness, score, args: argparse.Namespace) -> None:
    """Train one run into its directory and print where it is and what it found."""
    from evoplastic.run.train import train

    print(f"run directory: {run.path}", file=sys.stderr)
    summary = train(cfg, run, resume=bool(args.resume), fitness=fitness, score=score,
                    progress=not args.no_progress)
    if score is not fitness:
        score.close()  # releases the worker ranks
    from evoplastic.analysis.report import plot_run

    plot_run(run)
    from evoplastic.families import theta_space

    labels = theta_space(cfg).labels
    theta = ", ".join(f"{label}={v:.6g}" for label, v in zip(labels, summary.theta))
    print(f"final θ = [{theta}]")
    spread = (f"± {100 * summary.accuracy_ci95:.2f} (95 % CI)" if cfg.final_eval_tasks > 1
              else "(one task: no confidence interval)")
    print(f"query accuracy on {cfg.final_eval_tasks} fresh tasks: {100 * summary.accuracy:.2f} % {spread}")
    for warning in summary.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if cfg.final_baselines:
        from evoplastic.api import evaluate, load_run

        print(evaluate(load_run(run.path), tasks=cfg.final_eval_tasks, progress=not args.no_progress).to_text())
    print(f"run record: {run.path}")


def _plot(args: argparse.Namespace) -> int:
    from evoplastic.analysis.report import plot_run
    from evoplastic.run.rundir import RunDir

    for path in plot_run(RunDir.open(args.run_dir)):
        print(path)
    return 0


def _terms(args: argparse.Namespace) -> int:
    from evoplastic.families.paper.terms import vocabulary_table

    print(vocabulary_table())
    return 0


PASS_THROUGH = {"evaluate": "evoplastic.analysis.evaluate", "compare": "evoplastic.analysis.compare",
                "bench": "evoplastic.bench.suite", "data": "evoplastic.families.paper.data"}
"""Subcommands that parse their own arguments: the module's main(argv) gets the rest."""
BENCHES = {"inner": "evoplastic.bench.inner", "mpi": "evoplastic.bench.mpi", "spaces": "evoplastic.bench.spaces"}
"""``bench inner``, ``bench mpi`` and ``bench spaces``; plain ``bench`` (or ``bench all``) runs the whole suite."""


def _pass_through(argv: list[str]) -> int:
    module = PASS_THROUGH[argv[0]]
    if argv[0] == "bench" and argv[1:2] and argv[1] in BENCHES:
        module = BENCHES[argv[1]]
    return importlib.import_module(module).main(argv[1:])


def build_parser() -> argparse.ArgumentParser:
    from evoplastic import __version__

    parser = argparse.ArgumentParser(prog="evoplastic", description=__doc__)
    parser.add_argument("--version", action="version", version=f"evoplastic {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="run an experiment (ES or Adam outer loop) into runs/")
    p.add_argument("config_and_overrides", nargs="*", metavar="CONFIG [KEY=VALUE ...]",
                   help="YAML experiment file (e.g. configs/quickstart.yaml), then overrides such as "
                        "es.population_size=32")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="another override (repeatable)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("--seeds", metavar="SEEDS", help="one run per seed, e.g. 0,1,2 or 0-4 (named <name>_seed<s>)")
    p.add_argument("--runs-dir", default="runs", help="where new run directories go (default: runs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)

    p = sub.add_parser("plot", help="(re)draw a run's plots")
    p.add_argument("run_dir", type=Path)
    p.set_defaults(func=_plot)

    p = sub.add_parser("terms", help="list the plasticity terms a paper-family rule may search (rule.terms, "
                                     "rule.feedback_terms) with their formulas and search scales")
    p.set_defaults(func=_terms)

    p = sub.add_parser("evaluate", add_help=False,
                       help="score a rule (run dir, theta.json or 'bio:0.013,-0.054,-0.0065') on fresh or "
                            "held-out tasks beside fa/bp baselines; --stream for the Fig. 1 protocol")

    p = sub.add_parser("compare", add_help=False, help="report.md + plots comparing runs (e.g. ES vs Adam)")

    p = sub.add_parser("data", add_help=False, help="download a named dataset (emnist, mnist, fashion-mnist) into "
                                                   "the data directory, or cut the offline EMNIST subset "
                                                   "(emnist-subset)")

    p = sub.add_parser("bench", help="speed: 'bench' runs everything as ratios; 'bench inner', 'bench mpi', "
                                     "'bench spaces' scan one part (each has --help)",
                       add_help=False)
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse argv; for train, KEY=VALUE overrides may also follow the options (--no-progress steps=5)."""
    args, extra = parser.parse_known_args(argv)
    overrides = [w for w in extra if "=" in w and not w.startswith("-")]
    if getattr(args, "command", None) == "train" and overrides:
        args.config_and_overrides = list(args.config_and_overrides) + overrides
        extra = [w for w in extra if w not in overrides]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv and argv[0] in PASS_THROUGH:
            return _pass_through(argv)
        args = parse(build_parser(), argv)
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"evoplastic: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # RunDir.lock sets run_dir and resumable while a run trains
        from evoplastic.run.rundir import interrupted_message

        print(interrupted_message(getattr(err, "run_dir", None), getattr(err, "resumable", False)), file=sys.stderr)
        return 130
