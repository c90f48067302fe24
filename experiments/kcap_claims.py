"""Balwani, Gupta & Shu's claims on identical tasks: code degeneracy (§5.2), the cross-entropy read-out (§5.3).

    python experiments/kcap_claims.py RULE... [--set key=value ...] [--tasks 100] [--json OUT]

RULE is a run directory or a coefficient rule (``kcap:hebb=0.01``); the untrained network and the
raw input are added. Each task has 20 labels per class; L = 1, 2, 5, 10, 20 use the first L of
each class, so every L and every row sees the same streams and query points (paired). Per row,
dataset and L it reports the query accuracy of a cross-entropy (logistic) read-out and of the
ridge probe, and, per row and dataset, the number of distinct codes among the 200 query latents.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch
from kcap_controls import load_rule  # noqa: E402 — sibling script

from evoplastic.config import load_config, override_config
from evoplastic.families.kcap.loop import learn
from evoplastic.families.kcap.metrics import distinct_codes, logistic_probe, mask_diverged, probe
from evoplastic.families.kcap.network import encode
from evoplastic.families.kcap.problem import KcapProblem

LABELS = (1, 2, 5, 10, 20)


def latents(rule, batch, cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """(labelled, query) representations of the batch's tasks under a rule, the untrained net, or raw input."""
    tasks = batch.tasks
    if rule == "raw":
        return tasks.labelled_x, tasks.query_x
    if rule == "untrained":
        state, kcap = batch.init, cfg.kcap
    else:
        _, theta, own = rule
        kcap = replace(cfg.kcap, **{k: getattr(own.kcap, k) for k in ("rule", "terms", "per_matrix", "plastic",
                                                                      "normalise", "mlp_hidden")})
        with torch.no_grad():
            state, _ = mask_diverged(learn(theta.to(tasks.unlabelled.dtype).repeat(tasks.n_tasks, 1),
                                           tasks.unlabelled, batch.init, kcap))
    return encode(state, tasks.labelled_x, kcap), encode(state, tasks.query_x, kcap)


def scores(labelled, query, tasks, ridge: float) -> dict[str, list[float]]:
    """Per L: logistic and ridge probe accuracies (T,) on the first L labels of each class."""
    out = {}
    per_class = tasks.labelled_x.shape[1] // 2
    for L in LABELS:
        idx = torch.cat([torch.arange(L), per_class + torch.arange(L)])
        lx, ly = labelled[:, idx], tasks.labelled_y[:, idx]
        out[f"ce_L{L}"] = logistic_probe(lx, ly, query, tasks.query_y, ridge).tolist()
        out[f"ridge_L{L}"] = probe(lx, ly, query, tasks.query_y, ridge)[1].tolist()
    out["distinct_codes"] = distinct_codes(query).tolist()
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("rule", nargs="*")
    p.add_argument("--config", default="configs/kcap/es_pool.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--tasks", type=int, default=100)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = override_config(load_config(args.config), args.set)
    cfg = replace(cfg, seed=0, dtype="float64", kcap=replace(cfg.kcap, labels_per_class=max(LABELS)))
    rules = [load_rule(text, cfg) for text in args.rule]
    result = {}
    for name in cfg.kcap.datasets:
        one = replace(cfg, kcap=replace(cfg.kcap, datasets=(name,)))
        batch = KcapProblem(one).draw(name, "claims", args.tasks)
        for rule, label in [(r, r[0]) for r in rules] + [("untrained", "untrained k-cap RNN"),
                                                          ("raw", "raw 10-D input")]:
            lab, query = latents(rule, batch, one)
            result.setdefault(label, {})[name] = scores(lab, query, batch.tasks, cfg.kcap.probe_ridge)
            row = result[label][name]
            print(f"{name:8s} {label:45s} CE " + " ".join(f"{100 * sum(row[f'ce_L{L}']) / args.tasks:.1f}"
                                                         for L in LABELS)
                  + f" | codes {sum(row['distinct_codes']) / args.tasks:.1f}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"tasks": args.tasks, "overrides": args.set, "rows": result}))


if __name__ == "__main__":
    main()
