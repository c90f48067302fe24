"""The family's evaluation adds the control rules (untuned start, θ = 0) when asked."""

from dataclasses import replace

import torch

from evoplastic.config import ExperimentConfig
from evoplastic.families.kcap.config import KcapConfig
from evoplastic.families.kcap.evaluation import CONTROLS, evaluate
from evoplastic.families.kcap.rulespec import parse_rule

SMALL = ExperimentConfig(family="kcap", kcap=KcapConfig(n_unlabelled=12, n_query=5, n_hidden=12, cap=3))


def test_controls_follow_the_baselines_once_and_score_like_the_same_rule():
    label, theta, kcap = parse_rule("kcap:hebb=0.01", SMALL.kcap)
    rows = evaluate(SMALL, [("mine", torch.tensor(theta), replace(SMALL, kcap=kcap))], 2, 0, True, controls=True).rows
    labels = [r[0] for r in rows]
    assert labels == ["mine", "untrained k-cap RNN", "raw 10-D input", *CONTROLS]
    scores = dict(rows)
    assert torch.equal(scores["mine"]["probe_loss"], scores["kcap:hebb=0.01"]["probe_loss"])
    again = evaluate(SMALL, [(label, torch.tensor(theta), replace(SMALL, kcap=kcap))], 2, 0, True,
                     controls=True).rows
    assert [r[0] for r in again] == [label, "untrained k-cap RNN", "raw 10-D input", "kcap:hebb=0"]
    assert [r[0] for r in evaluate(SMALL, [], 1, 0, baselines=False, controls=True).rows] == [*CONTROLS]
    assert "kcap:hebb=0" not in [r[0] for r in evaluate(SMALL, [], 1, 0).rows]  # off by default
