"""Ctrl-C and refusals under mpiexec: the exit status, the resume command with its launcher, no abort noise."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evoplastic.bench.mpi import child_env, find_mpiexec, mpiexec_command

REPO = Path(__file__).resolve().parents[1]
LONG_YAML = """\
name: tiny
steps: 400
tasks_per_step: 2
eval_every: 0
final_eval_tasks: 7
network: {dims: [64, 12, 10]}
task: {dataset: digits, n_way: 3, k_shot: 5, n_query: 3}
rule: {terms: bio}
es: {population_size: 5}
"""
HOLD_LOCK = """
import sys, time
from evoplastic.run.rundir import RunDir
with RunDir.open(sys.argv[1]).lock():
    print("locked", flush=True)
    time.sleep(120)
"""

pytestmark = pytest.mark.skipif(find_mpiexec() is None, reason="no mpiexec next to sys.executable or on PATH "
                                "(pip install mpich, or load your cluster's MPI)")


def start(args: list[str]) -> subprocess.Popen:
    command = [*mpiexec_command(2), sys.executable, "-m", "evoplastic", *args]
    return subprocess.Popen(command, cwd=REPO, env=child_env(1), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for(path_glob: str, root: Path, seconds: float = 90) -> Path:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = list(root.glob(path_glob))
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no {path_glob} under {root} after {seconds} s")


def test_ctrl_c_under_mpiexec_exits_130_naming_the_run_and_the_launcher(tmp_path):
    (tmp_path / "long.yaml").write_text(LONG_YAML)
    job = start(["train", str(tmp_path / "long.yaml"), "--runs-dir", str(tmp_path / "runs"), "--no-progress"])
    try:
        checkpoint = wait_for("*/checkpoint.pt", tmp_path / "runs")
        job.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends to mpiexec
        _, err = job.communicate(timeout=60)
    finally:
        job.kill()
    assert job.returncode == 130, err
    assert f"continue with 'mpiexec -n 2 evoplastic train --resume {checkpoint.parent}'" in err
    assert "RUN_DIR" not in err and "Traceback" not in err


def test_a_refused_resume_under_mpiexec_is_one_line_without_abort(tmp_path):
    run = tmp_path / "runs" / "run"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("name: tiny\n")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        job = start(["train", "--resume", str(run), "--no-progress"])
        _, err = job.communicate(timeout=120)
    finally:
        holder.kill()
        holder.wait()
    assert job.returncode == 2, err
    assert f"run directory {run} is in use by process {holder.pid}" in err
    assert "Traceback" not in err and "MPI_Abort" not in err and "aborting all ranks" not in err
