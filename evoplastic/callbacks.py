"""Per-step callbacks for evoplastic.train: each gets the step's metrics dict after it is logged."""

from __future__ import annotations

from numbers import Real
from pathlib import Path
from typing import Any


class TensorBoard:
    """Write every numeric metric of each step as a TensorBoard scalar (needs the 'tensorboard' package)."""

    def __init__(self, logdir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise ImportError("the TensorBoard callback needs the tensorboard package: "
                              "pip install 'evoplastic[tensorboard]'") from err
        self.writer = SummaryWriter(str(logdir))

    def __call__(self, record: dict[str, Any]) -> None:
        step = int(record.get("step", 0))
        for key, value in record.items():
            if isinstance(value, Real) and not isinstance(value, bool) and key != "step":
                self.writer.add_scalar(key, float(value), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class History:
    """Keep every step's record in memory (``history.records``), e.g. to plot live in a notebook."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def __call__(self, record: dict[str, Any]) -> None:
        self.records.append(dict(record))
