"""The run directory under faults: the lock, full disks, damaged records, resumes with overrides, Ctrl-C."""

from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import matplotlib.figure
import pytest
import torch

from evoplastic.analysis import compare
from evoplastic.cli import main
from evoplastic.run import rundir
from evoplastic.run.rundir import RunDir, RunDirError

TINY = ["steps=3", "tasks_per_step=1", "eval_every=2", "eval_tasks=3", "final_eval_tasks=5",
        "network.dims=[64,12,10]", "task.n_way=3", "task.k_shot=5", "task.n_query=3", "es.population_size=4"]


def train_tiny(tmp_path: Path, *extra: str) -> Path:
    """A finished 3-step quickstart run in tmp_path/runs; returns its directory."""
    assert main(["train", "configs/quickstart.yaml", *TINY, *extra, "--runs-dir", str(tmp_path / "runs"),
                 "--no-progress"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    return run


def resume(run: Path, *extra: str) -> int:
    return main(["train", "--resume", str(run), *extra, "--no-progress"])


def records_of(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


# The lock: on the directory, so that deleting a file in it cannot defeat it.

HOLD_LOCK = """
import sys, time
from evoplastic.run.rundir import RunDir, RunDirError
with RunDir.open(sys.argv[1]).lock():
    print("locked", flush=True)
    time.sleep(60)
"""


def hold_lock(run: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_deleting_every_file_that_looks_like_a_lock_does_not_defeat_it(tmp_path, capsys):
    run = train_tiny(tmp_path)
    holder = hold_lock(run)
    try:
        for name in ("lock", "training.pid"):
            (run / name).unlink(missing_ok=True)
        before = (run / "metrics.jsonl").read_text()
        assert resume(run, "steps=5") == 2
        err = capsys.readouterr().err
        assert f"is in use by process {holder.pid}" in err and f"kill {holder.pid}" in err  # never "unknown"
        assert (run / "metrics.jsonl").read_text() == before
    finally:
        holder.kill()
        holder.wait()
    assert resume(run, "steps=4") == 0


def test_a_cleanly_finished_run_leaves_no_lock_looking_file(tmp_path):
    run = train_tiny(tmp_path)
    assert not (run / "lock").exists() and not (run / "training.pid").exists()


def test_the_lock_is_held_while_a_training_step_runs(tmp_path, tiny):
    """A probe inside the scorer: a second lock on the run must be refused at that moment."""
    from evoplastic.families import build_fitness
    from evoplastic.run.train import train

    cfg = tiny("steps=2")
    run = RunDir.create(cfg, tmp_path)
    fitness, refusals = build_fitness(cfg), []

    def probing_score(theta, step, purpose, n_tasks):
        with pytest.raises(RunDirError, match=f"in use by process {os.getpid()}"), RunDir(run.path).lock():
            pass
        refusals.append(step)
        return fitness(theta, step, purpose, n_tasks)

    train(cfg, run, fitness=fitness, score=probing_score, progress=False)
    assert refusals[:2] == [0, 1] and isinstance(refusals[-1], str)  # the steps, then the final evaluation
    with RunDir(run.path).lock():  # and released afterwards
        pass


# File-system errors: one line naming the file, the cause and the fix; nothing half-written.

def raise_on_savefig(monkeypatch, code: int, text: str) -> None:
    def savefig(self, fname, *args, **kwargs):
        raise OSError(code, text, str(fname))

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)


@pytest.mark.parametrize("code, cause", [(errno.EROFS, "read-only file system"), (errno.EACCES, "no write permission"),
                                         (errno.ENOSPC, "no space left")])
def test_plot_into_an_unwritable_or_full_directory_is_one_line(code, cause, tmp_path, capsys, monkeypatch):
    run = train_tiny(tmp_path)
    capsys.readouterr()
    raise_on_savefig(monkeypatch, code, os.strerror(code))
    assert main(["plot", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot write the plots {run / 'plots'}" in err and cause in err


def test_compare_out_into_a_read_only_directory_is_one_line(tmp_path, capsys, monkeypatch):
    run = train_tiny(tmp_path)
    capsys.readouterr()
    raise_on_savefig(monkeypatch, errno.EROFS, "Read-only file system")
    assert compare.main([str(run), "--eval-tasks", "0", "--out", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "read-only file system" in err and "give a directory on a writable" in err


def with_file_size_limit(limit: int, call):
    """call() with ulimit -f at limit bytes (a real EFBIG on any write past it), restored afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        return call()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_full_disk_at_run_creation_leaves_nothing(tmp_path, capsys):
    code = with_file_size_limit(200, lambda: main(["train", "configs/quickstart.yaml", *TINY, "--runs-dir",
                                                   str(tmp_path / "runs"), "--no-progress"]))
    assert code == 2
    assert "cannot write the run's config" in capsys.readouterr().err
    assert not any((tmp_path / "runs").iterdir())  # no run directory with an empty config.yaml


def test_full_disk_at_the_checkpoint_names_the_cause_not_torch_internals(tmp_path, capsys):
    code = with_file_size_limit(4000, lambda: main(["train", "configs/quickstart.yaml", *TINY, "--runs-dir",
                                                    str(tmp_path / "runs"), "--no-progress"]))
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot write the checkpoint" in err and "file size limit of 4000 bytes" in err
    assert "enforce fail" not in err and "unexpected pos" not in err
    (run,) = (tmp_path / "runs").iterdir()
    assert not (run / "checkpoint.pt.tmp").exists()


def test_full_disk_during_a_resume_checkpoint_says_space_and_how_to_resume(tmp_path, capsys, monkeypatch):
    run = train_tiny(tmp_path)

    def torch_save(state, path):  # torch's own words for a write that hit a full disk
        Path(path).write_bytes(b"PK")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    class FullDiskTorch:  # torch, but its save meets a full disk
        save = staticmethod(torch_save)

        def __getattr__(self, name):
            return getattr(torch, name)

    monkeypatch.setattr(rundir, "torch", FullDiskTorch())
    monkeypatch.setattr(rundir.shutil, "disk_usage", lambda path: type("Usage", (), {"free": 0})())
    assert resume(run, "steps=5") == 2
    err = capsys.readouterr().err
    assert "no space left on its file system" in err and "free some space" in err
    assert f"continue afterwards with 'evoplastic train --resume {run}'" in err
    assert not (run / "checkpoint.pt.tmp").exists()


def test_full_disk_at_the_metrics_append_is_one_line(tmp_path, capsys, monkeypatch):
    run = train_tiny(tmp_path)

    class Full:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *args):
            return False

        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rundir, "open", Full, raising=False)
    assert resume(run, "steps=5") == 2
    err = capsys.readouterr().err
    assert err.count("evoplastic: error") == 1 and f"cannot write the metrics {run / 'metrics.jsonl'}" in err
    assert "free some space" in err and "--resume" in err


def test_read_only_file_system_advice_is_not_chmod(tmp_path, capsys, monkeypatch):
    run = train_tiny(tmp_path)
    real_access, real_statvfs = os.access, os.statvfs

    class ReadOnly:
        f_flag = os.ST_RDONLY

    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if mode & os.W_OK else real_access(p, mode))
    monkeypatch.setattr(os, "statvfs", lambda p: ReadOnly() if Path(p) == run else real_statvfs(p))
    assert resume(run, "steps=5") == 2
    err = capsys.readouterr().err
    assert "read-only file system" in err and "chmod" not in err and "copy it to a writable place" in err


# Resume and the run's records.

def test_resume_overrides_are_saved_so_a_plain_resume_changes_nothing(tmp_path):
    run = train_tiny(tmp_path)
    assert resume(run, "steps=5") == 0
    assert "steps: 5" in (run / "config.yaml").read_text()
    theta, metrics = (run / "theta.json").read_text(), (run / "metrics.jsonl").read_text()
    assert resume(run) == 0  # continues under steps=5: nothing to train, the same final evaluation
    assert json.loads((run / "theta.json").read_text()) == json.loads(theta)
    assert (run / "metrics.jsonl").read_text() == metrics


def test_resume_to_fewer_steps_than_the_checkpoint_is_refused(tmp_path, capsys):
    run = train_tiny(tmp_path)
    assert resume(run, "steps=2") == 2
    assert "checkpoint is at step 3, past steps=2; give steps=3 or more" in capsys.readouterr().err


def test_a_future_config_version_is_refused_before_training(tmp_path, capsys):
    code = main(["train", "configs/quickstart.yaml", *TINY, "config_version=99", "--runs-dir", str(tmp_path),
                 "--no-progress"])
    assert code == 2
    assert "config_version=99 is newer than this evoplastic writes" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["meta.json", "theta.json"])
def test_a_damaged_json_record_is_named_before_any_step(name, tmp_path, capsys):
    run = train_tiny(tmp_path)
    (run / name).write_text('{"torch": "2.')
    before = (run / "metrics.jsonl").read_text()
    assert resume(run, "steps=5") == 2
    err = capsys.readouterr().err
    assert f"{run / name} is damaged (not valid JSON" in err and "delete it" in err
    assert (run / "metrics.jsonl").read_text() == before  # refused before the remaining steps


def test_a_checkpoint_with_a_damaged_searcher_falls_back_on_the_previous_one(tmp_path, capsys):
    run = train_tiny(tmp_path)
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    state["outer"]["searcher"] = b"\x80\x04garbage, not a pickle"
    torch.save(state, run / "checkpoint.pt")
    assert resume(run, "steps=5") == 0
    err = capsys.readouterr().err
    assert "holds a damaged search state" in err and "resuming from" in err and "checkpoint.prev.pt (step 2" in err
    assert [r["step"] for r in records_of(run)] == [0, 1, 2, 3, 4]


# Ctrl-C.

def test_interrupt_before_the_first_checkpoint_does_not_suggest_resume(tmp_path, capsys, monkeypatch):
    def interrupted(self, state):
        raise KeyboardInterrupt

    monkeypatch.setattr(RunDir, "save_checkpoint", interrupted)
    assert main(["train", "configs/quickstart.yaml", *TINY, "--runs-dir", str(tmp_path), "--no-progress"]) == 130
    (run,) = tmp_path.iterdir()
    err = capsys.readouterr().err
    assert "--resume" not in err and f"interrupted before the first checkpoint of {run}" in err
    assert "start the run again" in err
