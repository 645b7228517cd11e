"""What ``toolchain deploy`` tells a person while it runs: one line per stage, a summary at the end.

Three modes: NORMAL (stage lines and tables on stdout), QUIET (nothing on
success; errors still go to stderr) and JSON (stdout holds one JSON document at
the end; anything the training stages print goes to stderr instead).
"""
from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any, TextIO

from ..core.escape import terminal_text


class OutputMode(Enum):
    NORMAL = "normal"
    QUIET = "quiet"
    JSON = "json"


class StageStatus(Enum):
    RAN = "ran"
    UP_TO_DATE = "up to date"
    SKIPPED = "skipped"
    REJECTED = "rejected"  # its gate failed: the candidate went beside the last good output, which stays


@dataclass(frozen=True)
class StageRecord:
    name: str
    status: StageStatus
    time_s: float
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status.value, "time_s": round(self.time_s, 3), "note": self.note}


class Progress:
    def __init__(self, mode: OutputMode = OutputMode.NORMAL, out: TextIO | None = None) -> None:
        self.mode = mode
        self.out = out if out is not None else sys.stdout
        self.records: list[StageRecord] = []  # every stage reported so far (also when a later one fails)

    @property
    def interactive(self) -> bool:
        """A person at a terminal: the training stages may draw Keras' progress bars."""
        return self.mode is OutputMode.NORMAL and hasattr(self.out, "isatty") and self.out.isatty()

    def line(self, text: str = "") -> None:
        if self.mode is OutputMode.NORMAL:
            print(text, file=self.out, flush=True)

    def stage(self, record: StageRecord) -> None:
        self.records.append(record)
        note = f"  {terminal_text(record.note)}" if record.note else ""
        self.line(f"  {terminal_text(record.name):<32} {record.status.value:<10} {record.time_s:7.1f} s{note}")

    @contextlib.contextmanager
    def training_output(self) -> Iterator[None]:
        """Where the training stages' own prints go: stdout normally, stderr in JSON mode, nowhere when quiet."""
        if self.mode is OutputMode.NORMAL:
            yield
        elif self.mode is OutputMode.JSON:
            with contextlib.redirect_stdout(sys.stderr):
                yield
        else:
            with contextlib.redirect_stdout(io.StringIO()):
                yield
