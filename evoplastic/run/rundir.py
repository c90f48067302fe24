"""The run record shared by both outer loops: one directory per run.

``runs/<timestamp>_<name>/`` holds config.yaml (resolved), meta.json (versions, git
commit, hardware, command), metrics.jsonl (one JSON object per step), theta.json
(final rule), checkpoint.pt (written atomically every step, the one before kept as
checkpoint.prev.pt), training.pid (the pid of the process training into it, while it trains) and
plots/*.png. The lock is an flock on the directory itself, so deleting any file cannot defeat it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from evoplastic.config import CONFIG_VERSION, ConfigError, ExperimentConfig, config_from_dict, config_to_dict
from evoplastic.errors import RunDirError
from evoplastic.plugins import import_recorded
from evoplastic.yamlfile import load_yaml

CHECKPOINT = "checkpoint.pt"
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"
"""The checkpoint before the last one: a corrupt checkpoint.pt costs one step, not the run."""
PID_FILE = "training.pid"
"""The pid of the process training into the run, removed when it stops; the lock itself is on the directory."""
METRICS = "metrics.jsonl"
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
"""Write failures that more space (or a higher ``ulimit -f``) cures."""

__all__ = ["CHECKPOINT", "METRICS", "PID_FILE", "PREVIOUS_CHECKPOINT", "RunDir", "RunDirError",
           "interrupted_message", "write_failure"]


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


def _write_reason(file: Path, err: BaseException) -> str:
    """Why writing file failed, in words: disk full, file-size limit, read-only, no permission, or the error."""
    code = getattr(err, "errno", None)
    if code is None:  # torch.save reports a failed write as "unexpected pos …": find the cause
        free = shutil.disk_usage(file.parent).free if file.parent.exists() else 0
        limit = _file_size_limit()
        code = errno.ENOSPC if free < (1 << 20) else errno.EFBIG if limit is not None else None
    if code == errno.EFBIG and _file_size_limit() is not None:
        return f"file size limit of {_file_size_limit()} bytes reached (ulimit -f)"
    if code in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on its file system ({shutil.disk_usage(file.parent).free / 1e6:.1f} MB free)"
    if code == errno.EROFS:
        return "read-only file system"
    if code in (errno.EACCES, errno.EPERM):
        return "no write permission"
    return os.strerror(code) if code else (str(err).splitlines() or [type(err).__name__])[0]


def _file_size_limit() -> int | None:
    """This process's file size limit (ulimit -f) in bytes, or None when unlimited."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def write_failure(file: Path, err: BaseException, what: str) -> str:
    """One line for a failed write of file: the cause, and the fix that matches it (space, permission, place)."""
    reason = _write_reason(file, err)
    if reason.startswith(("no space", "file size")):
        fix = "free some space (or raise ulimit -f)"
    elif reason == "read-only file system":
        fix = "give a directory on a writable file system"
    elif reason == "no write permission":
        fix = f"make {file.parent} writable (chmod u+w) or give another directory"
    else:
        fix = "check the file system"
    return f"cannot write {what} {file} ({reason}); {fix}"


@contextlib.contextmanager
def _writing(file: Path, what: str, then: str = "") -> Iterator[None]:
    """Turn a failed write of file (OSError; torch.save's RuntimeError) into one RunDirError line, + then."""
    try:
        yield
    except (OSError, RuntimeError) as err:
        raise RunDirError(write_failure(file, err, what) + then) from None


def _atomic_write_bytes(path: Path, write: Any) -> None:
    """Write through path.tmp and a rename: a failed write leaves the old file whole and no .tmp behind."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
        raise RunDirError(f"cannot create run directory {path} ({_write_reason(path, err)}); give --runs-dir a "
                          "writable directory") from None
    return path


def _check_version(cfg: ExperimentConfig) -> None:
    """A new run is written in this version's schema: a newer config_version is refused before anything runs."""
    if cfg.config_version > CONFIG_VERSION:
        raise ConfigError(f"config_version={cfg.config_version} is newer than this evoplastic writes "
                          f"({CONFIG_VERSION}); drop config_version from the config and overrides (runs record it "
                          "themselves) or upgrade evoplastic")


def interrupted_message(run_dir: Path | None, resumable: bool, launcher: str = "") -> str:
    """The line printed on Ctrl-C: how to continue the run, or that it had no checkpoint to continue from."""
    if run_dir is None:
        return "evoplastic: interrupted"
    if not resumable:
        return (f"evoplastic: interrupted before the first checkpoint of {run_dir}, so there is nothing to resume; "
                f"delete it and start the run again")
    command = f"{launcher} evoplastic" if launcher else "evoplastic"
    return f"evoplastic: interrupted; continue with '{command} train --resume {shlex.quote(str(run_dir))}'"


def _json_damage(file: Path) -> str | None:
    """Why file is not a readable JSON object, or None when it is."""
    try:
        value = json.loads(file.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        return "not UTF-8 text"
    except json.JSONDecodeError as err:
        return f"not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})"
    return None if isinstance(value, dict) else "not a JSON object"


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


JSON_FIXES = {"meta.json": "delete it (the run writes a new one, without the first session's environment)",
             "theta.json": "delete it (the final evaluation writes it again)"}
"""How to repair each JSON record of a run when it is damaged."""


@dataclass
class RunDir:
    """A run directory; only the main process (rank 0) writes to it."""

    path: Path

    @classmethod
    def create(cls, cfg: ExperimentConfig, root: str | Path = "runs", extra: dict | None = None) -> RunDir:
        """A new run directory holding config.yaml and meta.json; on failure nothing is left behind."""
        _check_version(cfg)
        path = _make_run_path(Path(root), cfg.name)
        run = cls(path)
        try:
            run.save_config(cfg)
            run.write_json("meta.json", {**environment(), **(extra or {})})
        except RunDirError as err:
            shutil.rmtree(path, ignore_errors=True)
            raise RunDirError(f"{err} (the unfinished run directory was removed)") from None
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        path = Path(path)
        if not (path / "config.yaml").is_file():
            raise RunDirError(f"{path} is not a run directory (no config.yaml); give a directory under runs/")
        return cls(path)

    def config(self) -> ExperimentConfig:
        import_recorded(self._meta_plugins())  # plug-ins the run used, by 'module:attr'
        values = load_yaml(self.path / "config.yaml")
        if not isinstance(values, dict):
            raise RunDirError(f"{self.path / 'config.yaml'} holds no config mapping; restore it from the "
                              f"checkpoint: torch.load('{self.path / CHECKPOINT}', weights_only=False)['config']")
        return config_from_dict(values)

    def save_config(self, cfg: ExperimentConfig) -> None:
        """Write config.yaml (atomically): the config the run's steps follow, overrides of a resume included."""
        _check_version(cfg)
        text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
        file = self.path / "config.yaml"
        with _writing(file, "the run's config", self._resume_hint()):
            _atomic_write_bytes(file, lambda p: p.write_text(text))

    def check_records(self) -> None:
        """Refuse, before any step runs, a damaged meta.json or theta.json (each is read or rewritten later)."""
        for name, fix in JSON_FIXES.items():
            file = self.path / name
            if file.is_file() and (damage := _json_damage(file)):
                raise RunDirError(f"{file} is damaged ({damage}); {fix}, then resume")

    def _meta_plugins(self) -> dict[str, str]:
        try:
            return dict(json.loads((self.path / "meta.json").read_text()).get("plugins") or {})
        except (OSError, ValueError, AttributeError):
            return {}

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's lock (an flock on the directory) for the block; a second trainer is refused.

        training.pid names the holder while it trains. A KeyboardInterrupt leaving the block carries
        ``run_dir`` (this path) and ``resumable`` (whether a checkpoint exists) for the message.
        """
        fd = self._open_directory()
        try:
            self._acquire(fd)
            try:
                self._write_pid()
                yield
            except KeyboardInterrupt as err:
                err.run_dir = self.path
                err.resumable = self.has_checkpoint()
                raise
            finally:
                (self.path / PID_FILE).unlink(missing_ok=True)
        finally:
            os.close(fd)  # releases the flock

    def _open_directory(self) -> int:
        """A descriptor of the run directory; an unwritable run directory is a RunDirError saying what to do."""
        if os.access(self.path, os.W_OK):
            return os.open(self.path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        if os.statvfs(self.path).f_flag & os.ST_RDONLY:
            reason, fix = "read-only file system", "copy it to a writable place and resume the copy"
        else:
            reason, fix = "no write permission", f"make it writable (chmod -R u+w {self.path}) or copy it to a " \
                                                 "writable place and resume the copy"
        raise RunDirError(f"run directory {self.path} is not writable ({reason}): training writes its metrics and "
                          f"checkpoints there; {fix}")

    def _acquire(self, fd: int) -> None:
        """flock the directory, or refuse naming the holder's pid."""
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder()
            stop = f"stop it (kill {holder})" if holder.isdigit() else "stop it"
            raise RunDirError(f"run directory {self.path} is in use by process {holder}; wait for it to finish or "
                              f"{stop}, then resume") from None

    def _holder(self) -> str:
        """The pid holding the directory's flock: from /proc/locks (Linux), else training.pid, else words."""
        info = os.stat(self.path)
        device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
        with contextlib.suppress(OSError):
            for line in Path("/proc/locks").read_text().splitlines():
                words = line.split()
                if "FLOCK" in words and "->" not in words and device in words:
                    return words[words.index(device) - 1]
        with contextlib.suppress(OSError):
            pid = (self.path / PID_FILE).read_text().strip()
            if pid.isdigit():
                return pid
        return "another process"

    def _write_pid(self) -> None:
        file = self.path / PID_FILE
        with _writing(file, "the run's pid file"):
            _atomic_write_bytes(file, lambda p: p.write_text(f"{os.getpid()}\n"))

    def has_checkpoint(self) -> bool:
        return (self.path / CHECKPOINT).is_file() or (self.path / PREVIOUS_CHECKPOINT).is_file()

    def _resume_hint(self) -> str:
        """'; nothing is lost: …' for a failed write, naming the resume command when there is a checkpoint."""
        if not self.has_checkpoint():
            return ""
        return (f"; the last checkpoint is intact: continue afterwards with 'evoplastic train --resume "
                f"{shlex.quote(str(self.path))}'")

    def log(self, record: dict[str, Any]) -> None:
        file = self.path / METRICS
        with _writing(file, "the metrics", self._resume_hint()), open(file, "a") as f:
            f.write(json.dumps(record) + "\n")

    def metrics(self) -> list[dict[str, Any]]:
        file = self.path / METRICS
        return _parse_metrics(file) if file.is_file() else []

    def truncate_metrics(self, steps: int) -> None:
        """Keep one record (the last written) per step < steps, in step order: what the checkpoint at steps saw."""
        by_step = {r.get("step", 0): r for r in self.metrics() if r.get("step", 0) < steps}
        kept = [by_step[s] for s in sorted(by_step)]
        file = self.path / METRICS
        with _writing(file, "the metrics", self._resume_hint()):
            _atomic_write_bytes(file, lambda p: p.write_text("".join(json.dumps(r) + "\n" for r in kept)))

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Write checkpoint.pt atomically; the one it replaces becomes checkpoint.prev.pt."""
        current, tmp = self.path / CHECKPOINT, self.path / (CHECKPOINT + ".tmp")
        with _writing(current, "the checkpoint", self._resume_hint()):
            try:
                torch.save(state, tmp)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            if current.is_file():
                os.replace(current, self.path / PREVIOUS_CHECKPOINT)
            os.replace(tmp, current)

    def load_checkpoint(self, restore: Callable[[dict[str, Any]], None] = lambda state: None) -> dict[str, Any]:
        """The last checkpoint, or the one before it (with a warning) when the last is missing or unreadable.

        ``restore(state)`` is tried on each in turn: a checkpoint it cannot restore (a damaged searcher
        inside a valid container) counts as unreadable.
        """
        current, previous = self.path / CHECKPOINT, self.path / PREVIOUS_CHECKPOINT
        if not self.has_checkpoint():
            raise RunDirError(f"{current} not found: the run has no checkpoint to resume from; start it "
                              "again without --resume")
        try:
            return _restored(current, restore)
        except RunDirError as err:
            if not previous.is_file():
                raise RunDirError(f"{err}; there is no {PREVIOUS_CHECKPOINT} to fall back on: start the run "
                                  "again without --resume") from None
            state = _restored(previous, restore)
            print(f"warning: {err}; resuming from {previous} (step {state['step']}, one step earlier)",
                  file=sys.stderr)
            return state

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        file = self.path / name
        with _writing(file, f"the run's {name}", self._resume_hint()):
            _atomic_write_bytes(file, lambda p: p.write_text(json.dumps(data, indent=2)))

    def update_json(self, name: str, data: dict[str, Any]) -> None:
        """Merge data into the JSON object stored in name (created if missing)."""
        current = self.read_json(name) if (self.path / name).is_file() else {}
        self.write_json(name, {**current, **data})

    def read_json(self, name: str) -> dict[str, Any]:
        """The JSON object stored in name; a damaged file is a RunDirError naming it and the repair."""
        file = self.path / name
        damage = _json_damage(file)
        if damage:
            fix = JSON_FIXES.get(name, "restore or delete it")
            raise RunDirError(f"{file} is damaged ({damage}); {fix}")
        return json.loads(file.read_text())


def _restored(file: Path, restore: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Read file and restore its state; either failure is a RunDirError naming file."""
    state = _read_checkpoint(file)
    try:
        restore(state)
    except Exception as err:  # a damaged searcher pickle fails with any error its bytes happen to cause
        reason = (str(err).splitlines() or [""])[0]
        raise RunDirError(f"{file} holds a damaged search state ({type(err).__name__}: {reason})") from None
    return state
