"""Read a YAML file into Python values, turning a syntax error into one line that names the file and place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class YAMLFileError(ValueError):
    """A YAML file cannot be read or parsed; the message names the file, the line and the fix."""


def _where(err: yaml.YAMLError) -> str:
    """' at line L, column C' from the parser's mark (1-based), or '' when it gives none."""
    mark = getattr(err, "problem_mark", None)
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def load_yaml(path: str | Path) -> Any:
    """Parse the YAML file at path; a missing, unreadable or malformed file is a YAMLFileError."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise YAMLFileError(f"cannot read {path}: {err}; check the path and its permissions") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise YAMLFileError(f"{path} is not valid YAML{_where(err)}: {problem}; fix that line (indentation, a "
                            "missing ':' after a key, or an unclosed quote or bracket)") from None
