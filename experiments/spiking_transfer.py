"""Score the three EMNIST spiking rules on another dataset, beside e-prop at the held-out-tuned rate.

python experiments/spiking_transfer.py OUT.json DATASET [--tasks 100] [--seed 1]
DATASET: an evoplastic dataset name or npz:PATH, e.g. fashion-mnist (its test split is used) or
npz:../shared/data/emnist-digits-test.npz. The rules are the final θ of the three ES runs of
experiments/spiking_gpu.sh (docs/results/spiking/README.md); e-prop's rate is fixed at 0.05, the rate
tuned for fa, bp and dfa on the held-out EMNIST classes.
"""

from __future__ import annotations

import argparse
import json

import torch

import evoplastic as ep

TERMS = ("eprop", "err_err", "oja", "stdp_ltp", "stdp_ltd")
RULES = {
    "ES seed=0": (0.0511, -0.03331, -0.02334, 0.0006336, 0.001084),
    "ES seed=1": (0.04188, -0.002049, -0.02027, 0.001181, 0.0003462),
    "ES seed=2": (0.04863, -0.02753, -0.01819, 0.0001704, 0.0009669),
}
"""θ of the EMNIST rules, as printed by their runs."""


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("dataset")
    p.add_argument("--tasks", type=int, default=100)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(1)
    split = {"split": "test"} if args.dataset == "fashion-mnist" else {}
    rules = ["spiking:" + ",".join(f"{t}={v}" for t, v in zip(TERMS, theta)) for theta in RULES.values()]
    evaluation = ep.evaluate(rules, tasks=args.tasks, seed=args.seed, dataset=args.dataset, classes=[],
                             baseline_lr=0.05, **split)
    print(evaluation.to_text())
    with open(args.out, "w") as f:
        json.dump({"names": list(RULES), **evaluation.to_json()}, f)


if __name__ == "__main__":
    main()
