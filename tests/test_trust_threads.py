"""train's threads setting: applied to torch, recorded in meta.json, 1 by default."""

from __future__ import annotations

import json

import pytest
import torch

from evoplastic.cli import main
from evoplastic.config import ConfigError, load_config

TINY = ["steps=1", "eval_every=0", "final_eval_tasks=2", "network.dims=[64,12,10]", "task.n_way=3", "task.k_shot=5",
        "task.n_query=3", "es.population_size=4", "--no-progress"]


@pytest.fixture(autouse=True)
def one_thread_afterwards():
    yield
    torch.set_num_threads(1)


@pytest.mark.parametrize("setting, environment, expected", [("threads=2", None, 2), (None, None, 1), (None, "2", 2)])
def test_threads_are_applied_and_recorded(setting, environment, expected, tmp_path, monkeypatch):
    """threads=N wins; 0 (the default) takes $OMP_NUM_THREADS when set, else 1."""
    if environment is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", environment)
    torch.set_num_threads(3)
    args = [setting] if setting else []
    assert main(["train", "configs/quickstart.yaml", *TINY, *args, "--runs-dir", str(tmp_path)]) == 0
    (run,) = tmp_path.iterdir()
    assert json.loads((run / "meta.json").read_text())["torch_threads"] == expected
    assert torch.get_num_threads() == expected


def test_negative_threads_are_a_config_error():
    with pytest.raises(ConfigError, match="threads must be ≥ 0"):
        load_config(None, ["threads=-1"])
