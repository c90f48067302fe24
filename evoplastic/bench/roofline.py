"""Roofline of the no-grad inner loop: work per member-episode and the machine's ceilings.

docs/performance.md derives the counts: an online step costs 13 FLOPs per weight (forward,
feedback, u = Wᵀy, rank-3 update, decay) and, per formulation, a number of passes over W;
scoring a query image costs 2 FLOPs per weight. ``measure_machine`` times a streaming
in-place scale (bandwidth) and a float32 matrix product (FLOP rate) on the device, so that
every measured rate can be stated as a fraction of min(FLOP ceiling, bandwidth ceiling).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from evoplastic.families.paper.network import n_weights
from evoplastic.precision import cuda_tf32

FLOPS_PER_WEIGHT_STEP = 13
FLOPS_PER_WEIGHT_QUERY = 2
PASSES = {"eager": 6.0, "compiled": 4.0, "ideal": 2.0}
"""Passes over W per online step (reads + writes, each 1 × W): eager loop (forward, u, decay read
and write, update read and write), compiled step (3 reads + 1 write), one fused read + write."""


@dataclass(frozen=True)
class Work:
    """FLOPs and bytes moved by one member-episode."""

    flops: float
    bytes: float


@dataclass(frozen=True)
class Machine:
    """Measured streaming bandwidth (bytes/s) and float32 matmul rate (FLOP/s) of a device."""

    bandwidth: float
    flop_rate: float
    device: str

    def ceiling(self, work: Work) -> float:
        """Member-episodes/s that neither the FLOP rate nor the bandwidth would allow to be beaten."""
        return min(self.flop_rate / work.flops, self.bandwidth / work.bytes)


def member_episode(dims: tuple[int, ...], steps: int, n_query: int, formulation: str = "compiled",
                   weight_bytes: int = 4, members_per_feedback: int = 8) -> Work:
    """Work of one member-episode: steps online steps and n_query query images.

    The fixed feedback B (weight_bytes 4) is read once per step by each group of
    members_per_feedback members of a task that share it.
    """
    p = n_weights(dims)
    flops = steps * FLOPS_PER_WEIGHT_STEP * p + n_query * FLOPS_PER_WEIGHT_QUERY * p
    per_step = PASSES[formulation] * p * weight_bytes + p * 4 / max(members_per_feedback, 1)
    return Work(flops, steps * per_step)


def _best_seconds(call, sync, repeats: int) -> float:
    """Least wall time of repeats calls after one warm-up call."""
    call()
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def _stream_bandwidth(device: torch.device, numel: int, sync, repeats: int) -> float:
    """Bytes/s of an in-place scale (one read and one write per element) of numel float32 values."""
    buffer = torch.ones(numel, device=device)
    return 2 * numel * 4 / _best_seconds(lambda: buffer.mul_(1.0), sync, repeats)


def measure_machine(device: torch.device, repeats: int = 5) -> Machine:
    """Bandwidth of an in-place scale over a buffer far larger than the caches (read + write), and
    the float32 matmul rate (TF32 off), best of repeats, in the current thread setting."""
    cuda = device.type == "cuda"
    sync = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)
    bandwidth = _stream_bandwidth(device, 2**27 if cuda else 2**26, sync, repeats)  # 512 MiB GPU, 256 MiB CPU
    size = 8192 if cuda else 1024
    a, b = torch.rand(size, size, device=device), torch.rand(size, size, device=device)
    with cuda_tf32(False):
        seconds = _best_seconds(lambda: a @ b, sync, repeats)
    return Machine(bandwidth, 2 * size**3 / seconds, str(device))
