"""Seeded tasks: deterministic per generator, right shapes, balanced labels, standardised points."""

import pytest
import torch

from evoplastic.families.kcap.config import DATASETS, KcapConfig
from evoplastic.families.kcap.data import random_projection, sample_tasks, standardise
from evoplastic.seeding import make_generator

CFG = KcapConfig(n_unlabelled=30, labels_per_class=3, n_query=7, n_features=6)


def draw(*keys, n_tasks=4, cfg=CFG):
    return sample_tasks(cfg, n_tasks, make_generator(*keys))


def test_same_generator_same_tasks_other_generator_other_tasks():
    a, b, c = draw(0), draw(0), draw(1)
    for name in ("unlabelled", "labelled_x", "query_x", "query_points", "dataset"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.unlabelled, c.unlabelled)


def test_shapes_and_balanced_labels():
    tasks = draw(2, n_tasks=5)
    assert tasks.n_tasks == 5
    assert tasks.unlabelled.shape == (5, 30, 6)
    assert tasks.labelled_x.shape == (5, 6, 6) and tasks.labelled_y.shape == (5, 6)
    assert tasks.query_x.shape == (5, 14, 6) and tasks.query_y.shape == (5, 14)
    assert tasks.query_points.shape == (5, 14, 2) and tasks.dataset.shape == (5,)
    assert (tasks.labelled_y.sum(1) == 3).all() and (tasks.query_y.sum(1) == 7).all()
    assert tasks.labelled_y.dtype == torch.long


def test_datasets_round_robin_from_random_offset():
    ids = draw(3, n_tasks=6).dataset.tolist()
    assert sorted(ids[:3]) == [0, 1, 2] and ids[3:] == ids[:3]
    offsets = {draw(seed, n_tasks=1).dataset.item() for seed in range(12)}
    assert offsets == {0, 1, 2}  # any dataset can come first
    only = draw(4, cfg=KcapConfig(datasets=("circles",), n_unlabelled=4, n_query=2, labels_per_class=1))
    assert (only.dataset == DATASETS.index("circles")).all()


def test_inputs_are_a_projection_of_standardised_points():
    cfg = KcapConfig(n_unlabelled=10, labels_per_class=1, n_query=200, n_features=6)
    tasks = draw(5, n_tasks=3, cfg=cfg)
    assert torch.linalg.matrix_rank(tasks.query_x[0]).item() == 2  # inputs span the points' plane
    # a task's points (stream + labelled + query) are standardised jointly, so the query part nearly
    points = tasks.query_points
    assert points.mean(1).abs().max() < 0.1 and (points.std(1) - 1).abs().max() < 0.1
    one = standardise(torch.randn(50, 2, generator=make_generator(8), dtype=torch.float64) * 3 + 1)
    assert torch.allclose(one.mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(one.std(0, unbiased=False), torch.ones(2, dtype=torch.float64))


def test_projection_entries_have_variance_half():
    p = random_projection(2000, make_generator(6))
    assert p.var().item() == pytest.approx(0.5, rel=0.05)


def test_to_and_subset():
    tasks = draw(7)
    sub = tasks.subset([2, 0]).to("cpu", torch.float32)
    assert sub.n_tasks == 2 and sub.unlabelled.dtype == torch.float32 and sub.query_y.dtype == torch.long
    assert torch.allclose(sub.unlabelled[1], tasks.unlabelled[0].float())
    assert tasks.subset(slice(1, 2)).n_tasks == 1
