"""``evoplastic bench spaces``: what each rule space (per-layer, plastic feedback, generated terms) costs
against the paper's pool, in one run.

Timing: in one process, the paper network learns the same tasks (the EMNIST subset when present,
else uniform noise of the same shape) for every space, N members per call on one task, as one ES
generation scores them: a warm-up call (compilation, for the compiled row), then --repeats timed
calls; rates are member-episodes/s of the median call, and each is shown as a multiple of the
paper pool's plain (batched, not compiled) row, the first one.

Convergence (``--runs RUN…``): per training run, the space it searched, how many generations it ran,
how many it needed to cover 90 % of its improvement (generations_to_converge), seconds per
generation and its final (or latest held-out) accuracy. Unfinished runs are read as far as they got.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from evoplastic.bench.inner import DATASET_HELP, N_WAY, PAPER_THETA, Case, build_inputs, hardware
from evoplastic.families import theta_space
from evoplastic.families.paper import fused
from evoplastic.families.paper.config import NetworkConfig
from evoplastic.families.paper.inner import run_episode
from evoplastic.families.paper.network import Activation, NetworkState, make_activation
from evoplastic.families.paper.space import RuleSpace
from evoplastic.families.paper.tasks import TaskBatch
from evoplastic.families.paper.terms import FEEDBACK_TERMS, resolve_feedback_terms, resolve_terms
from evoplastic.run.rundir import RunDir, RunDirError
from evoplastic.seeding import make_generator

CPU_MEMBERS, CUDA_MEMBERS = 16, 1024
"""Default N members per call (the same for every row)."""
CURVE_KEYS = ("fitness/median", "fitness/best")
"""Training curve of a run: the ES population's median fitness, else (Adam: one candidate) its fitness."""


@dataclass(frozen=True)
class SpaceCase:
    """One timed rule space: rule.terms, rule.per_layer and rule.feedback_terms as in a config."""

    name: str
    terms: str
    per_layer: bool = False
    feedback: str = ""
    compiled: bool = False
    """Learn through the fused, torch.compile'd step (es.compile=true; the paper's terms, shared or per layer)."""

    def space(self, n_layers: int) -> RuleSpace:
        return RuleSpace(resolve_terms(self.terms), n_layers, self.per_layer, resolve_feedback_terms(self.feedback))


POOL = SpaceCase("pool (paper)", "pool")
COMPILED = SpaceCase("pool compiled", "pool", compiled=True)
COMPILED_PER_LAYER = SpaceCase("pool per-layer compiled", "pool", per_layer=True, compiled=True)
SPACES = (SpaceCase("bio", "bio"), SpaceCase("bio per-layer", "bio", per_layer=True),
          SpaceCase("pool per-layer", "pool", per_layer=True), SpaceCase("generated", "generated"),
          SpaceCase("bio + feedback all", "bio", feedback="all"))
"""The spaces timed after the paper pool (and its compiled row)."""


@dataclass
class SpaceTiming:
    """Seconds per call of N members and member-episodes/s of one space; ratio to the paper pool's plain row."""

    case: SpaceCase
    coefficients: int
    members: int
    steps: int
    reps: int
    seconds_median: float
    seconds_best: float
    rate_median: float
    ratio: float
    warmup_seconds: float
    """The untimed first call (includes compilation on the compiled row)."""
    query_accuracy: float
    note: str = ""


def make_theta(space: RuleSpace, members: int) -> torch.Tensor:
    """(N, R) θ: paper-like values on T0, T2, T9 in every block, tiny random ones (1 % of the ES unit)
    elsewhere, each ±10 % per member, so that every term does work."""
    g = make_generator("bench", "spaces", space.size)
    terms = [t for _ in range(space.blocks) for t in space.terms] + [None] * (space.size - space.n_weight)
    noise = torch.randn(space.size, generator=g, dtype=torch.float64).tolist()
    base = torch.tensor([PAPER_THETA.get(t, 0.01 * s * z) for t, s, z in zip(terms, space.scales(), noise)],
                        dtype=torch.float64)
    return (base * (1 + 0.1 * torch.randn(members, space.size, generator=g, dtype=torch.float64))).float()


def episode(case: SpaceCase, space: RuleSpace, theta: torch.Tensor, tasks: TaskBatch, init: NetworkState,
            activation: Activation) -> float:
    """One no-grad episode of N members on the task(s); their mean query accuracy."""
    options = fused.FusedOptions() if case.compiled else False
    with torch.no_grad():
        result = run_episode(theta, space, tasks, init, activation, compiled=options)
    return float(result.accuracy.mean())


@dataclass
class Workload:
    """What every row learns: the same tasks, initial network (fa feedback) and activation object."""

    tasks: TaskBatch
    init: NetworkState
    activation: Activation
    data: str
    """Where the images come from (EMNIST subset or uniform noise)."""


def time_space(case: SpaceCase, args: argparse.Namespace, work: Workload, reference: float | None) -> SpaceTiming:
    """Warm up once, then time args.repeats calls; reference is the paper pool's median rate (None: this is it)."""
    tasks, init, activation = work.tasks, work.init, work.activation
    device = tasks.train_x.device
    space = case.space(len(init.weights))
    theta = make_theta(space, args.members).to(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    refused = len(fused.compile_fallbacks())
    times, accuracy = [], 0.0
    for _ in range(args.repeats + 1):
        start = time.perf_counter()
        accuracy = episode(case, space, theta, tasks, init, activation)
        sync()
        times.append(time.perf_counter() - start)
    note = "compile refused: plain loop ran" if case.compiled and len(fused.compile_fallbacks()) > refused else ""
    median = statistics.median(times[1:])
    rate = args.members / median
    reference = reference or rate
    return SpaceTiming(case, space.size, args.members, tasks.train_x.shape[1], args.repeats, median, min(times[1:]),
                       rate, rate / reference, times[0], accuracy, note)


def make_workload(args: argparse.Namespace) -> Workload:
    """One task of args.steps online steps and its initial network on the device, as bench inner builds them."""
    probe = Case("nograd", args.members, args.steps // N_WAY, "pool", tuple(args.dims), args.device, 0.0, 0,
                 dataset=args.dataset)
    tasks, init, data = build_inputs(probe, torch.device(args.device))
    return Workload(tasks, init, make_activation(NetworkConfig(dims=tuple(args.dims))), data)


def print_timing_header(args: argparse.Namespace, hw: dict, work: Workload) -> None:
    """What is timed, on what, and how; then the column names."""
    print(f"evoplastic bench spaces: dims {'-'.join(map(str, args.dims))}, softplus, fa feedback, float32, no grad")
    print(f"hardware: CPU {hw['cpu']}, {hw['cores']} cores | torch {hw['torch']}, threads={hw['threads']} | "
          f"CUDA {hw['cuda'] or 'none'} | device {args.device}")
    print(f"data: {work.data} | episode: {args.steps} online steps + {work.tasks.query_x.shape[1]} query images; "
          f"N={args.members} members per call on one task; warm-up once, then {args.repeats} timed calls, median")
    print(f"\n{'space':22}{'R':>5}{'N':>6}{'steps':>7}{'s/call':>10}{'member-ep/s':>13}{'x pool':>8}"
          f"{'warm-up s':>11}{'acc':>7}")


def format_timing(r: SpaceTiming) -> str:
    """One row of the timing table."""
    return (f"{r.case.name:22}{r.coefficients:>5}{r.members:>6}{r.steps:>7}{r.seconds_median:>10.3f}"
            f"{r.rate_median:>13.2f}{r.ratio:>8.2f}{r.warmup_seconds:>11.1f}{r.query_accuracy:>7.3f}"
            + (f"  {r.note}" if r.note else ""))


def run_timings(args: argparse.Namespace) -> list[SpaceTiming]:
    """Time the paper pool, then (with --compiled) its fused row, every other space, and (--compiled) the fused
    per-layer pool; print rows as they come."""
    work = make_workload(args)
    print_timing_header(args, hardware(args.device, args.threads), work)
    rows: list[SpaceTiming] = []
    for case in (POOL, COMPILED, *SPACES, COMPILED_PER_LAYER) if args.compiled else (POOL, *SPACES):
        rows.append(time_space(case, args, work, rows[0].rate_median if rows else None))
        print(format_timing(rows[-1]), flush=True)
    return rows


def _moving_median(values: list[float], window: int) -> list[float]:
    """Centred moving median (window clipped at the ends): a lucky or diverged generation moves it little."""
    half = window // 2
    return [statistics.median(values[max(0, i - half): i + half + 1]) for i in range(len(values))]


def training_curve(records: list[dict]) -> list[tuple[int, float]]:
    """(step, loss) per generation from metrics.jsonl rows: the last row of each step (a resume may repeat
    one), the first of CURVE_KEYS the rows hold, non-finite values dropped."""
    key = next((k for k in CURVE_KEYS if any(k in r for r in records)), None)
    by_step = {int(r["step"]): r[key] for r in records if key in r and "step" in r}
    return [(s, float(v)) for s, v in sorted(by_step.items()) if v is not None and math.isfinite(float(v))]


def generations_to_converge(records: list[dict], fraction: float = 0.9, window: int = 9,
                            min_relative: float = 0.01) -> int | None:
    """Generations run (step + 1) when the smoothed training curve first covered fraction of its improvement.

    The curve (training_curve) is smoothed by a centred moving median of window generations; its
    improvement runs from the smoothed first level to the smoothed last one. None when the curve has
    fewer than window points, or improved by less than min_relative of its start (flat or worse).
    """
    curve = training_curve(records)
    if len(curve) < max(window, 2):
        return None
    smooth = _moving_median([v for _, v in curve], window)
    gain = smooth[0] - smooth[-1]
    if gain <= min_relative * abs(smooth[0]) or gain <= 0:
        return None
    target = smooth[0] - fraction * gain
    return next(step + 1 for (step, _), level in zip(curve, smooth) if level <= target)


@dataclass
class RunRow:
    """One run's space, progress, convergence, speed and accuracy, for the --runs table."""

    run: str
    terms: str
    per_layer: bool
    feedback: str
    coefficients: int
    outer: str
    generations: int
    planned: int
    converge: int | None
    seconds_per_generation: float | None
    episodes_per_generation: int | None
    """Member-episodes of one generation (population × tasks): s/gen compares only at equal values."""
    accuracy: float | None
    accuracy_from: str
    """final (theta.json, finished runs), eval@G (the latest held-out evaluation) or '' when none."""


def run_directories(paths: list[Path]) -> list[Path]:
    """Each path that is a run directory, or the run directories inside one (e.g. runs/spaces)."""
    found = []
    for path in paths:
        inside = sorted(p for p in path.iterdir() if (p / "config.yaml").is_file()) if path.is_dir() else []
        if not (path / "config.yaml").is_file() and not inside:
            raise FileNotFoundError(f"{path} is not a run directory (no config.yaml) and holds none")
        found += [path] if (path / "config.yaml").is_file() else inside
    return found


def _accuracy(run: RunDir, records: list[dict]) -> tuple[float | None, str]:
    """final/accuracy of a finished run, else its latest eval/accuracy."""
    if (run.path / "theta.json").is_file():
        final = run.read_json("theta.json").get("final/accuracy")
        if final is not None:
            return float(final), "final"
    evals = [r for r in records if "eval/accuracy" in r]
    return (float(evals[-1]["eval/accuracy"]), f"eval@{evals[-1]['step'] + 1}") if evals else (None, "")


def summarise_run(path: Path, window: int = 9) -> RunRow:
    """The --runs row of one run directory, finished or not."""
    run = RunDir.open(path)
    cfg, records = run.config(), run.metrics()
    per_layer, feedback = bool(getattr(cfg.rule, "per_layer", False)), getattr(cfg.rule, "feedback_terms", "")
    terms = cfg.rule.terms if isinstance(cfg.rule.terms, str) else ",".join(map(str, cfg.rule.terms))
    if cfg.family == "paper":
        feedback = "+".join(FEEDBACK_TERMS[f] for f in RuleSpace.from_config(cfg).feedback_terms)
    else:  # another family's rule is not rule.terms: name the family, R says the size
        terms, per_layer, feedback = cfg.family, False, ""
    seconds = [r["time/step_seconds"] for r in records if "time/step_seconds" in r]
    episodes = [r["budget/episodes"] for r in records if "budget/episodes" in r]
    outer = f"es {'sep-' * cfg.es.separable}{cfg.es.algorithm}" if cfg.outer == "es" else cfg.outer
    accuracy, source = _accuracy(run, records)
    return RunRow(path.name, terms, per_layer, feedback or "none", theta_space(cfg).size, outer,
                  len({r["step"] for r in records if "step" in r}), cfg.steps,
                  generations_to_converge(records, window=window), statistics.median(seconds) if seconds else None,
                  episodes[-1] if episodes else None, accuracy, source)


def read_runs(paths: list[Path], window: int) -> list[RunRow]:
    """summarise_run of each run; one whose record is damaged (not merely unfinished) is skipped with a warning."""
    rows = []
    for path in paths:
        try:
            rows.append(summarise_run(path, window))
        except RunDirError as err:
            print(f"warning: skipping {path}: {err}", file=sys.stderr)
    return rows


def print_runs(rows: list[RunRow], window: int) -> None:
    """The convergence table, one row per run."""
    print(f"\nruns: generations to converge = first generation at which the centred moving median ({window} gens) "
          f"of {' (else '.join(CURVE_KEYS)}) has covered 90 % of its improvement; s/gen = median time/step_seconds "
          "(of ep/gen member-episodes); "
          "an unfinished run (gens < planned) is read as far as it got")
    print(f"{'run':44}{'terms':>10}{'per-layer':>10}{'feedback':>20}{'R':>5}{'outer':>15}{'gens':>9}"
          f"{'to 90%':>8}{'s/gen':>8}{'ep/gen':>8}{'accuracy':>18}")
    for r in rows:
        acc = f"{r.accuracy:.3f} {r.accuracy_from}" if r.accuracy is not None else "-"
        sec = f"{r.seconds_per_generation:.2f}" if r.seconds_per_generation is not None else "-"
        print(f"{r.run:44}{r.terms:>10}{'yes' if r.per_layer else 'no':>10}{r.feedback:>20}{r.coefficients:>5}"
              f"{r.outer:>15}{f'{r.generations}/{r.planned}':>9}{r.converge or '-':>8}{sec:>8}"
              f"{r.episodes_per_generation or '-':>8}{acc:>18}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Options of ``evoplastic bench spaces``."""
    p = argparse.ArgumentParser(prog="evoplastic bench spaces", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--members", type=int, default=None,
                   help=f"N members per call, every row (default {CPU_MEMBERS} on CPU, {CUDA_MEMBERS} on CUDA)")
    p.add_argument("--steps", type=int, default=250,
                   help=f"online steps per episode, a multiple of {N_WAY} (default 250)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per row after the warm-up (default 3)")
    p.add_argument("--dims", type=lambda s: tuple(int(v) for v in s.replace(",", " ").split()),
                   default=NetworkConfig().dims, help="layer widths (default 784,170,130,100,70,47)")
    p.add_argument("--dataset", default="", help=DATASET_HELP)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--compiled", action="store_true", help="also time the paper pool through es.compile's fused "
                                                           "step (compiles first, ~30 s on CPU)")
    p.add_argument("--timing", action=argparse.BooleanOptionalAction, default=True,
                   help="time the spaces (--no-timing: only the --runs table)")
    p.add_argument("--runs", nargs="+", type=Path, default=[], metavar="RUN",
                   help="run directories (or folders of them, e.g. runs/spaces) for the convergence table")
    p.add_argument("--window", type=int, default=9, help="moving-median window of the convergence curve (gens)")
    p.add_argument("--json", type=Path, default=None, help="write every figure to this JSON file")
    args = p.parse_args(argv)
    args.members = args.members or (CUDA_MEMBERS if args.device.startswith("cuda") else CPU_MEMBERS)
    if args.steps < N_WAY or args.steps % N_WAY:
        p.error(f"--steps must be a positive multiple of the {N_WAY} classes of a task, got {args.steps}")
    if args.members < 1 or args.repeats < 1 or args.window < 1:
        p.error("--members, --repeats and --window must be ≥ 1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda given but torch sees no CUDA device")
    if not args.timing and not args.runs:
        p.error("--no-timing leaves nothing to do without --runs")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``evoplastic bench spaces [options]`` (a leading 'spaces' is accepted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv[1:] if argv[:1] == ["spaces"] else argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    figures: dict = {"hardware": hardware(args.device, args.threads),
                     "workload": {"dims": list(args.dims), "steps": args.steps, "members": args.members,
                                  "repeats": args.repeats, "device": args.device}}
    if args.timing:
        figures["timing"] = [asdict(r) for r in run_timings(args)]
    if args.runs:
        rows = read_runs(run_directories(args.runs), args.window)
        print_runs(rows, args.window)
        figures["runs"] = [asdict(r) for r in rows]
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
