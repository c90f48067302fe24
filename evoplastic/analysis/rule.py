"""Rules named on the command line or in the API: a run directory (any family), a theta.json or NAME:θ,….

Reads the run record for the families; the paper family's rule text, baselines and ablations live in
evoplastic.families.paper.rulespec.
"""

from __future__ import annotations

import sys
from pathlib import Path

from evoplastic.families.paper import rulespec
from evoplastic.families.paper.rulespec import Rule
from evoplastic.run.rundir import RunDir


def run_theta(run: RunDir) -> list[float]:
    """A run's final θ from theta.json, or, for an unfinished run, its last logged centre (with a note)."""
    if (run.path / "theta.json").is_file():
        return run.read_json("theta.json")["theta"]
    rows = [r for r in run.metrics() if "theta/center" in r]
    if not rows:
        raise ValueError(f"{run.path} has no theta.json and no logged θ yet: nothing to evaluate")
    print(f"note: {run.path} has no theta.json; using the centre θ of step {rows[-1]['step']}", file=sys.stderr)
    return rows[-1]["theta/center"]


def read_run(path: Path) -> tuple:
    """(config, final θ) of the run directory at path."""
    run = RunDir.open(path)
    return run.config(), run_theta(run)


def parse_rule(text: str, overrides: tuple[str, ...] | list[str] = ()) -> Rule:
    """A paper-family RULE: a run directory, a theta.json file or NAME:θ,…, with ``key=value`` config edits."""
    return rulespec.parse_rule(text, overrides, read_run)
