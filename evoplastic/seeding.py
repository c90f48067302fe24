"""Explicit random streams derived from (run seed, step, purpose): no global RNG state.

Any process can rebuild the same tasks and initial weights from the same keys, which is
what lets MPI ranks agree while only the population and losses cross the wire.
"""

from __future__ import annotations

import hashlib

import torch


def derive_seed(*keys: int | str) -> int:
    """A 63-bit seed that depends on every key (stable across runs, platforms and ranks)."""
    digest = hashlib.sha256("/".join(str(k) for k in keys).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def make_generator(*keys: int | str) -> torch.Generator:
    """A CPU torch.Generator seeded from the keys."""
    return torch.Generator().manual_seed(derive_seed(*keys))
