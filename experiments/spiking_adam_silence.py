"""Why Adam's EMNIST spiking rule fails: ablate its STDP terms and read the hidden firing rates.

python experiments/spiking_adam_silence.py [--tasks 10]
Scores Adam's seed=1 rule (docs/results/spiking/README.md) with and without its STDP terms on held-out
EMNIST tasks, then prints each hidden layer's firing rate (spikes per step on query images, after
learning) for that rule, for e-prop alone and for the ES seed=0 rule.
"""

from __future__ import annotations

import argparse

import torch

import evoplastic as ep
from evoplastic.config import load_config
from evoplastic.families import get_family

ADAM = {"eprop": 0.07097, "err_err": -0.004208, "oja": -0.0004201, "stdp_ltp": 0.0004185, "stdp_ltd": 0.0004185}
ES = {"eprop": 0.0511, "err_err": -0.03331, "oja": -0.02334, "stdp_ltp": 0.0006336, "stdp_ltd": 0.001084}
HELD_OUT = "37-46"


def text(theta: dict[str, float]) -> str:
    return "spiking:" + ",".join(f"{k}={v}" for k, v in theta.items())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(1)
    ablations = [ADAM, {k: v for k, v in ADAM.items() if not k.startswith("stdp")},
                 {k: v for k, v in ADAM.items() if k not in ("oja", "err_err")}, {"eprop": ADAM["eprop"]},
                 {**ADAM, "stdp_ltp": 0.0}, {**ADAM, "stdp_ltd": 0.0}]
    print(ep.evaluate([text(a) for a in ablations], tasks=args.tasks, seed=1, classes=HELD_OUT,
                      baselines=False).to_text())
    cfg = load_config("configs/spiking/emnist_split.yaml", ["task.classes=[37,38,39,40,41,42,43,44,45,46]"])
    problem = get_family("spiking").build_problem(cfg)
    eprop_only = {k: (v if k == "eprop" else 0.0) for k, v in ADAM.items()}
    for label, theta in (("Adam, seed=1", ADAM), ("e-prop alone", eprop_only), ("ES, seed=0", ES)):
        rates = problem.diagnostics(torch.tensor(list(theta.values()), dtype=torch.float64), "diagnostics")
        print(f"{label}: hidden firing rates " + ", ".join(f"{r:.3f}" for r in rates["eval/firing_rate"]))


if __name__ == "__main__":
    main()
