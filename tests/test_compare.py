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


def train_runs(root, configs) -> list:
    """Train each config into a new run directory under root; their paths, in order."""
    paths = []
    for cfg in configs:
        run = RunDir.create(cfg, root)
        train(cfg, run, progress=False)
        paths.append(run.path)
    return paths


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An ES run of 'bio' and an Adam run of 'ehebb' on digits classes 0-5, evaluated every step."""
    return train_runs(tmp_path_factory.mktemp("runs"), [
        tiny_config(f"name={outer}_{terms}", f"outer={outer}", f"rule.terms={terms}", "task.k_shot=5",
                    "task.classes=[0,1,2,3,4,5]", "eval_every=1", "eval_tasks=2", "final_eval_tasks=4",
                    "es.population_size=4")
        for outer, terms in (("es", "bio"), ("adam", "ehebb"))])


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


# --- the k-cap family: θ labels, settings and held-out evaluation come from the family ---------------------------

@pytest.fixture(scope="module")
def kcap_runs(tmp_path_factory):
    """Two seeds of a tiny k-cap pool rule and a tiny MLP rule (41 weights), on the same task settings."""
    from test_kcap_family import TINY_KCAP

    from evoplastic.config import load_config

    return train_runs(tmp_path_factory.mktemp("kcap_runs"), [
        load_config(None, TINY_KCAP + extra)
        for extra in (["name=pool"], ["name=pool_seed1", "seed=1"], ["name=mlp", "kcap.rule=mlp"])])


def test_compare_kcap_runs_renders_their_labels_settings_and_family_evaluation(kcap_runs, tmp_path, capsys):
    out = tmp_path / "kcap_report"
    assert main([*map(str, kcap_runs), "--out", str(out), "--eval-tasks", "6", "--baselines", "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == str(out / "report.md")
    for name in ("report.md", "theta.png", "learning.png", "theta_trajectories.png"):
        assert (out / name).stat().st_size > 1000, name
    assert not (out / "alignment.png").exists()  # k-cap runs log no alignment angles
    report = (out / "report.md").read_text()
    pool = json.loads((kcap_runs[0] / "theta.json").read_text())
    assert pool["labels"] == ["hebb", "covariance", "oja", "decay"]
    assert f"| hebb | `post pre^T` | {pool['theta'][0]:.6g} | " in report and "| hebb |" in report
    assert "| W1[0,pre] | — | — | — | " in report and "| b2 | — | — | — | " in report  # the MLP's weights
    assert "θ_" not in report.split("## Held-out")[0] and "dM = +sum_r theta_r T_r" in report
    header = next(line for line in report.splitlines() if line.startswith("| run | directory"))
    assert "| normalise | objective | n_hidden | input_bias | cap | datasets |" in header and "activation" not in header
    assert "| pool | `" in report and "| row | probe_loss | 16 | 0.0 | 4 | moons, circles, blobs |" in report
    held_out = report.split("## Held-out evaluation")[1]
    assert "6 fresh tasks" in held_out and "**all** (18 tasks)" in held_out  # 6 per dataset
    all_tasks = held_out.split("**all** (18 tasks)")[1]
    rows = [line.split(" | ")[0][2:] for line in all_tasks.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[1:6] == ["pool", "pool_seed1", "mlp", "untrained k-cap RNN", "raw 10-D input"]
    assert "| probe_accuracy | probe_loss | ae_mse | emd |" in all_tasks
    seeds = held_out.split("### Across seeds")[1]
    assert "| pool | ES (cmaes) | 2 | 0, 1 |" in seeds and "mlp" not in seeds


def test_compare_kcap_leaves_out_runs_on_other_tasks_and_rejects_image_options(kcap_runs, tmp_path, capsys):
    other = tmp_path / "other_tasks"
    shutil.copytree(kcap_runs[0], other)
    config = yaml.safe_load((other / "config.yaml").read_text())
    config["name"], config["kcap"]["n_unlabelled"] = "other", 10
    (other / "config.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "report"
    assert main([str(kcap_runs[0]), str(other), "--out", str(out), "--eval-tasks", "3", "--no-progress"]) == 0
    report = (out / "report.md").read_text()
    assert "- skipped: other: its tasks or initial networks differ from pool's" in report
    assert "| untrained k-cap RNN |" not in report  # no --baselines
    assert main([str(kcap_runs[0]), "--eval-classes", "0-3", "--out", str(tmp_path / "r")]) == 2
    assert "--eval-classes: unknown evaluation setting(s) classes for the kcap family" in capsys.readouterr().err


def test_runs_of_two_families_do_not_share_a_report(runs, kcap_runs, tmp_path, capsys):
    assert main([str(runs[0]), str(kcap_runs[0]), "--out", str(tmp_path / "r"), "--eval-tasks", "0"]) == 2
    err = capsys.readouterr().err
    assert "compare puts runs of one network family in a report" in err
    assert f"paper: {runs[0].name}; kcap: {kcap_runs[0].name}" in err
    assert not (tmp_path / "r").exists()


def test_plot_of_a_kcap_run_titles_it_with_the_family_settings(kcap_runs, runs, capsys):
    from evoplastic.analysis.report import run_title
    from evoplastic.cli import main as cli_main

    for name in ("learning.png", "theta.png"):
        (kcap_runs[0] / "plots" / name).unlink(missing_ok=True)
    assert cli_main(["plot", str(kcap_runs[0])]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(kcap_runs[0] / "plots" / name) for name in ("learning.png", "theta.png")]
    assert all((kcap_runs[0] / "plots" / name).stat().st_size > 1000 for name in ("learning.png", "theta.png"))
    title = run_title(RunDir.open(kcap_runs[0]).config())
    assert title.startswith("pool: es, per_matrix=False, plastic=M_in+M_rec, normalise=row, objective=probe_loss")
    assert "softplus" not in title and "fa" not in title.split(", ")
    assert run_title(RunDir.open(kcap_runs[2]).config()).startswith("mlp: es, per_matrix=False")
    assert run_title(RunDir.open(runs[0]).config()) == "es_bio: es, activation=softplus, feedback=fa"
