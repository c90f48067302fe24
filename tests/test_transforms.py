"""Changes of input statistics: stroke width, contrast, polarity, per-sample norms and augmentation."""

from __future__ import annotations

import pytest
import torch

from evoplastic.families.paper.config import augment_levels
from evoplastic.families.paper.transforms import Transform, augment_tasks, normalise_inputs


def cross() -> torch.Tensor:
    """A 5×5 image with one lit pixel in the middle, flattened."""
    image = torch.zeros(5, 5)
    image[2, 2] = 1.0
    return image.reshape(1, 25)


def test_dilate_and_erode_are_3x3_max_and_min_filters():
    once = Transform.parse("dilate:1").apply(cross()).reshape(5, 5)
    assert once[1:4, 1:4].eq(1).all() and once.sum() == 9
    twice = Transform.parse("dilate:2").apply(cross()).reshape(5, 5)
    assert twice.eq(1).all()
    assert torch.equal(Transform.parse("erode:1").apply(once.reshape(1, 25)), cross())  # opening of a 3×3 block
    assert Transform.parse("erode:1").apply(cross()).sum() == 0  # a single pixel is thinner than the filter


def test_contrast_invert_and_none():
    x = torch.tensor([[0.0, 0.2, 0.6, 1.0]])
    assert torch.allclose(Transform.parse("contrast:2").apply(x), torch.tensor([[0.0, 0.4, 1.0, 1.0]]))
    assert torch.allclose(Transform.parse("contrast:0.5").apply(x), x / 2)
    assert torch.allclose(Transform.parse("invert").apply(x), 1 - x)
    assert Transform.parse("none").apply(x) is x


@pytest.mark.parametrize("text, message", [("blur:1", "choose one of"), ("erode:1.5", "whole number"),
                                           ("contrast:-1", "must be > 0"), ("dilate:x", "must be a number")])
def test_bad_transforms_name_the_fix(text, message):
    with pytest.raises(ValueError, match=message):
        Transform.parse(text)


def test_erode_needs_square_images():
    with pytest.raises(ValueError, match="not square"):
        Transform.parse("erode:1").apply(torch.zeros(1, 10))


def test_input_norms():
    x = torch.rand(3, 7, 16, dtype=torch.float64)
    unit = normalise_inputs(x, "unit", 10.0)
    assert torch.allclose(unit.norm(dim=-1), torch.full((3, 7), 10.0, dtype=torch.float64))
    z = normalise_inputs(x, "zscore")
    assert torch.allclose(z.mean(-1), torch.zeros(3, 7, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(z.std(-1), torch.ones(3, 7, dtype=torch.float64))
    assert torch.allclose(normalise_inputs(x * 3, "unit"), normalise_inputs(x, "unit"))  # brightness is gone


def test_augmentation_draws_one_transform_per_task_reproducibly():
    levels = augment_levels(("intensity",))
    train, query = torch.rand(6, 4, 25), torch.rand(6, 2, 25)
    a = augment_tasks(train, query, torch.Generator().manual_seed(3), levels)
    b = augment_tasks(train, query, torch.Generator().manual_seed(3), levels)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    for t in range(6):  # each task's train and query images went through the same transform
        matches = [lv for lv in levels if torch.equal(Transform.parse(lv).apply(train[t]), a[0][t])
                   and torch.equal(Transform.parse(lv).apply(query[t]), a[1][t])]
        assert matches
    with pytest.raises(ValueError, match="task.augment entry 'blur'"):
        augment_levels(("blur",))
