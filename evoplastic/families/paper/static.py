"""A chunk's whole online phase on fixed buffers, captured once as a CUDA graph and replayed.

On a GPU a fused step is ~15 short kernels; launching them from Python costs about as much
as running them for a few hundred members (docs/performance.md). Capturing all S steps of
a chunk in one ``torch.cuda.CUDAGraph`` removes that: later chunks of the same shapes copy
their inputs into the same buffers and replay the graph. On CPU the same buffer code runs
directly (no capture), which is how the tests check it without a GPU.

Captured phases are kept per shapes, the MAX_PHASES most recently used; each holds its
chunk's weights and the graph's memory pool. ``clear()`` frees them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch

MAX_PHASES = 4
"""Captured phases kept at once (a population's full chunks and its last, smaller one fit)."""

_PHASES: OrderedDict[tuple, StaticPhase] = OrderedDict()
_FAILED: set[tuple] = set()
"""(terms, activation, direct) whose capture failed once: they run uncaptured without trying again."""


class CaptureError(RuntimeError):
    """The online phase could not be captured as a CUDA graph (the cause is chained)."""


class StaticPhase:
    """Buffers for c pairs of one task (θ, keep, W, B, S samples) and the online phase on them.

    phase(weights, feedback, theta_full, keep, x, target, slope) updates weights in place
    (fused.online_phase with its step bound) and allocates nothing that outlives it.
    """

    def __init__(self, phase: Callable, theta_full: torch.Tensor, init_weights: list[torch.Tensor],
                 feedback: list[torch.Tensor] | None, x: torch.Tensor, target: torch.Tensor,
                 weight_dtype: torch.dtype):
        c = theta_full.shape[0]
        self.phase = phase
        self.theta_full, self.keep = torch.zeros_like(theta_full), theta_full.new_ones(c)
        self.weights = [w.new_zeros(c, *w.shape, dtype=weight_dtype) for w in init_weights]
        self.feedback = None if feedback is None else [torch.zeros_like(b) for b in feedback]
        self.x, self.target, self.slope = torch.zeros_like(x), torch.zeros_like(target), torch.zeros_like(x)
        self.graph: torch.cuda.CUDAGraph | None = None

    def run(self) -> None:
        """The online phase on the buffers, in place on self.weights."""
        self.phase(self.weights, self.feedback, self.theta_full, self.keep, self.x, self.target, self.slope)

    def capture(self) -> None:
        """Warm up (compiling the step) on a side stream, then record the phase as one CUDA graph."""
        try:
            side = torch.cuda.Stream(device=self.x.device)
            side.wait_stream(torch.cuda.current_stream(self.x.device))
            with torch.cuda.stream(side):
                self.run()
            torch.cuda.current_stream(self.x.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self.run()
        except Exception as err:  # noqa: BLE001 — the caller falls back to the uncaptured loop
            raise CaptureError("CUDA graph capture failed") from err
        self.graph = graph

    def __call__(self, theta_full: torch.Tensor, keep: torch.Tensor, init_weights: list[torch.Tensor],
                 feedback: list[torch.Tensor] | None, x: torch.Tensor, target: torch.Tensor,
                 slope: torch.Tensor) -> list[torch.Tensor]:
        """Adapted weights of this chunk: the buffers themselves, valid until the next call."""
        if self.x.device.type == "cuda" and self.graph is None:
            self.capture()  # before loading: the warm-up run overwrites the buffers
        self.theta_full.copy_(theta_full)
        self.keep.copy_(keep)
        for buffer, w in zip(self.weights, init_weights):
            buffer.copy_(w.expand_as(buffer))
        for buffer, b in zip(self.feedback or [], feedback or []):
            buffer.copy_(b)
        self.x.copy_(x)
        self.target.copy_(target)
        self.slope.copy_(slope)
        if self.graph is None:
            self.run()
        else:
            self.graph.replay()
        return self.weights


def usable(key: tuple) -> bool:
    """Whether this (terms, activation, direct) may use fixed-buffer phases (its capture has not failed)."""
    return key not in _FAILED


def mark_failed(key: tuple) -> None:
    """Stop capturing for this (terms, activation, direct) and free what its phases hold."""
    _FAILED.add(key)
    for cached in [k for k in _PHASES if k[0] == key]:
        del _PHASES[cached]


def clear() -> None:
    """Free every cached phase (its buffers and graph memory)."""
    _PHASES.clear()


def phase_runner(phase: Callable, compiled: bool, key: tuple, weight_dtype: torch.dtype) -> Callable:
    """A learn_one for fused._learn_chunks that reuses one StaticPhase per shapes (key: terms, activation, direct)."""

    def learn_one(theta_full: torch.Tensor, keep: torch.Tensor, init_weights: list[torch.Tensor],
                  feedback: list[torch.Tensor] | None, x: torch.Tensor, target: torch.Tensor,
                  slope: torch.Tensor) -> list[torch.Tensor]:
        shapes = (theta_full.shape, x.shape, target.shape, tuple(w.shape for w in init_weights), feedback is None)
        cache_key = (key, compiled, shapes, theta_full.dtype, weight_dtype, theta_full.device)
        cached = _PHASES.pop(cache_key, None)
        if cached is None:
            cached = StaticPhase(phase, theta_full, init_weights, feedback, x, target, weight_dtype)
        _PHASES[cache_key] = cached  # most recently used last
        while len(_PHASES) > MAX_PHASES:
            _PHASES.popitem(last=False)
        return cached(theta_full, keep, init_weights, feedback, x, target, slope)

    return learn_one
