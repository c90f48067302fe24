"""Coefficient rules typed by hand: θ layout, widening of the pool, and one-line errors for bad names."""

import dataclasses

import pytest
import torch

from evoplastic.families.kcap.config import KcapConfig
from evoplastic.families.kcap.data import sample_tasks
from evoplastic.families.kcap.metrics import score
from evoplastic.families.kcap.network import init_state
from evoplastic.families.kcap.rules import initial_theta, theta_labels
from evoplastic.families.kcap.rulespec import is_rule_spec, parse_rule
from evoplastic.seeding import make_generator


def test_start_rule_is_the_family_start():
    label, theta, cfg = parse_rule("kcap:hebb=0.01")
    assert label == "kcap:hebb=0.01" and cfg == KcapConfig()
    assert torch.equal(torch.tensor(theta, dtype=torch.float64), initial_theta(cfg, torch.float64))


def test_zero_rule_and_unnamed_coordinates_are_zero():
    _, theta, cfg = parse_rule("kcap:hebb=0")
    assert theta == (0.0,) * 4 and cfg.terms == KcapConfig().terms
    _, theta, _ = parse_rule("kcap:oja=-0.5, decay=2e-3")
    assert dict(zip(KcapConfig().terms, theta)) == {"hebb": 0.0, "covariance": 0.0, "oja": -0.5, "decay": 2e-3}


def test_prefixes_give_one_block_per_matrix_and_widen_the_pool():
    _, theta, cfg = parse_rule("kcap:in.hebb=0.01,rec.pre=-0.02")
    assert cfg.per_matrix and cfg.terms == ("hebb", "covariance", "oja", "decay", "pre")
    named = {k: v for k, v in zip(theta_labels(cfg), theta) if v}
    assert named == {"M_in/hebb": 0.01, "M_rec/pre": -0.02} and len(theta) == 10


def test_unprefixed_name_sets_every_block_and_base_layout_is_kept():
    base = KcapConfig(terms=("pre", "hebb"), per_matrix=True)
    _, theta, cfg = parse_rule("kcap:hebb=0.5,M_rec.pre=1", base)
    assert cfg.terms == ("pre", "hebb")
    assert dict(zip(theta_labels(cfg), theta)) == {"M_in/pre": 0.0, "M_in/hebb": 0.5, "M_rec/pre": 1.0,
                                                   "M_rec/hebb": 0.5}

    _, _, from_mlp = parse_rule("kcap:oja=1", dataclasses.replace(base, rule="mlp"))
    assert from_mlp.rule == "pool" and from_mlp.terms == ("oja",)


def test_shared_rule_scores_like_the_same_rule_per_matrix():
    cfg = KcapConfig(n_unlabelled=20, n_query=10, n_hidden=16, cap=3)
    tasks = sample_tasks(cfg, 2, make_generator(0)).to("cpu", torch.float64)
    init = init_state(cfg, 2, make_generator(1), torch.float64)
    out = []
    for spec in ("kcap:hebb=0.02,oja=0.01", "kcap:in.hebb=0.02,rec.hebb=0.02,in.oja=0.01,rec.oja=0.01"):
        _, theta, own = parse_rule(spec, cfg)
        out.append(score(torch.tensor(theta, dtype=torch.float64).repeat(2, 1), tasks, init, own, False))
    assert torch.allclose(out[0]["probe_loss"], out[1]["probe_loss"])


@pytest.mark.parametrize("spec, fragment", [
    ("hebb=0.01", "must start with 'kcap:'"),
    ("kcap:", "no coefficients"),
    ("kcap:hebbb=0.01", "unknown term 'hebbb'"),
    ("kcap:out.hebb=1", "unknown matrix prefix 'out'"),
    ("kcap:hebb", "has no '='"),
    ("kcap:hebb=x", "'x' is not a number"),
    ("kcap:hebb=nan", "not finite"),
    ("kcap:hebb=1,in.hebb=2", "set twice"),
])
def test_bad_specs_are_one_line_value_errors(spec, fragment):
    with pytest.raises(ValueError, match=fragment) as err:
        parse_rule(spec)
    assert "\n" not in str(err.value) and "kcap:hebb=0.01" in str(err.value)


def test_prefix_of_a_frozen_matrix_is_refused():
    with pytest.raises(ValueError, match="M_rec is not plastic"):
        parse_rule("kcap:rec.hebb=1", dataclasses.replace(KcapConfig(), plastic=("M_in",)))


def test_is_rule_spec():
    assert is_rule_spec("kcap:hebb=1") and not is_rule_spec("runs/kcap/x")
