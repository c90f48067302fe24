"""KcapConfig defaults validate, and every bad value is a ValueError naming its key."""

import dataclasses

import pytest

from evoplastic.families.kcap.config import POOL_TERMS, KcapConfig, validate
from evoplastic.families.kcap.rules import POOL


def test_defaults_are_valid():
    cfg = KcapConfig()
    assert validate(cfg) is cfg
    assert tuple(POOL) == POOL_TERMS


@pytest.mark.parametrize("change, key", [
    ({"datasets": ("moons", "spirals")}, "datasets"),
    ({"datasets": ()}, "datasets"),
    ({"plastic": ("M_out",)}, "plastic"),
    ({"rule": "transformer"}, "rule"),
    ({"terms": ("hebb", "bogus")}, "terms"),
    ({"terms": ("hebb", "hebb")}, "terms"),
    ({"normalise": "l1"}, "normalise"),
    ({"objective": "accuracy"}, "objective"),
    ({"cap": 0}, "cap"),
    ({"cap": 9, "n_hidden": 8}, "cap"),
    ({"n_unlabelled": 1}, "n_unlabelled"),
    ({"recurrent_steps": -1}, "recurrent_steps"),
    ({"probe_ridge": 0.0}, "probe_ridge"),
    ({"moons_noise": -0.1}, "moons_noise"),
    ({"circles_factor": 1.5}, "circles_factor"),
    ({"rule": "mlp", "mlp_hidden": 1}, "mlp_hidden"),
])
def test_bad_values_name_the_key(change, key):
    with pytest.raises(ValueError, match=f"kcap.{key}"):
        validate(dataclasses.replace(KcapConfig(), **change))


def test_mlp_form_ignores_terms():
    validate(KcapConfig(rule="mlp", terms=("anything",)))
