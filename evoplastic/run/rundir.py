"""The run record shared by both outer loops: one directory per run.

``runs/<timestamp>_<name>/`` holds config.yaml (resolved), meta.json (versions, git
commit, hardware, command), metrics.jsonl (one JSON object per step), theta.json
(final rule), checkpoint.pt (written atomically every step) and plots/*.png.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from evoplastic.config import ExperimentConfig, config_from_dict, config_to_dict

CHECKPOINT = "checkpoint.pt"


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment() -> dict[str, Any]:
    """Versions, commit and hardware, so a run can be traced and rerun."""
    import evoplastic

    return {
        "evoplastic": evoplastic.__version__,
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "host": platform.node(),
        "command": " ".join(sys.argv),
    }


def _atomic_write_bytes(path: Path, write: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


@dataclass
class RunDir:
    """A run directory; only the main process (rank 0) writes to it."""

    path: Path

    @classmethod
    def create(cls, cfg: ExperimentConfig, root: str | Path = "runs", extra: dict | None = None) -> RunDir:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path(root) / f"{stamp}_{cfg.name}"
        suffix = 1
        while path.exists():
            suffix += 1
            path = Path(root) / f"{stamp}_{cfg.name}_{suffix}"
        path.mkdir(parents=True)
        run = cls(path)
        (path / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
        (path / "meta.json").write_text(json.dumps({**environment(), **(extra or {})}, indent=2))
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        path = Path(path)
        if not (path / "config.yaml").is_file():
            raise FileNotFoundError(f"{path} is not a run directory (no config.yaml); give a directory under runs/")
        return cls(path)

    def config(self) -> ExperimentConfig:
        return config_from_dict(yaml.safe_load((self.path / "config.yaml").read_text()))

    def log(self, record: dict[str, Any]) -> None:
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def metrics(self) -> list[dict[str, Any]]:
        file = self.path / "metrics.jsonl"
        if not file.is_file():
            return []
        return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]

    def truncate_metrics(self, steps: int) -> None:
        """Drop records of steps ≥ steps (written after the checkpoint a resume starts from)."""
        kept = [r for r in self.metrics() if r.get("step", 0) < steps]
        _atomic_write_bytes(self.path / "metrics.jsonl",
                            lambda p: p.write_text("".join(json.dumps(r) + "\n" for r in kept)))

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        _atomic_write_bytes(self.path / CHECKPOINT, lambda p: torch.save(state, p))

    def load_checkpoint(self) -> dict[str, Any]:
        file = self.path / CHECKPOINT
        if not file.is_file():
            raise FileNotFoundError(f"{file} not found: the run has no checkpoint to resume from")
        return torch.load(file, weights_only=False)

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        _atomic_write_bytes(self.path / name, lambda p: p.write_text(json.dumps(data, indent=2)))

    def update_json(self, name: str, data: dict[str, Any]) -> None:
        """Merge data into the JSON object stored in name (created if missing)."""
        current = self.read_json(name) if (self.path / name).is_file() else {}
        self.write_json(name, {**current, **data})

    def read_json(self, name: str) -> dict[str, Any]:
        return json.loads((self.path / name).read_text())
