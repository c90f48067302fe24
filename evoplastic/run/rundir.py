"""The run record shared by both outer loops: one directory per run.

``runs/<timestamp>_<name>/`` holds config.yaml (resolved), meta.json (versions, git
commit, hardware, command), metrics.jsonl (one JSON object per step), theta.json
(final rule), checkpoint.pt (written atomically every step, the one before kept as
checkpoint.prev.pt), lock (the pid of the process training into it) and plots/*.png.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from evoplastic.config import ExperimentConfig, config_from_dict, config_to_dict
from evoplastic.plugins import import_recorded
from evoplastic.yamlfile import load_yaml

CHECKPOINT = "checkpoint.pt"
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"
"""The checkpoint before the last one: a corrupt checkpoint.pt costs one step, not the run."""
LOCK = "lock"
"""Locked (flock) by the process training into the run; holds its pid."""
METRICS = "metrics.jsonl"


class RunDirError(RuntimeError):
    """A run directory cannot be used (busy, unwritable, damaged); the message names the file and the fix."""


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


def _make_run_path(root: Path, name: str) -> Path:
    """Create and return a fresh runs/<time>_<name>[_k] directory; an unusable runs dir is a RunDirError."""
    if root.exists() and not root.is_dir():
        raise RunDirError(f"runs directory {root} is a file, not a directory; give --runs-dir a directory "
                          "(it is created if missing)")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, suffix = root / f"{stamp}_{name}", 1
    while path.exists():
        suffix += 1
        path = root / f"{stamp}_{name}_{suffix}"
    try:
        path.mkdir(parents=True)
    except OSError as err:
        raise RunDirError(f"cannot create run directory {path} ({err.strerror}); give --runs-dir a writable "
                          "directory") from None
    return path


def _read_checkpoint(file: Path) -> dict[str, Any]:
    """Load one checkpoint file; a missing, truncated or foreign file is a RunDirError naming it."""
    if not file.is_file():
        raise RunDirError(f"{file} not found")
    try:
        state = torch.load(file, weights_only=False)
    except Exception as err:  # torch.load fails with OSError, UnpicklingError, RuntimeError, EOFError, …
        reason = (str(err).splitlines() or [""])[0]
        raise RunDirError(f"{file} is unreadable, truncated or not a checkpoint ({type(err).__name__}: "
                          f"{reason})") from None
    if not isinstance(state, dict) or not {"step", "outer"} <= set(state):
        raise RunDirError(f"{file} is not an evoplastic checkpoint (no 'step' and 'outer' entries)")
    return state


def _parse_metrics(file: Path) -> list[dict[str, Any]]:
    """The records of metrics.jsonl; a torn last line (a kill mid-write) is dropped, damage elsewhere is an error."""
    lines = [(n, line) for n, line in enumerate(file.read_bytes().split(b"\n"), 1) if line.strip()]
    records = []
    for n, line in lines:
        try:
            record = json.loads(line.decode("utf-8", errors="replace"))
        except json.JSONDecodeError as err:
            record, reason = None, err.msg
        else:
            reason = "not a JSON object"
        if isinstance(record, dict):
            records.append(record)
        elif n != lines[-1][0]:
            raise RunDirError(f"{file}, line {n}: {reason}; the file was damaged or edited: delete that line (a "
                              "resume rewrites the file from the checkpoint's step)")
    return records


@dataclass
class RunDir:
    """A run directory; only the main process (rank 0) writes to it."""

    path: Path

    @classmethod
    def create(cls, cfg: ExperimentConfig, root: str | Path = "runs", extra: dict | None = None) -> RunDir:
        path = _make_run_path(Path(root), cfg.name)
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

    def save_config(self, cfg: ExperimentConfig) -> None:
        """Record cfg as the run's config (a resume with overrides keeps them for the next resume)."""
        _atomic_write_bytes(self.path / "config.yaml",
                            lambda tmp: tmp.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False)))

    def config(self) -> ExperimentConfig:
        import_recorded(self._meta_plugins())  # plug-ins the run used, by 'module:attr'
        values = load_yaml(self.path / "config.yaml")
        if not isinstance(values, dict):
            raise RunDirError(f"{self.path / 'config.yaml'} holds no config mapping; restore it from the "
                              f"checkpoint: torch.load('{self.path / CHECKPOINT}', weights_only=False)['config']")
        return config_from_dict(values)

    def _meta_plugins(self) -> dict[str, str]:
        try:
            return dict(json.loads((self.path / "meta.json").read_text()).get("plugins") or {})
        except (OSError, ValueError, AttributeError):
            return {}

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's lock for the block, so that a second process training into it is refused.

        A KeyboardInterrupt leaving the block carries ``run_dir`` (this path) for the resume hint.
        """
        fd = self._open_lock()
        try:
            self._acquire(fd)
            try:
                yield
            except KeyboardInterrupt as err:
                err.run_dir = self.path
                raise
            finally:
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # releases the flock

    def _open_lock(self) -> int:
        """The lock file's descriptor; an unwritable run directory is a RunDirError saying what to do."""
        if os.access(self.path, os.W_OK):
            try:
                return os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                reason = err.strerror
        else:
            reason = "read-only file system" if os.statvfs(self.path).f_flag & os.ST_RDONLY else "no write permission"
        raise RunDirError(f"run directory {self.path} is not writable ({reason}): training writes its metrics and "
                          f"checkpoints there; make it writable (chmod -R u+w {self.path}) or copy it to a writable "
                          "place and resume the copy")

    def _acquire(self, fd: int) -> None:
        """flock the open lock file and write our pid into it, or refuse naming the holder's pid."""
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RunDirError(f"run directory {self.path} is in use by process {holder} (it holds "
                              f"{self.path / LOCK}); wait for it to finish or stop it (kill {holder}), then "
                              "resume") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)

    def log(self, record: dict[str, Any]) -> None:
        with open(self.path / METRICS, "a") as f:
            f.write(json.dumps(record) + "\n")

    def metrics(self) -> list[dict[str, Any]]:
        file = self.path / METRICS
        return _parse_metrics(file) if file.is_file() else []

    def truncate_metrics(self, steps: int) -> None:
        """Keep one record (the last written) per step < steps, in step order: what the checkpoint at steps saw."""
        by_step = {r.get("step", 0): r for r in self.metrics() if r.get("step", 0) < steps}
        kept = [by_step[s] for s in sorted(by_step)]
        _atomic_write_bytes(self.path / METRICS,
                            lambda p: p.write_text("".join(json.dumps(r) + "\n" for r in kept)))

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Write checkpoint.pt atomically; the one it replaces becomes checkpoint.prev.pt."""
        current, tmp = self.path / CHECKPOINT, self.path / (CHECKPOINT + ".tmp")
        torch.save(state, tmp)
        if current.is_file():
            os.replace(current, self.path / PREVIOUS_CHECKPOINT)
        os.replace(tmp, current)

    def load_checkpoint(self) -> dict[str, Any]:
        """The last checkpoint, or the one before it (with a warning) when the last is missing or unreadable."""
        current, previous = self.path / CHECKPOINT, self.path / PREVIOUS_CHECKPOINT
        if not current.is_file() and not previous.is_file():
            raise FileNotFoundError(f"{current} not found: the run has no checkpoint to resume from; start it "
                                    "again without --resume")
        try:
            return _read_checkpoint(current)
        except RunDirError as err:
            if not previous.is_file():
                raise RunDirError(f"{err}; there is no {PREVIOUS_CHECKPOINT} to fall back on: start the run "
                                  "again without --resume") from None
            state = _read_checkpoint(previous)
            print(f"warning: {err}; resuming from {previous} (step {state['step']}, one step earlier)",
                  file=sys.stderr)
            return state

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        _atomic_write_bytes(self.path / name, lambda p: p.write_text(json.dumps(data, indent=2)))

    def update_json(self, name: str, data: dict[str, Any]) -> None:
        """Merge data into the JSON object stored in name (created if missing)."""
        current = self.read_json(name) if (self.path / name).is_file() else {}
        self.write_json(name, {**current, **data})

    def read_json(self, name: str) -> dict[str, Any]:
        return json.loads((self.path / name).read_text())
