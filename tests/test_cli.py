"""End-to-end command-line runs into tmp_path, and the errors users see."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evoplastic.cli import main

TINY = [
    "steps=3", "tasks_per_step=1", "eval_every=2", "eval_tasks=3", "final_eval_tasks=5",
    "network.dims=[64,12,10]", "task.n_way=3", "task.k_shot=5", "task.n_query=3", "es.population_size=4",
]


@pytest.mark.parametrize("outer", ["es", "adam"])
def test_train_writes_a_complete_run_record(outer, tmp_path, capsys):
    code = main(["train", "configs/quickstart.yaml", *TINY, f"outer={outer}", "--runs-dir", str(tmp_path),
                 "--no-progress"])
    assert code == 0
    (run,) = tmp_path.iterdir()
    for name in ("config.yaml", "meta.json", "metrics.jsonl", "theta.json", "checkpoint.pt",
                 "plots/learning.png", "plots/theta.png"):
        assert (run / name).is_file(), name
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1, 2]
    assert "eval/accuracy" in records[1] and "eval/accuracy" not in records[0]
    theta = json.loads((run / "theta.json").read_text())
    assert theta["terms"] == [0, 2, 9] and theta["final/tasks"] == 5
    assert "query accuracy on 5 fresh tasks" in capsys.readouterr().out
    assert main(["plot", str(run)]) == 0



def test_one_final_task_prints_no_interval(tmp_path, capsys):
    assert main(["train", "configs/quickstart.yaml", *TINY, "steps=1", "eval_every=0", "final_eval_tasks=1",
                 "--runs-dir", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "query accuracy on 1 fresh tasks" in out and "(one task: no confidence interval)" in out
    assert "nan" not in out

def test_seeds_make_one_run_each(tmp_path, capsys):
    code = main(["train", "configs/quickstart.yaml", *TINY, "steps=1", "--seeds", "3-4", "--runs-dir", str(tmp_path),
                 "--no-progress"])
    assert code == 0
    runs = sorted(tmp_path.iterdir(), key=lambda p: p.name[-1])
    assert [p.name.split("_", 1)[1] for p in runs] == ["quickstart_seed3", "quickstart_seed4"]
    configs = [(p / "config.yaml").read_text() for p in runs]
    assert "seed: 3" in configs[0] and "seed: 4" in configs[1]
    assert capsys.readouterr().out.count("query accuracy on 5 fresh tasks") == 2


@pytest.mark.parametrize("args, message", [
    (["train", "configs/quickstart.yaml", "es.popsize=3"], "unknown config key(s) es.popsize"),
    (["train", "configs/quickstart.yaml", "network.activation=swish"], "unknown network.activation 'swish'"),
    (["train", "configs/quickstart.yaml", "rule.terms=hebb"], "unknown rule 'hebb'"),
    (["train", "configs/quickstart.yaml", "steps=many"], "'steps' must be int"),
    (["train", "configs/missing.yaml"], "config file configs/missing.yaml not found"),
    (["train", "configs/quickstart.yaml", "task.dataset=npz:/nonexistent.npz"], "npz file /nonexistent.npz not found"),
    (["train", "configs/quickstart.yaml", "task.dataset=emnist", "task.data_dir=/nonexistent"], "task.download=true"),
    (["train", "configs/quickstart.yaml", "task.k_shot=500"], "lower task.k_shot"),
    (["train", "configs/quickstart.yaml", "network.dims=[784,10]"], "set network.dims[0] = 64"),
    (["train", "configs/quickstart.yaml", "outer=adam", "network.activation=relu"], "use outer=es"),
    (["train"], "give a config file"),
    (["train", "configs/quickstart.yaml", "--seeds", "a,b"], "give seeds such as 0,1,2"),
    (["train", "configs/quickstart.yaml", "--seeds", "1,1"], "distinct seeds"),
    (["train", "configs/quickstart.yaml", "task.dataset=npz:/missing.npz", "--seeds", "0,1"], "/missing.npz"),
])
def test_bad_input_is_a_clear_error_and_writes_nothing(args, message, tmp_path, capsys):
    code = main([*args, "--runs-dir", str(tmp_path), "--no-progress"])
    assert code == 2
    assert message.lower() in capsys.readouterr().err.lower()
    assert not any(tmp_path.iterdir())


def train_tiny(tmp_path, *extra: str) -> Path:
    """A finished 3-step quickstart run in tmp_path/runs; returns its directory."""
    assert main(["train", "configs/quickstart.yaml", *TINY, *extra, "--runs-dir", str(tmp_path / "runs"),
                 "--no-progress"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    return run


def records_of(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_resume_follows_the_uninterrupted_trajectory(tmp_path):
    """3 steps + a resume to 5 give the θ and fitnesses of 5 steps in one go (a re-initialised searcher would not)."""
    whole = train_tiny(tmp_path / "whole", "steps=5")
    split = train_tiny(tmp_path / "split")
    assert main(["train", "--resume", str(split), "steps=5", "--no-progress"]) == 0
    assert [r["step"] for r in records_of(split)] == [0, 1, 2, 3, 4]
    for key in ("theta/center", "fitness/members", "es/stdev", "eval/accuracy"):
        assert [r.get(key) for r in records_of(split)] == [r.get(key) for r in records_of(whole)], key
    final = [json.loads((run / "theta.json").read_text())["theta"] for run in (split, whole)]
    assert final[0] == final[1]


# one process per run directory; resume keeps one record per step.

HOLD_LOCK = """
import sys, time
from evoplastic.run.rundir import RunDir
with RunDir.open(sys.argv[1]).lock():
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_second_process_on_a_run_is_refused_naming_the_holder(tmp_path, capsys):
    run = train_tiny(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = (run / "metrics.jsonl").read_text()
        assert main(["train", "--resume", str(run), "steps=5", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"run directory {run} is in use by process {holder.pid}" in err and f"kill {holder.pid}" in err
        assert (run / "metrics.jsonl").read_text() == before  # nothing written
    finally:
        holder.kill()
        holder.wait()
    assert main(["train", "--resume", str(run), "steps=4", "--no-progress"]) == 0  # the lock died with its holder


def test_resume_keeps_one_record_per_step_up_to_the_checkpoint(tmp_path):
    """Duplicated, interleaved and later-than-checkpoint rows (two processes before the lock) are dropped."""
    run = train_tiny(tmp_path)
    rows = (run / "metrics.jsonl").read_text().splitlines()
    later = json.dumps({**json.loads(rows[2]), "step": 3})
    (run / "metrics.jsonl").write_text("\n".join([rows[0], rows[1], rows[1], rows[2], later, rows[2]]) + "\n")
    assert main(["train", "--resume", str(run), "steps=5", "--no-progress"]) == 0
    assert [r["step"] for r in records_of(run)] == [0, 1, 2, 3, 4]


# a run in which every member diverged fails; bad data fails as it loads.

def test_a_run_where_every_member_diverged_fails_with_a_summary(tmp_path, capsys):
    code = main(["train", "configs/quickstart.yaml", *TINY, "rule.theta_init=[1000,1000,1000]", "es.stdev_init=1e-6",
                 "--runs-dir", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "every member of every generation diverged (3 generations × 4 members" in err
    (run,) = tmp_path.iterdir()
    assert not (run / "theta.json").exists() and str(run / "metrics.jsonl") in err


def test_nan_images_stop_the_run_before_it_starts(tmp_path, capsys):
    images = np.random.default_rng(0).random((60, 64))
    images[[3, 7, 9]] = np.nan
    np.savez(tmp_path / "nan.npz", images=images, labels=np.arange(60) % 6)
    code = main(["train", "configs/quickstart.yaml", *TINY, f"task.dataset=npz:{tmp_path / 'nan.npz'}",
                 "--runs-dir", str(tmp_path / "runs"), "--no-progress"])
    assert code == 2
    assert f"{tmp_path / 'nan.npz'}: 3 of 60 images hold NaN or inf pixel values" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


# damaged files and unusable directories are one clear line each.

def test_garbage_checkpoint_without_a_previous_one_is_a_clear_error(tmp_path, capsys):
    run = train_tiny(tmp_path)
    (run / "checkpoint.prev.pt").unlink()
    (run / "checkpoint.pt").write_bytes(b"\x80\x04garbage, not a checkpoint")
    assert main(["train", "--resume", str(run), "steps=5", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'checkpoint.pt'} is unreadable, truncated or not a checkpoint" in err
    assert "no checkpoint.prev.pt to fall back on: start the run again without --resume" in err
    assert "Traceback" not in err


def test_truncated_checkpoint_falls_back_on_the_previous_one(tmp_path, capsys):
    run = train_tiny(tmp_path)
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    assert main(["train", "--resume", str(run), "steps=4", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"resuming from {run / 'checkpoint.prev.pt'} (step 2, one step earlier)" in err
    assert [r["step"] for r in records_of(run)] == [0, 1, 2, 3]


def test_torn_last_metrics_line_is_tolerated_on_resume(tmp_path):
    run = train_tiny(tmp_path)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "train/lo')  # killed in the middle of a write
    assert main(["plot", str(run)]) == 0
    assert main(["train", "--resume", str(run), "steps=4", "--no-progress"]) == 0
    assert [r["step"] for r in records_of(run)] == [0, 1, 2, 3]


def test_damaged_metrics_line_names_file_and_line(tmp_path, capsys):
    run = train_tiny(tmp_path)
    rows = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join([rows[0], "garbage", rows[2]]) + "\n")
    assert main(["plot", str(run)]) == 2
    assert f"{run / 'metrics.jsonl'}, line 2: Expecting value; the file was damaged" in capsys.readouterr().err


def test_yaml_syntax_error_names_file_and_line(tmp_path, capsys):
    config = tmp_path / "broken.yaml"
    config.write_text("steps: 3\nnetwork:\n  dims: [64, 12, 10\ntask: {}\n")
    assert main(["train", str(config), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert f"{config} is not valid YAML at line 4, column 5" in err and "Traceback" not in err


def test_runs_dir_that_is_a_file_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "runs").write_text("")
    assert main(["train", "configs/quickstart.yaml", *TINY, "--runs-dir", str(tmp_path / "runs"), "--no-progress"]) == 2
    assert f"runs directory {tmp_path / 'runs'} is a file, not a directory" in capsys.readouterr().err


def read_only(monkeypatch, directory: Path) -> None:
    """Make directory (and what is under it) unwritable, also for root, which ignores permission bits."""
    real_access, real_mkdir = os.access, Path.mkdir

    def access(path, mode, *args, **kwargs):
        inside = Path(path).resolve().is_relative_to(directory.resolve())
        return False if inside and mode & os.W_OK else real_access(path, mode, *args, **kwargs)

    def mkdir(self, *args, **kwargs):
        if self.resolve().is_relative_to(directory.resolve()):
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(Path, "mkdir", mkdir)


def test_read_only_runs_dir_is_a_clear_error(tmp_path, capsys, monkeypatch):
    (tmp_path / "runs").mkdir()
    read_only(monkeypatch, tmp_path / "runs")
    assert main(["train", "configs/quickstart.yaml", *TINY, "--runs-dir", str(tmp_path / "runs"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "cannot create run directory" in err and "give --runs-dir a writable directory" in err


def test_read_only_run_dir_on_resume_is_a_clear_error(tmp_path, capsys, monkeypatch):
    run = train_tiny(tmp_path)
    read_only(monkeypatch, run)
    assert main(["train", "--resume", str(run), "steps=5", "--no-progress"]) == 2
    assert f"run directory {run} is not writable" in capsys.readouterr().err


# Ctrl-C names the run to resume.

def test_interrupt_prints_the_run_to_resume(tmp_path, capsys, monkeypatch):
    from evoplastic.run.rundir import RunDir

    real_save = RunDir.save_checkpoint

    def interrupted(self, state):  # after the first checkpoint: there is something to resume
        if state["step"] > 1:
            raise KeyboardInterrupt
        real_save(self, state)

    monkeypatch.setattr(RunDir, "save_checkpoint", interrupted)
    assert main(["train", "configs/quickstart.yaml", *TINY, "--runs-dir", str(tmp_path), "--no-progress"]) == 130
    (run,) = tmp_path.iterdir()
    assert f"interrupted; continue with 'evoplastic train --resume {run}'" in capsys.readouterr().err


def test_evaluate_and_compare_through_the_cli(tmp_path, capsys):
    """`evoplastic evaluate` and `evoplastic compare`, dispatched by cli.main, on two tiny runs (ES, Adam)."""
    es_run, adam_run = train_tiny(tmp_path / "es", "name=es_tiny"), train_tiny(tmp_path / "adam", "outer=adam",
                                                                                "name=adam_tiny")
    capsys.readouterr()
    assert main(["evaluate", str(es_run), "--tasks", "4", "--no-progress", "--json", str(tmp_path / "eval.json")]) == 0
    assert "4 tasks of digits (train)" in capsys.readouterr().out
    results = json.loads((tmp_path / "eval.json").read_text())["results"]
    assert [r["label"] for r in results] == [es_run.name, "fa baseline", "bp baseline"]
    assert results[0]["theta"] == json.loads((es_run / "theta.json").read_text())["theta"]
    assert all(len(r["task_accuracy"]) == 4 for r in results)
    out = tmp_path / "report"
    assert main(["compare", str(es_run), str(adam_run), "--out", str(out), "--eval-tasks", "4", "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == str(out / "report.md")
    held_out = (out / "report.md").read_text().split("## Held-out evaluation")[1]
    assert "| es_tiny |" in held_out and "| adam_tiny |" in held_out and (out / "learning.png").is_file()


def test_train_overrides_may_follow_the_options(tmp_path, capsys):
    from evoplastic.cli import build_parser, parse

    args = parse(build_parser(), ["train", "configs/quickstart.yaml", "--no-progress", "steps=2", "--runs-dir",
                                  str(tmp_path), "es.population_size=4"])
    assert args.config_and_overrides == ["configs/quickstart.yaml", "steps=2", "es.population_size=4"]
    assert args.no_progress and args.runs_dir == str(tmp_path)
    with pytest.raises(SystemExit):
        parse(build_parser(), ["train", "configs/quickstart.yaml", "--no-such-option"])
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err
