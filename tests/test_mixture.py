"""Task mixtures: each task drawn from one of several datasets, with config weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_config
from sklearn.datasets import load_digits

from evoplastic.config import ConfigError
from evoplastic.families import build_fitness
from evoplastic.families.paper.config import TaskConfig
from evoplastic.families.paper.data import load_dataset
from evoplastic.families.paper.tasks import MixtureSampler, TaskSampler


@pytest.fixture
def inverted_digits(tmp_path):
    """scikit-learn's digits with inverted pixels, as a second 64-pixel dataset: tasks tell where they came from."""
    digits = load_digits()
    path = tmp_path / "inverted.npz"
    np.savez(path, images=(1 - digits.images.reshape(len(digits.images), -1) / 16).astype(np.float32),
             labels=digits.target)
    return f"npz:{path}"


def sources(batch) -> list[str]:
    """'digits' or 'inverted' per task, read off the mean pixel (inverted images are mostly bright)."""
    return ["inverted" if float(x.mean()) > 0.5 else "digits" for x in batch.train_x]


def test_tasks_come_from_every_dataset_in_proportion_and_reproducibly(inverted_digits):
    cfg = TaskConfig(n_way=3, k_shot=4, n_query=2, relabel=True)
    samplers = [TaskSampler(load_dataset("digits"), cfg), TaskSampler(load_dataset(inverted_digits), cfg)]
    mixed = MixtureSampler(samplers, (3.0, 1.0))
    batch = mixed.sample(200, torch.Generator().manual_seed(0))
    share = sources(batch).count("digits") / 200
    assert 0.65 < share < 0.85 and batch.train_x.shape == (200, 12, 64)
    again = mixed.sample(200, torch.Generator().manual_seed(0))
    assert torch.equal(again.train_x, batch.train_x) and torch.equal(again.query_y, batch.query_y)
    only_first = MixtureSampler(samplers, (1.0, 0.0)).sample(20, torch.Generator().manual_seed(1))
    assert set(sources(only_first)) == {"digits"}


def test_a_mixture_config_trains_through_the_shared_fitness(inverted_digits):
    fitness = build_fitness(tiny_config(f"task.mixture=[digits,'{inverted_digits}']", "task.relabel=true",
                                        "tasks_per_step=6"))
    batch = fitness.draw(0, "train", 6)
    assert set(sources(batch.tasks)) == {"digits", "inverted"}
    ev = fitness(torch.tensor([[0.01, -0.02, 0.003]], dtype=torch.float64), 0)
    assert torch.isfinite(ev.fitness).all()


def test_mixture_errors_name_the_key_and_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="mixture_weights has 1 values for 2"):
        tiny_config("task.mixture=[digits,digits]", "task.mixture_weights=[1]")
    with pytest.raises(ConfigError, match="with task.mixture restrict each entry instead, e.g. emnist@0-36"):
        tiny_config("task.mixture=[digits,digits]", "task.classes=[0,1,2]")
    with pytest.raises(ConfigError, match=r"task.mixture entry 'digits@0-x': classes '0-x': write class ids"):
        tiny_config("task.mixture=[digits,digits@0-x]")
    with pytest.raises(ConfigError, match="not all 0"):
        tiny_config("task.mixture=[digits,digits]", "task.mixture_weights=[0,0]")
    wide = tmp_path / "wide.npz"
    np.savez(wide, images=np.zeros((60, 100), np.float32), labels=np.repeat(np.arange(3), 20))
    cfg = TaskConfig(n_way=3, k_shot=4, n_query=2)
    with pytest.raises(ValueError, match="images of one size"):
        MixtureSampler([TaskSampler(load_dataset("digits"), cfg), TaskSampler(load_dataset(f"npz:{wide}"), cfg)])


def test_a_mixture_entry_keeps_only_its_classes(inverted_digits):
    """digits@0-4 draws digit tasks from classes 0-4 only; the other dataset keeps all its classes."""
    fitness = build_fitness(tiny_config(f"task.mixture=[digits@0-4,'{inverted_digits}']", "tasks_per_step=40"))
    batch = fitness.draw(0, "train", 40)
    from_digits = [t for t, source in enumerate(sources(batch.tasks)) if source == "digits"]
    inverted = [t for t, source in enumerate(sources(batch.tasks)) if source == "inverted"]
    assert from_digits and inverted
    assert int(batch.tasks.classes[from_digits].max()) <= 4
    assert int(batch.tasks.classes[inverted].max()) > 4


def test_a_rule_meta_trained_on_a_mixture_evaluates_on_one_dataset(inverted_digits, tmp_path):
    from evoplastic.analysis.evaluate import main as evaluate
    from evoplastic.cli import main as cli

    runs = tmp_path / "runs"  # apart from the fixture's npz file
    assert cli(["train", "configs/quickstart.yaml", "--runs-dir", str(runs), "--no-progress", "steps=1",
                "eval_every=0", "final_eval_tasks=2", "network.dims=[64,12,10]", "task.dataset=digits",
                f"task.mixture=[digits@0-6,'{inverted_digits}']", "task.n_way=3", "task.k_shot=4",
                "task.n_query=2", "es.population_size=4", "dtype=float64"]) == 0
    run = next(runs.iterdir())
    assert evaluate([str(run), "--tasks", "4", "--classes", "7-9", "--no-progress", "--no-baselines"]) == 0
