"""The analysis layer on the larger rule spaces: per-layer θ, plastic feedback and generated terms.

Tiny runs trained through the CLI are evaluated (with --ablate), streamed and compared; the checks
are on labels and numbers: a per-layer rule of equal blocks scores as the shared rule, φ = 0 is
fixed feedback, and a plastic B moves the stream's alignment angle while a fixed one cannot.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from evoplastic.analysis import compare
from evoplastic.analysis.evaluate import evaluate_rules, format_theta, main, parse_rule, task_config
from evoplastic.cli import main as cli_main
from evoplastic.families.paper.data import load_dataset
from evoplastic.families.paper.rulespec import ablated_rules
from evoplastic.families.paper.stream import evaluate_stream
from evoplastic.run.rundir import RunDir

QUICKSTART = str(Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml")
TINY = ["name={name}", "steps=2", "tasks_per_step=2", "eval_every=0", "eval_tasks=2", "final_eval_tasks=2",
        "network.dims=[64,12,10]", "task.dataset=digits", "task.n_way=3", "task.k_shot=5", "task.n_query=3",
        "task.classes=[0,1,2,3,4,5]", "es.population_size=4", "dtype=float64"]
SPACES = {
    "per_layer": ["rule.terms=bio", "rule.per_layer=true"],
    "plastic": ["rule.terms=bio", "rule.feedback_terms=kp", "network.feedback=fa"],
    "generated": ["rule.terms=generated", "es.separable=true"],
}
EVAL = ["--tasks", "4", "--n-query", "2", "--no-progress"]
NET = ["--set", "network.dims=[64,12,10]"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run directories by name: per_layer_seed0/1 (two seeds), plastic and generated, trained by the CLI."""
    root = tmp_path_factory.mktemp("runs")
    for name, overrides in SPACES.items():
        seeds = ["--seeds", "0,1"] if name == "per_layer" else []
        args = ["train", QUICKSTART, *[o.format(name=name) for o in TINY], *overrides, *seeds, "--runs-dir", str(root)]
        assert cli_main([*args, "--no-progress"]) == 0, name
    return {RunDir.open(path).config().name: path for path in root.iterdir()}


def _evaluate(capsys, tmp_path, *args: str) -> tuple[dict, str]:
    capsys.readouterr()
    out = tmp_path / "e.json"
    assert main([*args, "--json", str(out)]) == 0
    return json.loads(out.read_text()), capsys.readouterr().out


def test_runs_write_their_space_into_theta_json(runs):
    assert set(runs) == {"per_layer_seed0", "per_layer_seed1", "plastic", "generated"}
    per_layer = json.loads((runs["per_layer_seed0"] / "theta.json").read_text())
    assert per_layer["per_layer"] is True and len(per_layer["theta"]) == 6
    assert per_layer["labels"] == ["θ_0@W1", "θ_2@W1", "θ_9@W1", "θ_0@W2", "θ_2@W2", "θ_9@W2"]
    plastic = json.loads((runs["plastic"] / "theta.json").read_text())
    assert plastic["feedback_terms"] == ["hebb", "decay"] and len(plastic["theta"]) == 5
    assert len(json.loads((runs["generated"] / "theta.json").read_text())["theta"]) == 34


@pytest.mark.parametrize("name, ablations", [
    ("per_layer_seed0", ["without θ_0", "without θ_2", "without θ_9", "W1 fixed", "W2 fixed"]),
    ("plastic", ["without θ_0", "without θ_2", "without θ_9", "without φ_hebb", "without φ_decay",
                 "feedback fixed"]),
    ("generated", [f"without θ_{t}" for t in range(34)]),
])
def test_evaluate_with_ablations_labels_every_row_and_zeroes_its_coordinates(runs, name, ablations, tmp_path,
                                                                              capsys):
    data, text = _evaluate(capsys, tmp_path, str(runs[name]), "--ablate", *EVAL)
    rows = data["results"]
    assert [r["label"] for r in rows] == [runs[name].name, *ablations, "fa baseline", "bp baseline"]
    saved = json.loads((runs[name] / "theta.json").read_text())
    theta, labels = saved["theta"], saved["labels"]
    assert rows[0]["theta"] == theta and rows[0]["labels"] == labels
    for row in rows[1:-2]:  # each ablation: its coordinates zeroed, the run's θ elsewhere
        group = row["label"].removeprefix("without ")
        zeroed = [i for i, label in enumerate(labels) if label.split("@")[0] == group
                  or label.endswith("@" + group.removesuffix(" fixed")) or (group == "feedback fixed" and "φ" in label)]
        assert zeroed and row["theta"] == [0.0 if i in zeroed else v for i, v in enumerate(theta)], row["label"]
        assert row["task_loss"] != rows[0]["task_loss"] or all(theta[i] == 0 for i in zeroed), row["label"]
    assert [r["feedback"] for r in rows[-2:]] == ["fa", "bp"] and rows[-1]["theta"] == [0.014]
    if name == "plastic":
        assert "φ_hebb=" in text and rows[-3]["theta"][3:] == [0.0, 0.0]
    if name.startswith("per_layer"):
        assert "θ0@W1=" in text and "θ9@W2=" in text


def test_theta_json_alone_keeps_its_space(runs, tmp_path):
    for name in ("per_layer_seed0", "plastic"):
        alone = tmp_path / f"{name}.json"
        shutil.copy(runs[name] / "theta.json", alone)  # no config.yaml beside it: the defaults' network
        rule = parse_rule(str(alone), ["network.dims=[64,12,10]"])
        assert rule.space.per_layer == (name == "per_layer_seed0")
        assert rule.space.feedback_terms == ((0, 2) if name == "plastic" else ())
        assert list(rule.theta) == json.loads(alone.read_text())["theta"]
    with pytest.raises(ValueError, match=r"θ has 6 values but the rule searches 15: .*per layer × 5 layers"):
        parse_rule(str(tmp_path / "per_layer_seed0.json"))  # the default network has five layers


def test_per_layer_rule_of_equal_blocks_scores_as_the_shared_rule_and_others_do_not():
    dataset = load_dataset("digits")
    net = ["network.dims=[64,12,10]", "dtype=float64"]
    shared = parse_rule("bio:0.02,-0.01,0.005", net)
    equal = parse_rule("bio:0.02,-0.01,0.005,0.02,-0.01,0.005", [*net, "rule.per_layer=true"])
    other = parse_rule("bio:0.02,-0.01,0.005,0,0,0", [*net, "rule.per_layer=true"])
    assert format_theta(equal).startswith("θ0@W1=0.02 θ2@W1=-0.01")
    task = task_config(shared, dataset, tuple(range(10)), n_way=3, k_shot=5, n_query=3)
    a, b, c = evaluate_rules([shared, equal, other], dataset, task, n_tasks=4, progress=False)
    assert torch.equal(a.task_loss, b.task_loss)
    assert not torch.equal(a.task_loss, c.task_loss)
    w2_fixed = {r.label: r for r in ablated_rules(equal)}["W2 fixed"]
    assert w2_fixed.theta == (0.02, -0.01, 0.005, 0.0, 0.0, 0.0)
    assert torch.equal(evaluate_rules([w2_fixed], dataset, task, n_tasks=4, progress=False)[0].task_loss,
                       c.task_loss)


def test_zero_feedback_rule_evaluates_as_fixed_feedback(tmp_path, capsys):
    fixed, _ = _evaluate(capsys, tmp_path, "bio:0.02,0,0", *NET, "--dataset", "digits", "--n-way", "3", *EVAL)
    zero, _ = _evaluate(capsys, tmp_path, "bio:0.02,0,0,0,0", *NET, "--set", "rule.feedback_terms=kp",
                        "--dataset", "digits", "--n-way", "3", *EVAL)
    moving, _ = _evaluate(capsys, tmp_path, "bio:0.02,0,0,0.05,0.01", *NET, "--set", "rule.feedback_terms=kp",
                          "--dataset", "digits", "--n-way", "3", *EVAL)
    assert zero["results"][0]["labels"] == ["θ_0", "θ_2", "θ_9", "φ_hebb", "φ_decay"]
    assert zero["results"][0]["task_loss"] == fixed["results"][0]["task_loss"]
    assert moving["results"][0]["task_loss"] != fixed["results"][0]["task_loss"]


def _stream(*specs: tuple[str, list[str]]):
    dataset = load_dataset("digits")
    rules = [parse_rule(spec, ["network.dims=[64,12,10]", "dtype=float64", *extra]) for spec, extra in specs]
    return evaluate_stream(rules, dataset, tuple(range(10)), n_samples=60, every=20, test_size=40, progress=False)


def test_stream_alignment_follows_the_plastic_feedback():
    """Frozen W (θ = 0): a fixed B's angle cannot move, a plastic B's must; φ = 0 is the fixed B exactly."""
    kp = ["rule.feedback_terms=kp"]
    fixed, zero, plastic = _stream(("bio:0,0,0", []), ("bio:0,0,0,0,0", kp), ("bio:0,0,0,0.05,0.01", kp))
    assert fixed.alignment.shape == (4, 1) and torch.all(fixed.alignment == fixed.alignment[0])
    assert torch.equal(zero.alignment, fixed.alignment) and torch.equal(zero.accuracy, fixed.accuracy)
    assert plastic.alignment[0, 0] == fixed.alignment[0, 0]  # same initial B
    assert torch.all((plastic.alignment[1:] - plastic.alignment[0]).abs() > 1e-3)
    assert torch.equal(plastic.accuracy, fixed.accuracy)  # W never changes: only B learns
    assert plastic.to_json()["labels"] == ["θ_0", "θ_2", "θ_9", "φ_hebb", "φ_decay"]


def test_stream_learns_with_per_layer_and_generated_rules():
    shared, equal, generated = _stream(("bio:0.02,-0.01,0.005", []),
                                       ("bio:0.02,-0.01,0.005,0.02,-0.01,0.005", ["rule.per_layer=true"]),
                                       ("0,14:0.02,0.001", []))
    assert torch.equal(shared.accuracy, equal.accuracy) and torch.equal(shared.alignment, equal.alignment)
    assert not torch.equal(generated.alignment, shared.alignment)


def _cells(report: str, label: str) -> list[str]:
    """The θ table's row of one coordinate, after its label: formula, then one cell per run."""
    row = next(line for line in report.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in row.strip("|").split("|")][1:]


def test_compare_tables_runs_of_every_space_and_plots_theta_per_layer(runs, tmp_path, capsys):
    out = tmp_path / "report"
    paths = [str(runs[name]) for name in ("per_layer_seed0", "per_layer_seed1", "plastic", "generated")]
    assert compare.main([*paths, "--out", str(out), "--eval-tasks", "4", "--no-progress"]) == 0
    report = (out / "report.md").read_text()
    assert (out / "theta_per_layer.png").is_file() and "![θ per layer](theta_per_layer.png)" in report
    theta = {name: json.loads((runs[name] / "theta.json").read_text())["theta"] for name in runs}
    assert _cells(report, "θ_2@W2")[1:] == [f"{theta['per_layer_seed0'][4]:.6g}",
                                            f"{theta['per_layer_seed1'][4]:.6g}", "—", "—"]
    assert _cells(report, "φ_hebb")[1:] == ["—", "—", f"{theta['plastic'][3]:.6g}", "—"]
    assert _cells(report, "θ_9")[1:] == ["—", "—", f"{theta['plastic'][2]:.6g}", f"{theta['generated'][9]:.6g}"]
    assert "| θ_33 |" in report and "| θ_0 |" in report  # the generated run's terms beside the pool
    held_out = report.split("## Held-out evaluation")[1]
    for label in ("per_layer_seed0", "per_layer_seed1", "plastic", "generated"):
        assert f"| {label} |" in held_out
    assert "θ_0@W1=" in held_out and "φ_decay=" in held_out


def test_theta_per_layer_groups_seeds_and_skips_shared_runs(runs, tmp_path):
    records = compare.load_runs([runs["per_layer_seed0"], runs["per_layer_seed1"], runs["plastic"]])
    theta = records[0].theta
    assert compare.per_layer_values(records[0]) == {"θ_0": [theta[0], theta[3]], "θ_2": [theta[1], theta[4]],
                                                    "θ_9": [theta[2], theta[5]]}
    assert compare.plot_theta_per_layer(records[2:], tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
    written = compare.plot_theta_per_layer(records, tmp_path / "layers.png")
    assert written == tmp_path / "layers.png" and written.stat().st_size > 5000
    assert compare.coordinates(records[:2])[0][0] == "θ_0@W1"  # per-layer runs only: no empty pool rows


def test_a_large_rule_prints_its_size_and_largest_coefficients():
    from evoplastic.analysis.evaluate import format_theta
    from evoplastic.analysis.rule import parse_rule

    theta = [0.0] * 34
    theta[0], theta[14] = 0.02, 3e-4  # T14's search scale is 1e-5: it is the largest in search units
    rule = parse_rule("generated:" + ",".join(map(str, theta)))
    assert format_theta(rule).startswith("2 of 34 non-zero; largest: θ14=0.0003 θ0=0.02")
