"""Running one pipeline stage, or skipping it when its manifest says it is up to date."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.paths import real_dir
from . import manifest
from .manifest import StageKey
from .progress import Progress, StageRecord, StageStatus
from .result import DeployOptions


class StageRunner:
    """Runs stages in order, records what each did and reports it to the progress display."""

    def __init__(self, options: DeployOptions, progress: Progress) -> None:
        self.options = options
        self.progress = progress
        self.records: list[StageRecord] = []

    def stage(self, name: str, stage_dir: Path, key: StageKey, body: Callable[[], dict[str, Any] | None],
              note: Callable[[dict[str, Any]], str] = lambda r: "", outputs: list[str] | None = None) -> dict[str, Any]:
        """Run ``body`` unless the stage's manifest says it is up to date; returns the stage's result."""
        t0 = time.perf_counter()
        real_dir(self.options.build_dir, stage_dir)  # never through a planted link (checked before the manifest)
        stored = manifest.up_to_date(stage_dir, key)
        if stored is not None:
            result, status = stored["result"], StageStatus.UP_TO_DATE
        else:
            manifest.begin(stage_dir)
            result = manifest.finish(stage_dir, key, body() or {}, outputs)["result"]
            status = StageStatus.RAN
        self.record(StageRecord(name, status, time.perf_counter() - t0, note(result)))
        return result

    def record(self, rec: StageRecord) -> None:
        self.records.append(rec)
        self.progress.stage(rec)


