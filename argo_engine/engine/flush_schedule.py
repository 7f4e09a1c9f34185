"""The periodic flush: handing rows, engine state and ``stats.yaml`` to the background flusher.

``TradingEngine.process_bar`` decides when a flush or a stats write is due; this part
snapshots what goes with it, on the engine thread, for the flusher to write once the journals
holding every row it counts are fsynced.
"""

from __future__ import annotations

from argo_engine.engine.state import STATE_FILE, EngineState
from argo_engine.engine.stats_document import StatsDocument
from argo_engine.persistence.files import atomic_write_bytes
from argo_engine.persistence.schema import JOURNAL_DIR, STATS_FILE
from argo_engine.persistence.stats_yaml import plain_document, write_stats_yaml
from argo_engine.persistence.writers import RunWriters


class FlushSchedule(EngineState, StatsDocument):
    """Submits the interval flush with its state and stats (a part of ``TradingEngine``)."""

    def _submit_interval_flush(
        self, writers: RunWriters, *, with_state: bool, full: bool = True
    ) -> None:
        """Hand the periodic flush, engine state and stats.yaml to the background flusher.

        The state and the stats document are snapshotted here, on the engine thread; the
        flusher writes them once the journals holding every row they count are fsynced.
        """
        after_sync = None
        if with_state and self.folder is not None and self.stats is not None:
            trades, counted = self._day_trades, self._counted_trades()
            data = self._state_bytes()
            document = plain_document(self._stats_document())
            folder = self.folder
            accepted_orders = self._accepted
            accepted, accepted_generation = accepted_orders.snapshot()
            self._stats_dirty = False
            now = self.clock.monotonic()
            self._next_stats_at = now + self.settings.persistence.flush_interval_s
            self._stats_earliest = now + self.settings.persistence.stats_min_interval_s

            def after_sync() -> None:
                (folder / JOURNAL_DIR).mkdir(exist_ok=True)
                if trades is not None:
                    trades.sync_to(counted)  # before the state that counts them
                atomic_write_bytes(folder / JOURNAL_DIR / STATE_FILE, data)
                if accepted is not None and not accepted.truncate_if_unchanged(accepted_generation):
                    # Accepted after the snapshot: those lines must wait for the next state.
                    accepted_orders.dirty = True
                write_stats_yaml(folder / STATS_FILE, document)

        writers.submit(after_sync, full=full)


__all__ = ["FlushSchedule"]
