"""Where one episode of the C++ step spends its time: passes over W, the rest of each step, outside the steps.

python experiments/cpu_step_profile.py [--members 16] [--precision float32] [--repeats 3]
Paper network (784-170-130-100-70-47), pool rule, fa, one thread, es.compile's CPU step (in place). Each part
is CPU time (time.process_time) summed over one episode, so the split holds on a loaded machine too; the
episode is run once to compile and build, then --repeats times, and the fastest is reported.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from evoplastic.bench import inner as bench
from evoplastic.families.paper import cpu_step, fused
from evoplastic.families.paper.config import NetworkConfig
from evoplastic.families.paper.inner import run_episode
from evoplastic.families.paper.network import make_activation
from evoplastic.families.paper.rules import resolve_terms


def timed(fn: Callable, totals: dict[str, float], key: str) -> Callable:
    """fn, adding the CPU time of each call to totals[key]."""
    def wrapper(*args, **kwargs):
        start = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[key] += time.process_time() - start
    return wrapper


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--members", type=int, default=16)
    p.add_argument("--precision", default="float32", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    case = bench.Case("compiled", args.members, 50, "pool", NetworkConfig().dims, "cpu", 0.0, 1, kernel="cpp")
    tasks, init, _ = bench.build_inputs(case, torch.device("cpu"))
    terms = resolve_terms("pool")
    theta = bench.make_theta(terms, args.members)
    options = fused.FusedOptions.for_precision(args.precision, kernel="cpp")
    activation = make_activation(NetworkConfig())
    totals = {"passes": 0.0, "steps": 0.0}
    cpu_step.row_pass = timed(cpu_step.row_pass, totals, "passes")
    cpu_step.cpu_step = timed(cpu_step.cpu_step, totals, "steps")
    best = None
    with torch.no_grad():
        for repeat in range(args.repeats + 1):
            totals.update(passes=0.0, steps=0.0)
            start = time.process_time()
            run_episode(theta, terms, tasks, init, activation, compiled=options)
            episode = time.process_time() - start
            if repeat and (best is None or episode < best[0]):
                best = (episode, dict(totals))
    episode, parts = best
    steps = tasks.train_x.shape[1]
    rows = [("C++ passes over W", parts["passes"]), ("rest of the steps (vector work, Python)",
            parts["steps"] - parts["passes"]), ("outside the steps (query, setup)", episode - parts["steps"])]
    print(f"N = {args.members}, {args.precision} W, {steps} online steps, CPU time of the fastest of "
          f"{args.repeats} episodes:")
    for name, seconds in rows:
        print(f"  {name:42s} {seconds * 1e3:8.1f} ms  {100 * seconds / episode:5.1f} %  "
              f"{seconds / steps / args.members * 1e6:7.1f} µs per member and step")
    print(f"  {'episode':42s} {episode * 1e3:8.1f} ms  = {args.members / episode:.1f} member-episodes/s of CPU time")


if __name__ == "__main__":
    main()
