"""k-cap rules beside their controls on identical tasks: the untuned start rule, θ = 0, and the baselines.

    python experiments/kcap_controls.py RULE... [--config YAML] [--set key=value ...] [--tasks 100]
                                        [--autoencoders] [--json OUT]

RULE is a run directory or a coefficient rule such as ``kcap:hebb=0.02,oja=0.01``. The rows
``kcap:hebb=0.01`` (the start every search begins from) and ``kcap:hebb=0`` (θ = 0: row
normalisation only) always come first. The JSON has the per-task scores ``evoplastic evaluate
--json`` writes, which experiments/kcap_tables.py turns into paired differences.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from evoplastic.analysis.rule import run_theta
from evoplastic.analysis.tables import rows_to_json
from evoplastic.config import ExperimentConfig, load_config, override_config
from evoplastic.families.kcap.evaluation import evaluate
from evoplastic.families.kcap.rulespec import is_rule_spec, parse_rule
from evoplastic.run.rundir import RunDir

START, ZERO = "kcap:hebb=0.01", "kcap:hebb=0"
"""The control rules: the search's untuned start, and no plasticity beyond row normalisation."""


def load_rule(text: str, cfg: ExperimentConfig) -> tuple[str, torch.Tensor, ExperimentConfig]:
    """(label, θ, the rule's own config) of a coefficient rule or a run directory."""
    if is_rule_spec(text):
        label, theta, kcap = parse_rule(text, cfg.kcap)
        return label, torch.tensor(theta, dtype=torch.float64), replace(cfg, kcap=kcap)
    run = RunDir.open(Path(text))
    return run.path.name, torch.tensor(run_theta(run), dtype=torch.float64), run.config()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("rule", nargs="*", help="run directory or kcap:NAME=VALUE,…")
    p.add_argument("--config", default="configs/kcap/es_pool.yaml", help="data and network settings")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override the config")
    p.add_argument("--tasks", type=int, default=100, help="fresh tasks per dataset (100)")
    p.add_argument("--seed", type=int, default=0, help="task seed (0, as evoplastic evaluate)")
    p.add_argument("--autoencoders", action="store_true", help="add the backprop autoencoders (~4 min)")
    p.add_argument("--json", type=Path, help="write per-task scores here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = override_config(load_config(args.config), args.set)
    rules = [load_rule(text, cfg) for text in [START, ZERO, *args.rule]]
    evaluated = evaluate(cfg, rules, args.tasks, args.seed, True, args.autoencoders, controls=True)
    data = {"mode": "family", "family": "kcap", "tasks": args.tasks, "seed": args.seed, "overrides": args.set,
            **rows_to_json(evaluated)}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data))
    for label, scores in evaluated.rows:
        accs = [100 * scores["probe_accuracy"][evaluated.groups == g].nanmean().item() for g in range(3)]
        print(f"{label:60s} " + " / ".join(f"{a:.1f}" for a in accs))


if __name__ == "__main__":
    main()
