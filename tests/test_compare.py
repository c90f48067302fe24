"""Comparing runs: report.md, its PNGs and the held-out table, from two tiny runs (ES and Adam)."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from conftest import tiny_config

from evoplastic.analysis.compare import load_runs, main
from evoplastic.run.rundir import RunDir
from evoplastic.run.train import train


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An ES run of 'bio' and an Adam run of 'ehebb' on digits classes 0-5, evaluated every step."""
    root = tmp_path_factory.mktemp("runs")
    paths = []
    for outer, terms in (("es", "bio"), ("adam", "ehebb")):
        cfg = tiny_config(f"name={outer}_{terms}", f"outer={outer}", f"rule.terms={terms}", "task.k_shot=5",
                          "task.classes=[0,1,2,3,4,5]", "eval_every=1", "eval_tasks=2", "final_eval_tasks=4",
                          "es.population_size=4")
        run = RunDir.create(cfg, root)
        train(cfg, run, progress=False)
        paths.append(run.path)
    return paths


def test_compare_writes_report_and_plots(runs, tmp_path, capsys):
    out = tmp_path / "report"
    assert main([*map(str, runs), "--out", str(out), "--eval-tasks", "6", "--baselines", "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == str(out / "report.md")
    for name in ("report.md", "theta.png", "learning.png", "theta_trajectories.png", "alignment.png"):
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    theta_es = json.loads((runs[0] / "theta.json").read_text())["theta"]
    assert f"| θ_9 | `y_l y_{{l-1}}^T - y_l y_l^T W_l` | {theta_es[2]:.6g} | — |" in report  # ehebb has no θ_9
    assert sum(line.startswith("| θ_") for line in report.splitlines()) == 10
    assert "| es_bio |" in report and "| adam_ehebb |" in report and "es/cmaes" in report
    # held-out: the classes neither run trained on, every rule on the same tasks
    assert "6 tasks of digits (train), classes 6-9: 3-way" in report
    held_out = report.split("## Held-out evaluation")[1]
    for label in ("es_bio", "adam_ehebb", "fa baseline", "bp baseline"):
        assert f"| {label} |" in held_out
    assert "query accuracy (95 % CI)" in held_out and "Δ vs es_bio (paired)" in held_out


def test_duplicate_names_are_told_apart_and_eval_can_be_skipped(runs, tmp_path):
    records = load_runs([runs[0], runs[0]])
    assert records[0].label == records[1].label == runs[0].name
    out = tmp_path / "skip"
    assert main([str(runs[0]), str(runs[1]), "--out", str(out), "--eval-tasks", "0"]) == 0
    assert "Held-out evaluation" not in (out / "report.md").read_text()


def test_a_run_whose_network_does_not_fit_is_skipped_with_its_reason(runs, tmp_path):
    narrow = tmp_path / "narrow_run"
    shutil.copytree(runs[1], narrow)
    config = yaml.safe_load((narrow / "config.yaml").read_text())
    config["name"], config["network"]["dims"] = "narrow", [64, 12, 8]
    (narrow / "config.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "fit"
    assert main([str(runs[0]), str(narrow), "--out", str(out), "--eval-tasks", "2", "--eval-classes", "0-9",
                 "--no-progress"]) == 0
    report = (out / "report.md").read_text()
    assert "classes 0-9" in report and "| es_bio |" in report
    assert "- skipped: narrow: class id 9 of digits does not fit the network's 8 outputs" in report


@pytest.mark.parametrize("args, message", [
    (["nonexistent_run"], "is not a run directory"),
    (["RUN", "--eval-classes", "x"], "--classes 'x'"),
    (["RUN", "--eval-dataset", "cifar"], "unknown dataset 'cifar'"),
])
def test_bad_input_is_a_clear_error(args, message, runs, tmp_path, capsys):
    args = [str(runs[0]) if a == "RUN" else a for a in args]
    assert main([*args, "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_seeds_of_one_setting_are_summarised(runs, tmp_path):
    """A second seed of the ES run (compiled: speed options do not make another setting) gets a seeds row."""
    cfg = tiny_config("name=es_bio_seed1", "seed=1", "outer=es", "rule.terms=bio", "task.k_shot=5",
                      "task.classes=[0,1,2,3,4,5]", "eval_every=1", "eval_tasks=2", "final_eval_tasks=4",
                      "es.population_size=4", "es.member_chunk=2")
    run = RunDir.create(cfg, tmp_path / "more")
    train(cfg, run, progress=False)
    out = tmp_path / "report"
    assert main([str(runs[0]), str(run.path), str(runs[1]), "--out", str(out), "--eval-tasks", "4",
                 "--no-progress"]) == 0
    seeds = (out / "report.md").read_text().split("### Across seeds")[1]
    rows = [line for line in seeds.splitlines() if line.startswith("| es_bio |")]
    assert len(rows) == 1 and "| ES (cmaes) | 2 | 0, 1 |" in rows[0] and "θ_0" in rows[0]
    assert "adam_ehebb" not in seeds  # one seed only: no row
