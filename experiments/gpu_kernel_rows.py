"""On a GPU: the Triton single pass against its roofline and against the Inductor step.

Run by experiments/gpu_check.sh; each section prints as it completes and everything goes to --json:

1. ceilings: streaming bandwidth and float32 matmul rate, measured now (evoplastic.bench.roofline);
2. the row pass alone on the first layer of N members (read + write of W, z and u = W_tᵀ σ(z)),
   in GB/s and % of the streaming ceiling, for a few launch shapes (block_rows, num_warps);
3. episodes of N members on one task through each path (compiled, CUDA graph): member-episodes/s,
   % of the row's roofline (docs/performance.md), query accuracy and its change against float32 on
   the same task, θ and initial W, and any fallback the loop reported;
4. a profile of the compiled Triton step (which kernels take the step's time).

CPU smoke run of the same code (no GPU; kernels in Triton's interpreter):
  TRITON_INTERPRET=1 python experiments/gpu_kernel_rows.py --device cpu --eager --dims 20,9,7,5 --members 4 --steps 5
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evoplastic.bench import inner as bench  # noqa: E402
from evoplastic.bench.roofline import measure_machine, member_episode  # noqa: E402
from evoplastic.config import NetworkConfig, TaskConfig  # noqa: E402
from evoplastic.families.paper import fused, triton_step  # noqa: E402
from evoplastic.families.paper.inner import run_episode  # noqa: E402
from evoplastic.families.paper.network import make_activation  # noqa: E402
from evoplastic.families.paper.rules import expand_theta, resolve_terms, update_rank  # noqa: E402
from evoplastic.precision import matmul_precision, weight_dtype  # noqa: E402

PATHS = [("triton", "float16", True), ("triton", "float32", True), ("inductor", "float32", True),
         ("triton", "float16", False), ("triton", "bfloat16", True), ("inductor", "float16", True)]
"""(kernel, es.precision, torch.compile) of the episode rows, most wanted first (a time limit may cut the tail).
The uncompiled Triton row (its torch glue eager, still replayed from a CUDA graph) shows what torch.compile
around the kernel gains, or costs if Inductor copies the buffers the kernel writes."""
LAUNCH_SHAPES = [(None, None), (2, 4), (8, 8), (16, 8)]
"""(block_rows, num_warps) of the row-pass sweep (float16 W with u); (None, None) is row_blocks' default,
which alone is also timed for float16 without u and for float32 W."""


def sync_for(device: torch.device):
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def seconds_per_call(call, device: torch.device, reps: int) -> float:
    """Median seconds of reps calls after one warm-up (CUDA events on a GPU)."""
    call()
    sync_for(device)()
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            call()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            begin = time.perf_counter()
            call()
            times.append(time.perf_counter() - begin)
    return statistics.median(times)


def row_pass_sweep(args, device: torch.device, bandwidth: float) -> list[dict]:
    """The first layer's row pass alone, for N members, per storage, activation and launch shape."""
    rows, cols, c = args.dims[1], args.dims[0], args.members
    g = torch.Generator(device=device).manual_seed(0)
    out_rows = []
    for storage in ("float16", "float32"):
        w = (0.05 * torch.randn(c, rows, cols, generator=g, device=device)).to(weight_dtype(storage) or torch.float32)
        out = torch.empty_like(w)
        keep = torch.full((c,), 0.999, device=device)
        left, right = [0.01 * torch.randn(c, 3, n, generator=g, device=device) for n in (rows, cols)]
        v = torch.rand(1, cols, generator=g, device=device)
        moved = 2 * w.numel() * w.element_size()
        for act in (triton_step.ACT_CODES["softplus"], triton_step.ACT_NONE):
            shapes = LAUNCH_SHAPES if storage == "float16" and act else LAUNCH_SHAPES[:1]
            for block_rows, num_warps in shapes:
                call = functools.partial(triton_step.row_pass, w, keep, left, right, v=v, out=out, act=act,
                                         act_param=10.0, block_rows=block_rows, num_warps=num_warps)
                try:
                    seconds = seconds_per_call(call, device, args.reps)
                except Exception as err:  # noqa: BLE001 — one launch shape failing must not end the sweep
                    print(f"  {storage:9} act={act} block_rows={block_rows} num_warps={num_warps}: failed: {err}")
                    continue
                shape = triton_step.row_blocks(rows, cols, c, act, block_rows)
                row = {"storage": storage, "act": act, "block_rows": shape[0], "splits": shape[3],
                       "num_warps": num_warps or (8 if shape[1] >= 2048 else 4), "seconds": seconds,
                       "gb_per_s": moved / seconds / 1e9, "percent_of_stream": 100 * moved / seconds / bandwidth}
                out_rows.append(row)
                print(f"  {storage:9} {'u=Wᵀσ(z)' if act else 'z only  '} block_rows={row['block_rows']:>3} "
                      f"warps={row['num_warps']} splits={row['splits']}: {seconds * 1e3:8.3f} ms  "
                      f"{row['gb_per_s']:8.1f} GB/s  {row['percent_of_stream']:5.1f} % of streaming", flush=True)
        del w, out
    return out_rows


def episode_rows(args, device: torch.device, machine) -> list[dict]:
    """Each path's member-episodes/s on one task, with accuracy against the float32 rows."""
    terms, act = resolve_terms(args.rule), make_activation(NetworkConfig(dims=args.dims))
    case = bench.Case("compiled", args.members, args.k_shot, args.rule, tuple(args.dims), str(device), 0.0, 0,
                      dataset=args.dataset)
    tasks, init, data = bench.build_inputs(case, device)
    theta = bench.make_theta(terms, args.members).to(device)
    one_step = type(tasks)(tasks.train_x[:, :1], tasks.train_y[:, :1], tasks.query_x, tasks.query_y, tasks.classes)
    n_query, steps = tasks.query_x.shape[1], tasks.train_x.shape[1]
    print(f"  data: {data}; {steps} online steps + {n_query} query images; N = {args.members} members, one task")
    rows, accuracy = [], {}
    for kernel, precision, compiled in PATHS:
        if kernel == "inductor" and not (compiled and not args.eager):
            continue
        name = kernel if compiled and not args.eager else f"{kernel}-eager"
        options = fused.FusedOptions(compile=compiled and not args.eager, cuda_graph=device.type == "cuda",
                                     weight_dtype=weight_dtype(precision), kernel=kernel)
        with warnings.catch_warnings(record=True) as caught, torch.no_grad(), matmul_precision(precision, device):
            warnings.simplefilter("always")  # a Triton step that falls back warns: the row must say so
            begin = time.perf_counter()
            run_episode(theta, terms, one_step, init, act, compiled=options)
            sync_for(device)()
            compile_seconds = time.perf_counter() - begin
            episode = functools.partial(run_episode, theta, terms, tasks, init, act, compiled=options)
            times = bench.time_calls(episode, args.min_seconds, sync_for(device))
            result = episode()
        # a step that failed once is not tried again: every later row of that kernel silently runs the fallback
        fell_back = options.compile and (terms, act, init.direct, kernel) in fused._FAILED
        accuracy[name, precision] = result.accuracy.double().cpu()
        wbytes = torch.finfo(weight_dtype(precision) or torch.float32).bits // 8
        work = member_episode(tuple(args.dims), steps, n_query, "ideal" if kernel == "triton" else "compiled",
                              wbytes, args.members)
        rate = args.members / min(times)
        row = {"kernel": name, "precision": precision, "members": args.members, "rate_best": rate,
               "rate_median": args.members / statistics.median(times), "reps": len(times),
               "compile_seconds": compile_seconds, "roofline_percent": 100 * rate / machine.ceiling(work),
               "bytes_ceiling": machine.bandwidth / work.bytes, "loss": float(result.loss.mean()),
               "accuracy": float(result.accuracy.mean()),
               "fell_back": bool(fell_back),
               "warnings": [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]}
        rows.append(row)
        print(f"  {name:14}{precision:9}{rate:>11.1f} /s (median {row['rate_median']:.1f}, {len(times)} reps)  "
              f"{row['roofline_percent']:5.1f} % of its roofline ({row['bytes_ceiling']:.0f}/s)  accuracy "
              f"{row['accuracy']:.4f}  compile+1 step {compile_seconds:.1f} s"
              + ("  RAN THE FALLBACK (not this kernel)" if fell_back else "")
              + (f"  WARNED: {row['warnings']}" if row["warnings"] else ""), flush=True)
    print("  accuracy per member against float32 (same task, θ and initial W; points of 100):")
    for row in rows:
        for ref in (("triton", "float32"), ("inductor", "float32")):
            if ref in accuracy and ref != (row["kernel"], row["precision"]):
                delta = accuracy[row["kernel"], row["precision"]] - accuracy[ref]
                row[f"delta_vs_{ref[0]}_float32"] = {"mean": float(delta.mean()), "max_abs": float(delta.abs().max())}
                print(f"    {row['kernel']} {row['precision']} vs {ref[0]} float32: mean {100 * delta.mean():+.3f}, "
                      f"largest |Δ| of a member {100 * delta.abs().max():.1f}")
    return rows


def profile_step(args, device: torch.device, storage: str = "float16", steps: int = 10) -> str:
    """Top kernels of `steps` compiled Triton steps on N members (uncaptured), by device time."""
    terms, act = resolve_terms(args.rule), make_activation(NetworkConfig(dims=args.dims))
    case = bench.Case("compiled", args.members, args.k_shot, args.rule, tuple(args.dims), str(device), 0.0, 0,
                      dataset=args.dataset)
    tasks, init, _ = bench.build_inputs(case, device)
    theta_full = expand_theta(bench.make_theta(terms, args.members).to(device), terms)
    keep = 1 - theta_full[:, 3]
    dtype = weight_dtype(storage) or torch.float32
    weights = [w[0].to(dtype).expand(args.members, -1, -1).clone() for w in init.weights]
    feedback = None if init.feedback is None else [b[:1] for b in init.feedback]
    x = tasks.train_x[0, :steps]
    target = torch.nn.functional.one_hot(tasks.train_y[0, :steps], init.weights[-1].shape[1]).to(x.dtype)
    step = fused.step_function(terms, act, not args.eager, init.direct, kernel="triton")
    run = lambda: fused.online_phase(weights, feedback, theta_full, keep, x, target, act.derivative_from_output(x),
                                     step=step, rank=update_rank(terms))
    with torch.no_grad():
        run()
        sync_for(device)()
        activities = [torch.profiler.ProfilerActivity.CPU] + (
            [torch.profiler.ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with torch.profiler.profile(activities=activities) as prof:
            run()
            sync_for(device)()
    averages = prof.key_averages()
    for key in ("self_device_time_total", "self_cuda_time_total", "self_cpu_time_total"):
        try:
            return averages.table(sort_by=key, row_limit=20, max_name_column_width=60)
        except (AttributeError, KeyError, RuntimeError):
            continue
    return averages.table(row_limit=20)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ints = lambda text: [int(v) for v in text.replace(",", " ").split()]
    p.add_argument("--device", default="cuda")
    p.add_argument("--members", type=int, default=4096, help="N members on one task (default 4096)")
    p.add_argument("--dims", type=ints, default=list(NetworkConfig().dims))
    p.add_argument("--rule", default="pool")
    p.add_argument("--steps", type=int, default=None, help="online steps (default 250)")
    p.add_argument("--dataset", default=os.environ.get("EVOPLASTIC_DEVICE_DATA", ""))
    p.add_argument("--reps", type=int, default=20, help="launches timed per row-pass shape")
    p.add_argument("--min-seconds", type=float, default=1.5, help="time each episode row ≥ 2 reps and this long")
    p.add_argument("--sections", default="sweep,episodes,profile")
    p.add_argument("--eager", action="store_true", help="no torch.compile, no CUDA graph (CPU smoke run)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    args.k_shot = max(1, args.steps // bench.N_WAY) if args.steps else TaskConfig().k_shot
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    device = torch.device(args.device)
    sections = set(args.sections.split(","))
    figures: dict = {"options": {k: v for k, v in vars(args).items() if k != "json"} | {"json": str(args.json)},
                     "torch": torch.__version__, "device_name": torch.cuda.get_device_name(device)
                     if device.type == "cuda" else "cpu"}

    def save() -> None:
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2, default=str))

    begin = time.perf_counter()
    machine = measure_machine(device)
    figures["machine"] = dataclasses.asdict(machine)
    print(f"[1] ceilings on {figures['device_name']}: {machine.bandwidth / 1e9:.0f} GB/s streaming, "
          f"{machine.flop_rate / 1e12:.1f} TFLOP/s float32 matmul ({time.perf_counter() - begin:.0f} s)", flush=True)
    save()
    if "sweep" in sections:
        print(f"[2] row pass alone: layer 1 ({args.dims[1]}×{args.dims[0]}) of {args.members} members, "
              "one read + one write of W per launch", flush=True)
        figures["row_pass"] = row_pass_sweep(args, device, machine.bandwidth)
        save()
    if "episodes" in sections:
        print(f"[3] episodes, rule {args.rule}, dims {'-'.join(map(str, args.dims))} "
              f"({'eager' if args.eager else 'compiled + CUDA graph'})", flush=True)
        figures["episodes"] = episode_rows(args, device, machine)
        save()
    if "profile" in sections:
        print("[4] profile of 10 compiled Triton steps (float16 W, uncaptured)", flush=True)
        try:
            table = profile_step(args, device)
        except Exception as err:  # noqa: BLE001 — the rows above are saved; say why the profile is missing
            table = f"profile failed: {type(err).__name__}: {str(err).strip().splitlines()[0] if str(err) else ''}"
        figures["profile"] = table
        print(table, flush=True)
        save()
    print(f"done in {time.perf_counter() - begin:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
