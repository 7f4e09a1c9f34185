"""The engine state: ``.journal/engine-state.json``, its save, restore and load.

The state holds what the files alone do not tell (broker book, statistics, strategy cache,
the stream's cursors, open orders, the order sequence); it never claims more than the files
hold: the rows it counts are synced first.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson

from argo_engine.domain.market import Bar
from argo_engine.domain.orders import Order
from argo_engine.engine.base import EngineBase
from argo_engine.engine.stats import StatsTracker
from argo_engine.errors import RecoveryError, StrategyError
from argo_engine.persistence.files import atomic_write_bytes
from argo_engine.persistence.schema import JOURNAL_DIR

STATE_FILE = "engine-state.json"
STATE_VERSION = 1


class EngineState(EngineBase):
    """Saves and restores the engine state (a part of ``TradingEngine``)."""

    def save_state(self) -> None:
        """Write the engine state (broker, stats, strategy cache, cursors) into the run folder."""
        if self.folder is None or self.stats is None:
            return
        if self.writers is not None:
            # A background flush may be writing an older state to the same file.
            self.writers.wait()
        counted = self._counted_trades()
        data = self._state_bytes()
        if self.writers is not None:
            # The state must never claim more than the files hold: rows first, then state.
            self.writers.sync()
        journal = self.folder / JOURNAL_DIR
        journal.mkdir(exist_ok=True)
        if self._day_trades is not None:
            self._day_trades.sync_to(counted)
        atomic_write_bytes(journal / STATE_FILE, data)
        # The saved broker state now holds every order accepted so far.
        self._accepted.drain()

    def _counted_trades(self) -> int:
        return len(self._day_trades) if self._day_trades is not None else 0

    def _state_bytes(self) -> bytes:
        """The engine state as JSON bytes: a snapshot that later bars cannot change.

        Raises:
            StrategyError: If the strategy cache is not JSON-serializable.
        """
        assert self.stats is not None
        state = {
            "version": STATE_VERSION,
            "session_id": self.session_id,
            "run_number": self.run_number,
            "date": self.day.isoformat() if self.day else None,
            "session_start": self.session_start.isoformat(),
            "saved_at": self.clock.now().isoformat(),
            "order_seq": self._order_seq,
            "last_time": {s: t.isoformat() for s, t in self._last_time.items()},
            "last_bar": {
                s: [b.time.isoformat(), b.open, b.high, b.low, b.close, b.volume]
                for s, b in self._last_bar.items()
            },
            "open_orders": [o.to_dict() for o in self._open.values()],
            "broker": self.broker.save_state(),
            "stats": self.stats.to_state(),
            "cache": self.context.cache,
            # How many lines of .journal/trade-ids.txt this state counts (the ids themselves
            # would make every state save grow with the date's fills).
            "day_trades_counted": self._counted_trades(),
        }
        try:
            return orjson.dumps(state, default=_json_default)
        except TypeError as exc:
            raise StrategyError(f"strategy cache is not JSON-serializable: {exc}") from exc

    def restore_state(self, state: Mapping[str, Any], day: date) -> None:
        """Restore a saved engine state; the stats roll to ``day`` if the state is older."""
        self._order_seq = int(state.get("order_seq", 0))
        self.session_start = datetime.fromisoformat(state["session_start"])
        self._last_time = {s: datetime.fromisoformat(t) for s, t in state["last_time"].items()}
        self._last_bar = {
            s: Bar(s, datetime.fromisoformat(v[0]), v[1], v[2], v[3], v[4], v[5])
            for s, v in state.get("last_bar", {}).items()
        }
        self._open = {o["order_id"]: Order.from_dict(o) for o in state.get("open_orders", [])}
        self.broker.restore_state(state["broker"])
        saved_day = (
            date.fromisoformat(state["stats"]["trading_date"])
            if state.get("stats", {}).get("trading_date")
            else None
        )
        self.stats = StatsTracker.from_state(
            state["stats"], **self._tracker_identity(saved_day or day)
        )
        if self.stats.trading_date != day:
            self.stats.roll_day(day)
        self.context.replace_cache(dict(state.get("cache", {})))


def load_state(folder: Path) -> dict[str, Any] | None:
    """Read the engine state saved in a run folder, or None when there is none.

    Raises:
        RecoveryError: When the file exists but cannot be parsed.
    """
    path = folder / JOURNAL_DIR / STATE_FILE
    if not path.exists():
        return None
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise RecoveryError(f"engine state {path} is unreadable: {exc}", path=str(path)) from exc
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        raise RecoveryError(f"engine state {path} has an unknown format", path=str(path))
    return data


def _json_default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


__all__ = ["STATE_FILE", "STATE_VERSION", "EngineState", "load_state"]
