"""`evoplastic bench spaces` (the cost table): one timed row per rule space, generations to converge, --runs."""

import json
import math
import os
import shutil
import statistics

import pytest

from evoplastic.bench.spaces import generations_to_converge, training_curve
from evoplastic.cli import main
from evoplastic.run.rundir import RunDir

TINY_NET = ["--dims", "16,8,6,5", "--steps", "10", "--members", "3", "--repeats", "1"]
"""Three plastic layers (L = 3), two classes' worth of online steps: the whole command takes a second or two."""
EXPECTED_R = {"pool (paper)": 10, "bio": 3, "bio per-layer": 3 * 3, "pool per-layer": 10 * 3, "generated": 34,
              "bio + feedback all": 3 + 4}
TINY_RUN = ["steps=12", "tasks_per_step=1", "eval_every=4", "eval_tasks=3", "final_eval_tasks=5",
            "network.dims=[64,12,10]", "task.n_way=3", "task.k_shot=5", "task.n_query=3", "es.population_size=4",
            "--no-progress"]


def rows(generation_losses: list[float], key: str = "fitness/median") -> list[dict]:
    return [{"step": g, key: loss} for g, loss in enumerate(generation_losses)]


def test_timing_reports_one_row_per_space_with_its_coefficients(tmp_path, capsys):
    out = tmp_path / "spaces.json"
    assert main(["bench", "spaces", *TINY_NET, "--json", str(out)]) == 0
    table = capsys.readouterr().out
    timing = json.loads(out.read_text())["timing"]
    assert [r["case"]["name"] for r in timing] == list(EXPECTED_R)
    assert {r["case"]["name"]: r["coefficients"] for r in timing} == EXPECTED_R
    reference = timing[0]["rate_median"]
    for r in timing:
        assert r["rate_median"] > 0 and r["members"] == 3 and r["steps"] == 10 and r["reps"] == 1
        assert r["rate_median"] == pytest.approx(3 / r["seconds_median"])  # member-episodes per second
        assert r["ratio"] == pytest.approx(r["rate_median"] / reference)
        assert math.isfinite(r["query_accuracy"])
        (line,) = [line for line in table.splitlines() if line[:22].strip() == r["case"]["name"]]
        assert line[22:].split()[:2] == [str(r["coefficients"]), "3"]
        assert f"{r['rate_median']:.2f}" in line and f"{r['ratio']:.2f}" in line
    assert "runs" not in json.loads(out.read_text())


def test_steps_must_fill_whole_classes():
    with pytest.raises(SystemExit):
        main(["bench", "spaces", "--steps", "12", "--members", "2"])
    with pytest.raises(SystemExit):  # nothing to do
        main(["bench", "spaces", "--no-timing"])


def test_converges_where_the_moving_median_crosses_ninety_percent():
    losses = [5.0] * 30 + [1.0] * 70
    losses[10] = 0.0  # one lucky generation: the median ignores it (the raw curve would say 11)
    losses[50] = 100.0  # one diverged generation
    assert generations_to_converge(rows(losses)) == 31
    assert generations_to_converge(rows([100.0 - g for g in range(101)]), window=1) == 91
    assert generations_to_converge(rows([100.0 - g for g in range(101)]), fraction=0.5, window=1) == 51


def test_convergence_reads_resumed_nan_and_single_candidate_rows():
    records = rows([100.0 - g for g in range(101)], key="fitness/best")  # Adam: one candidate, no median
    records[40] = {"step": 40, "fitness/best": float("nan")}
    records.insert(95, {"step": 89, "fitness/best": 0.0})  # a resume rewrote step 89 later: the last row wins
    assert [s for s, _ in training_curve(records)] == [s for s in range(101) if s != 40]
    assert generations_to_converge(records, window=1) == 90


@pytest.mark.parametrize("losses", [[2.0] * 50, [2.0 - 1e-4 * g for g in range(50)],
                                    [1.0 + 0.01 * g for g in range(50)], [5.0, 4.0, 3.0, 2.0, 1.0], []])
def test_flat_worse_or_short_curves_have_no_convergence(losses):
    assert generations_to_converge(rows(losses)) is None


def test_runs_table_reads_a_finished_and_an_unfinished_run(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", "configs/quickstart.yaml", *TINY_RUN, "--runs-dir", str(runs)]) == 0
    (done,) = runs.iterdir()
    cut = runs / "cut"  # as if still training: 5 generations written, no theta.json yet
    shutil.copytree(done, cut)
    (cut / "theta.json").unlink()
    lines = (cut / "metrics.jsonl").read_text().splitlines(keepends=True)
    (cut / "metrics.jsonl").write_text("".join(lines[:5]) + lines[5][:20])  # and a torn last line
    capsys.readouterr()
    out = tmp_path / "runs.json"
    assert main(["bench", "spaces", "--no-timing", "--runs", str(runs), "--window", "3", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    found = {r["run"]: r for r in json.loads(out.read_text())["runs"]}
    assert set(found) == {done.name, "cut"}
    full, part = found[done.name], found["cut"]
    records = RunDir.open(done).metrics()
    assert (full["terms"], full["per_layer"], full["feedback"], full["coefficients"]) == ("bio", False, "none", 3)
    assert (full["generations"], full["planned"], full["outer"]) == (12, 12, "es cmaes")
    assert full["episodes_per_generation"] == 4 * 1  # population × tasks_per_step
    assert full["converge"] == generations_to_converge(records, window=3)
    assert full["seconds_per_generation"] == pytest.approx(statistics.median(r["time/step_seconds"] for r in records))
    assert full["accuracy"] == json.loads((done / "theta.json").read_text())["final/accuracy"]
    assert full["accuracy_from"] == "final"
    assert (part["generations"], part["planned"], part["accuracy_from"]) == (5, 12, "eval@4")
    assert part["accuracy"] == records[3]["eval/accuracy"]
    assert part["converge"] == generations_to_converge(records[:5], window=3)
    assert f"{full['accuracy']:.3f} final" in table and "5/12" in table


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("EVOPLASTIC_SLOW_TESTS"),
                    reason="compiles the fused step (~15-30 s); set EVOPLASTIC_SLOW_TESTS=1")
def test_compiled_row_follows_the_paper_pool(tmp_path):
    out = tmp_path / "spaces.json"
    assert main(["bench", "spaces", *TINY_NET, "--compiled", "--json", str(out)]) == 0
    timing = json.loads(out.read_text())["timing"]
    assert [r["case"]["name"] for r in timing[:2]] == ["pool (paper)", "pool compiled"]
    assert timing[-1]["case"]["name"] == "pool per-layer compiled" and timing[-1]["coefficients"] == 10 * 3
    compiled = timing[1]
    assert compiled["coefficients"] == 10 and compiled["case"]["compiled"] and compiled["note"] == ""
    assert compiled["warmup_seconds"] > compiled["seconds_median"]  # the warm-up call compiled the step
