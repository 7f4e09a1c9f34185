"""The stats document: the engine's ``StatsTracker`` and its ``stats.yaml`` rendering.

``stats.yaml`` is written here when the engine writes it itself (no background flusher, the
close of a date, a flush); the flusher's periodic copy is scheduled in ``flush_schedule.py``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from argo_engine.engine.base import EngineBase
from argo_engine.engine.stats import StatsTracker
from argo_engine.persistence.schema import STATS_FILE
from argo_engine.persistence.stats_yaml import write_stats_yaml


class StatsDocument(EngineBase):
    """Builds the statistics and writes ``stats.yaml`` (a part of ``TradingEngine``)."""

    def _new_stats(self, day: date) -> StatsTracker:
        return StatsTracker(**self._tracker_identity(day))

    def _stats_document(self) -> dict[str, Any]:
        _, stats, _ = self._require_day()
        assert self.folder is not None
        doc = stats.document(now=self.clock.now(), run_folder=self.folder)
        doc["id"] = self.run_id_on_day
        if self.run_id_on_day != f"run_{self.run_number}":
            # DESIGN.md: a run_N taken by another session on a later date is recorded here.
            doc["session_run_id"] = f"run_{self.run_number}"
        return doc

    def write_stats(self) -> None:
        """Write stats.yaml now (atomically) if anything changed since the last write."""
        if not self._stats_dirty or self.folder is None or self.stats is None:
            return
        if self.writers is not None:
            self.writers.wait()
        write_stats_yaml(self.folder / STATS_FILE, self._stats_document())
        self._stats_dirty = False
        now = self.clock.monotonic()
        self._next_stats_at = now + self.settings.persistence.flush_interval_s
        self._stats_earliest = now + self.settings.persistence.stats_min_interval_s


__all__ = ["StatsDocument"]
