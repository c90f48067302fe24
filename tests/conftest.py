"""Shared fixtures: tiny, fast experiment configs on the bundled digits data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evoplastic.config import ExperimentConfig, load_config
from evoplastic.families.paper.data import DATA_ENV

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
os.environ.setdefault(DATA_ENV, str(SHARED_DATA))  # named datasets (configs' task.dataset=emnist) read from here


def tiny_config(*overrides: str) -> ExperimentConfig:
    """A 3-way, 6-shot digits experiment on a 64-12-10 network: episodes take milliseconds."""
    base = [
        "name=tiny", "steps=3", "tasks_per_step=2", "eval_every=0", "eval_tasks=4", "final_eval_tasks=6",
        "network.dims=[64,12,10]", "task.dataset=digits", "task.n_way=3", "task.k_shot=6", "task.n_query=3",
        "rule.terms=bio", "es.population_size=6", "dtype=float64",
    ]
    return load_config(None, base + list(overrides))


@pytest.fixture
def tiny():
    return tiny_config


# Tiny networks gain nothing from intra-op threads, and on a loaded 2-core machine two
# threads per process made them up to 100x slower: tests run single-threaded.
import torch  # noqa: E402

torch.set_num_threads(1)
