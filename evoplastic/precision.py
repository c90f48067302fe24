"""Numeric precision of the ES inner loop, traded for speed on GPUs.

float32 is the reference. ``tf32`` lets CUDA matrix products (feedback errors, query scoring,
the eager loop's products) use TensorFloat-32; the compiled step's weight passes are
reductions and stay float32. ``bfloat16``/``float16`` store W in 16 bits during the online
phase (the arithmetic stays float32), halving the bytes of the memory-bound step; small
updates lose digits, so ``evoplastic bench`` measures the accuracy cost against float32.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

PRECISIONS = ("float32", "tf32", "bfloat16", "float16")
WEIGHT_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def weight_dtype(precision: str) -> torch.dtype | None:
    """Storage dtype of W for a precision, None to keep the compute dtype."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    return WEIGHT_DTYPES.get(precision)


@contextmanager
def matmul_precision(precision: str, device: torch.device) -> Iterator[None]:
    """Within the block, CUDA float32 matmuls use TF32 when precision is 'tf32'; restored after."""
    if precision != "tf32" or device.type != "cuda":
        yield
        return
    with cuda_tf32(True):
        yield


@contextmanager
def cuda_tf32(enabled: bool) -> Iterator[None]:
    """CUDA float32 matmuls in TF32 (or strictly float32) within the block; the setting is restored after."""
    matmul = torch.backends.cuda.matmul
    new_api = hasattr(matmul, "fp32_precision")  # torch ≥ 2.9; allow_tf32 before
    before = matmul.fp32_precision if new_api else matmul.allow_tf32
    if new_api:
        matmul.fp32_precision = "tf32" if enabled else "ieee"
    else:
        matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        if new_api:
            matmul.fp32_precision = before
        else:
            matmul.allow_tf32 = before
