"""Run directories of the first release (config version 1, before families owned their sections) still
resume and evaluate.

tests/fixtures/run_v1 is a 2-generation CMA-ES run of the tiny digits config, written by that
commit's ``evoplastic train``: its config.yaml has no family/config_version and its checkpoint
pickles evoplastic.outer.es.ThetaProblem.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from evoplastic.config import CONFIG_VERSION, ConfigError, config_from_dict, migrate
from evoplastic.run.rundir import RunDir
from evoplastic.run.train import train

V1_RUN = Path(__file__).parent / "fixtures" / "run_v1"


def test_a_version_1_config_is_the_papers_family():
    values = yaml.safe_load((V1_RUN / "config.yaml").read_text())
    assert "family" not in values and "config_version" not in values
    cfg = config_from_dict(values)
    assert (cfg.family, cfg.config_version) == ("paper", CONFIG_VERSION)
    assert cfg.network.dims == (64, 12, 10) and cfg.rule.terms == "bio"


def test_a_config_from_a_newer_version_is_refused():
    with pytest.raises(ConfigError, match="newer than this evoplastic"):
        migrate({"config_version": CONFIG_VERSION + 1})


@pytest.mark.parametrize("saved, loaded", [("inductor", "auto"), ("triton", "triton")])
def test_a_version_3_kernel_runs_what_it_ran(saved, loaded):
    """Version 3 saved es.kernel=inductor by default and ran the C++ step on CPU whatever it said: it loads as
    auto (that step on CPU, Inductor on CUDA); other values are kept."""
    values = {"config_version": 3, "family": "paper", "device": "cuda", "dtype": "float32",
              "es": {"compile": True, "kernel": saved}}
    cfg = config_from_dict(values)
    assert cfg.es.kernel == loaded and cfg.config_version == CONFIG_VERSION
    assert values["es"]["kernel"] == saved  # the saved mapping is not modified


def test_a_version_1_run_resumes_and_continues(tmp_path):
    path = tmp_path / "run_v1"
    shutil.copytree(V1_RUN, path)
    run = RunDir.open(path)
    cfg = run.config()
    cfg = replace(cfg, steps=3)
    summary = train(cfg, run, resume=True, progress=False)
    steps = [r["step"] for r in run.metrics()]
    assert steps == [0, 1, 2]  # the old two generations kept, one more appended
    assert len(summary.theta) == 3 and run.read_json("theta.json")["family"] == "paper"


def test_a_version_1_run_evaluates(capsys):
    from evoplastic.analysis.evaluate import main

    assert main([str(V1_RUN), "--tasks", "4", "--no-progress", "--no-baselines"]) == 0
    assert "query accuracy" in capsys.readouterr().out
