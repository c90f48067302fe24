"""The notebook-style scripts in examples/ run as written, at small settings (fewer steps and tasks)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = {r'"steps=\d+"': '"steps=2"', r'"final_eval_tasks=\d+"': '"final_eval_tasks=3"', r"tasks=\d+\)": "tasks=3)",
         r'runs_dir="runs"': "runs_dir=RUNS"}
"""Edits that shrink an example: fewer generations and tasks, runs into a temporary directory."""


@pytest.mark.parametrize("script", sorted((ROOT / "examples").glob("*.py")), ids=lambda p: p.name)
def test_example_runs(script, tmp_path):
    text = script.read_text()
    for pattern, small in SMALL.items():
        text = re.sub(pattern, small, text)
    small_script = tmp_path / script.name
    small_script.write_text(f"RUNS = {str(tmp_path / 'runs')!r}\n" + text)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(small_script)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "run directory" in done.stdout
