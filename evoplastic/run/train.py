"""The training loop, readable top to bottom: step the outer loop, log, evaluate, checkpoint."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from evoplastic.config import ExperimentConfig, config_to_dict
from evoplastic.core.fitness import Evaluation, FitnessFunction, score_in_blocks
from evoplastic.errors import RunDirError
from evoplastic.families import build_fitness, get_family, theta_space
from evoplastic.outer.select import make_outer
from evoplastic.run.health import check_scored, health_warnings
from evoplastic.run.parallel import apply_threads
from evoplastic.run.rundir import RunDir
from evoplastic.stats import mean_ci95

Callback = Callable[[dict[str, Any]], None]
"""Called with each step's metrics record (keys such as 'train/loss', 'theta/center', 'step')."""
Scorer = Callable[[torch.Tensor, "int | str", str, int], Evaluation]
"""(θ (P, R), step, purpose, n_tasks) -> Evaluation; the FitnessFunction or its MPI wrapper."""


@dataclass
class RunSummary:
    """What a finished run reports: final θ and its accuracy on fresh tasks."""

    run_dir: RunDir
    theta: list[float]
    accuracy: float
    accuracy_ci95: float
    loss: float
    warnings: tuple[str, ...] = ()
    """What went wrong but did not stop the run (a stuck Adam loop, a diverging final rule)."""


def evaluate_theta(score: Scorer, theta: torch.Tensor, step: int, n_tasks: int, purpose: str) -> dict[str, float]:
    """Accuracy/loss of one θ on n_tasks fresh tasks, each task a separate estimate (95 % CI)."""
    acc, loss = score_in_blocks(score, theta, n_tasks, 100, lambda _, start: f"{step}/{start}", purpose)
    mean, ci = mean_ci95(acc)
    return {f"{purpose}/accuracy": mean, f"{purpose}/accuracy_ci95": ci,
            f"{purpose}/loss": float(loss.mean()), f"{purpose}/tasks": len(acc)}


def _resume(cfg: ExperimentConfig, run: RunDir, outer: Any) -> tuple[int, float]:
    """Restore the last readable checkpoint; the config it continues under becomes the run's config.yaml.

    Checked first, so that nothing fails only after the remaining steps: the run's JSON records and
    a step count that does not reach back past the checkpoint.
    """
    run.check_records()
    ckpt = run.load_checkpoint(lambda state: outer.load_state_dict(state["outer"]))
    if ckpt["step"] > cfg.steps:
        raise RunDirError(f"{run.path}'s checkpoint is at step {ckpt['step']}, past steps={cfg.steps}; give "
                          f"steps={ckpt['step']} or more")
    if config_to_dict(cfg) != config_to_dict(run.config()):
        run.save_config(cfg)  # a later plain resume continues (and evaluates) under these overrides too
    run.truncate_metrics(ckpt["step"])
    return ckpt["step"], ckpt["elapsed"]


def train(cfg: ExperimentConfig, run: RunDir, resume: bool = False, fitness: FitnessFunction | None = None,
          score: Scorer | None = None, progress: bool = True, callbacks: Sequence[Callback] = ()) -> RunSummary:
    """Run (or continue) an experiment into ``run``, holding its lock throughout; returns the final evaluation.

    ``score`` evaluates candidates (default: ``fitness`` itself; the MPI wrapper under mpirun). Each callback
    gets every step's logged metrics (a dict), after the record is written.
    """
    with run.lock():  # a second process training into the same run is refused
        apply_threads(cfg)
        return _train(cfg, run, resume, fitness, score, progress, tuple(callbacks))


def _train(cfg: ExperimentConfig, run: RunDir, resume: bool, fitness: FitnessFunction | None,
           score: Scorer | None, progress: bool, callbacks: tuple[Callback, ...] = ()) -> RunSummary:
    fitness = fitness or build_fitness(cfg)
    score = score or fitness
    outer = make_outer(cfg, theta_space(cfg))
    step, elapsed = _resume(cfg, run, outer) if resume else (0, 0.0)
    episodes = sum(r.get("budget/episodes", 0) for r in run.metrics())
    bar = tqdm(range(step, cfg.steps), initial=step, total=cfg.steps, disable=not progress,
               desc=f"{cfg.name} ({cfg.outer})", unit="gen" if cfg.outer == "es" else "ep")
    for step in bar:
        start = time.perf_counter()
        record = outer.step(lambda theta, s=step: score(theta, s, "train", 0))
        if cfg.eval_every and (step + 1) % cfg.eval_every == 0:
            record |= evaluate_theta(score, outer.center(), step, cfg.eval_tasks, "eval")
            record |= fitness.diagnostics(outer.center(), step)
        elapsed += time.perf_counter() - start
        episodes += record["budget/episodes"]
        record |= {"step": step, "time/elapsed": elapsed, "budget/episodes_total": episodes}
        run.log(record)
        for callback in callbacks:
            callback(record)
        run.save_checkpoint({"step": step + 1, "elapsed": elapsed, "outer": outer.state_dict(),
                             "config": config_to_dict(cfg)})
        bar.set_postfix(loss=f"{record['train/loss']:.3f}", acc=f"{record['train/accuracy']:.3f}")
    run.update_json("meta.json", fitness.run_notes())
    check_scored(run.metrics(), run.path)  # every member of every generation diverged: no rule to report
    return finish(cfg, run, outer.center(), score)


def finish(cfg: ExperimentConfig, run: RunDir, theta: torch.Tensor, score: Scorer) -> RunSummary:
    """Evaluate the final θ on fresh tasks and write theta.json (the CLI draws the plots)."""
    final = evaluate_theta(score, theta, cfg.steps, cfg.final_eval_tasks, "final")
    run.write_json("theta.json", {
        **get_family(cfg.family).describe(cfg),
        "labels": list(theta_space(cfg).labels),
        "theta": theta.tolist(),
        "outer": cfg.outer,
        **final,
    })
    return RunSummary(run, theta.tolist(), final["final/accuracy"], final["final/accuracy_ci95"], final["final/loss"],
                      health_warnings(cfg, run.metrics(), final))
