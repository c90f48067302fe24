"""The cost of spiking: member-episodes/s and memory per member of the spiking family beside the paper family.

python experiments/spiking_bench.py [--members 1 8] [--min-seconds 3]
Both families at the paper's EMNIST shape (784-170-130-100-70-47, 5-way tasks of 50 samples per class, 'bio'
terms, fa), timed through their Problems as one ES generation runs (evoplastic.bench.family), each case in a
fresh child process; one more call's peak resident memory above what the process held before it (peak reset
through /proc/self/clear_refs) gives MiB per member as the slope between N values. Last, one Adam episode (θ
requires grad, one task) of each family: its time and peak memory, which the autograd graph dominates.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    "paper": ["task.dataset=emnist", "rule.terms=bio"],
    "spiking": ["task.dataset=emnist", "spiking.terms=[bio]"],
}


def status_mib(key: str) -> float:
    """VmHWM (peak) or VmRSS (now) of this process in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def episode_mib(run) -> float:
    """Peak resident memory of run() above the memory held before it (the peak is reset first, Linux ≥ 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")
    before = status_mib("VmRSS")
    run()
    return status_mib("VmHWM") - before


def child(family: str, members: int, min_seconds: float, autograd: bool) -> dict:
    import torch

    from evoplastic.bench.family import FamilyCase, family_config, measure_family, member_theta
    from evoplastic.families import get_family

    torch.set_num_threads(1)
    case = FamilyCase(family, members, "cpu", min_seconds, 1, tuple(CASES[family]))
    cfg = family_config(case)
    problem = get_family(family).build_problem(cfg)
    batch = problem.draw(0, "bench", 1)
    theta = member_theta(cfg, members).to(problem.dtype)
    if not autograd:
        result = measure_family(case)

        def plain() -> None:
            with torch.no_grad():
                problem.scores(theta, batch)

        return {"seconds": result.seconds_median, "rate": result.rate_median, "episode_mib": episode_mib(plain)}
    theta.requires_grad_(True)
    start = []

    def graph() -> None:
        start.append(time.perf_counter())
        loss, _ = problem.scores(theta, batch)
        loss.sum().backward()
        start.append(time.perf_counter())

    mib = episode_mib(graph)
    return {"seconds": start[1] - start[0], "episode_mib": mib, "grad_finite": bool(torch.isfinite(theta.grad).all())}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--members", type=int, nargs="+", default=[1, 8])
    p.add_argument("--min-seconds", type=float, default=3.0)
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    if args.child:
        family, members, autograd = args.child
        print(json.dumps(child(family, int(members), args.min_seconds, autograd == "1")))
        return
    rows = []
    for family in CASES:
        for members in args.members:
            for autograd in ([False, True] if members == 1 else [False]):
                out = subprocess.run([sys.executable, __file__, "--min-seconds", str(args.min_seconds), "--child",
                                      family, str(members), "1" if autograd else "0"],
                                     capture_output=True, text=True, check=True)
                row = {"family": family, "members": members, "autograd": autograd, **json.loads(out.stdout)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    for family in CASES:
        plain = {r["members"]: r for r in rows if r["family"] == family and not r["autograd"]}
        lo, hi = min(plain), max(plain)
        per_member = (plain[hi]["episode_mib"] - plain[lo]["episode_mib"]) / (hi - lo) if hi > lo else float("nan")
        (graph,) = [r for r in rows if r["family"] == family and r["autograd"]]
        print(f"{family}: {plain[hi]['rate']:.2f} member-episodes/s at N={hi} ({plain[lo]['rate']:.2f} at N={lo}); "
              f"{per_member:.2f} MiB per member (episode peak {plain[lo]['episode_mib']:.1f} MiB at N={lo}, "
              f"{plain[hi]['episode_mib']:.1f} at N={hi}); one autograd episode {graph['seconds']:.1f} s, "
              f"{graph['episode_mib']:.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
