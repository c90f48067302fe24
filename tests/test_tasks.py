"""TaskSampler: shapes, class draws, label conventions, disjoint splits and seeding."""

import pytest
import torch

from evoplastic.families.paper.config import TaskConfig
from evoplastic.families.paper.data import Dataset
from evoplastic.families.paper.tasks import TaskBatch, TaskSampler

N_CLASSES, PER_CLASS = 6, 10


def toy_dataset() -> Dataset:
    """Image i holds (i, label, noise): rows of a task can be traced back to the dataset."""
    labels = torch.arange(N_CLASSES).repeat(PER_CLASS)  # interleaved, not grouped
    index = torch.arange(len(labels), dtype=torch.float32)
    noise = torch.rand(len(labels), generator=torch.Generator().manual_seed(0))
    images = torch.stack([index, labels.float(), noise], 1)
    return Dataset("toy", images, labels, tuple("abcdef"))


def sampler(**overrides) -> TaskSampler:
    values = dict(dataset="toy", n_way=3, k_shot=4, n_query=2) | overrides
    return TaskSampler(toy_dataset(), TaskConfig(**values))


def source_rows(x: torch.Tensor) -> torch.Tensor:
    return x[..., 0].long()


def draw(n_tasks=5, seed=0, **overrides) -> TaskBatch:
    return sampler(**overrides).sample(n_tasks, torch.Generator().manual_seed(seed))


def test_shapes():
    tasks = draw(n_tasks=3)
    assert tasks.n_tasks == 3
    assert tasks.train_x.shape == (3, 12, 3) and tasks.train_y.shape == (3, 12)
    assert tasks.query_x.shape == (3, 6, 3) and tasks.query_y.shape == (3, 6)
    assert tasks.classes.shape == (3, 3)
    assert tasks.train_y.dtype == torch.int64 and tasks.query_y.dtype == torch.int64


def test_classes_drawn_without_replacement():
    tasks = draw(n_tasks=40, n_way=5)
    for row in tasks.classes.tolist():
        assert len(set(row)) == 5
    assert set(tasks.classes.unique().tolist()) == set(range(N_CLASSES))  # every class gets used


def test_labels_are_dataset_class_ids():
    tasks, labels = draw(), toy_dataset().labels
    for t in range(tasks.n_tasks):
        for x, y in ((tasks.train_x[t], tasks.train_y[t]), (tasks.query_x[t], tasks.query_y[t])):
            assert torch.equal(y, labels[source_rows(x)])
            assert set(y.tolist()) == set(tasks.classes[t].tolist())


def test_relabel_maps_classes_to_their_position():
    tasks, labels = draw(relabel=True), toy_dataset().labels
    for t in range(tasks.n_tasks):
        assert set(tasks.train_y[t].tolist()) == {0, 1, 2}
        assert torch.equal(tasks.classes[t][tasks.train_y[t]], labels[source_rows(tasks.train_x[t])])
        assert torch.equal(tasks.classes[t][tasks.query_y[t]], labels[source_rows(tasks.query_x[t])])


def test_each_class_has_k_shot_train_and_n_query_query_images():
    tasks = draw()
    for t in range(tasks.n_tasks):
        for c in tasks.classes[t].tolist():
            assert int((tasks.train_y[t] == c).sum()) == 4
            assert int((tasks.query_y[t] == c).sum()) == 2


def test_train_stream_is_shuffled_not_grouped_by_class():
    tasks = draw(n_tasks=5)
    for t in range(tasks.n_tasks):
        changes = int((tasks.train_y[t, 1:] != tasks.train_y[t, :-1]).sum())
        assert changes > 2  # grouped by class would change label exactly n_way - 1 times


def test_query_and_train_images_are_disjoint_and_unique():
    tasks = draw(n_tasks=10)
    for t in range(tasks.n_tasks):
        train, query = set(source_rows(tasks.train_x[t]).tolist()), set(source_rows(tasks.query_x[t]).tolist())
        assert len(train) == 12 and len(query) == 6
        assert not train & query


def test_class_subset_is_respected():
    tasks = draw(n_tasks=20, n_way=2, classes=(1, 3, 5))
    assert set(tasks.classes.unique().tolist()) <= {1, 3, 5}
    assert set(tasks.train_y.unique().tolist()) <= {1, 3, 5}


def test_seeded_determinism():
    a, b, c = draw(seed=3), draw(seed=3), draw(seed=4)
    for field in ("train_x", "train_y", "query_x", "query_y", "classes"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert not torch.equal(a.train_x, c.train_x)


def test_too_few_images_per_class():
    with pytest.raises(ValueError, match=r"has 10 images but k_shot \+ n_query = 11; lower task.k_shot"):
        sampler(k_shot=9, n_query=2)


def test_more_ways_than_classes():
    with pytest.raises(ValueError, match=r"n_way=4 needs at least that many classes.*lower task.n_way"):
        sampler(n_way=4, classes=(0, 1, 2))
    with pytest.raises(ValueError, match="n_way=7"):
        sampler(n_way=7)


def test_unknown_class_in_subset():
    with pytest.raises(ValueError, match=r"task.classes \[9\] do not occur in dataset toy"):
        sampler(classes=(0, 9))


def test_to_casts_images_and_keeps_labels_integer():
    tasks = draw(n_tasks=2)
    cast = tasks.to("cpu", torch.float64)
    assert cast.train_x.dtype == torch.float64 and cast.train_y.dtype == torch.int64


def test_class_replacement_emulates_the_published_sampler():
    """With replacement some tasks repeat a class, and a repeated class repeats its images."""
    from evoplastic.families.paper.config import TaskConfig
    from evoplastic.families.paper.data import load_dataset
    from evoplastic.families.paper.tasks import TaskSampler

    sampler = TaskSampler(load_dataset("digits"), TaskConfig(n_way=5, k_shot=3, n_query=2, class_replacement=True))
    batch = sampler.sample(40, torch.Generator().manual_seed(0))
    repeated = [t for t in range(40) if len(set(batch.classes[t].tolist())) < 5]
    assert repeated, "40 tasks of 5 draws from 10 classes should repeat a class somewhere"
    t = repeated[0]
    assert len(torch.unique(batch.query_x[t], dim=0)) < batch.query_x.shape[1]
