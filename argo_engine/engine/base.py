"""What every part of the trading engine shares: its fields, the open-date check, callbacks.

``TradingEngine`` (``engine/core.py``) is put together from parts, one responsibility per
module, each a class that inherits the parts it calls: ``MarksAndLogs`` (``marks_logs.py``),
``StatsDocument`` (``stats_document.py``), ``EngineState`` (``state.py``),
``FlushSchedule`` (``flush_schedule.py``), ``OrderRouting`` (``orders.py``),
``Reconciliation`` (``reconcile.py``) and ``TradingDay`` (``trading_day.py``). They are parts
rather than separate objects because each reads and changes much of one engine's state
(cursors, open orders, statistics, the open date's writers), most of it on the per-bar path.
That state is set by ``TradingEngine.__init__``; the annotations below only declare it for the
type checker. They create no class attributes, so every field stays a plain instance
attribute, as cheap to read per bar as when the engine was one class, and a method of any part
is found on the engine's type as before. What does separate, the accepted-orders journal, is
an object of its own (``accepted_orders.AcceptedOrders``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from argo_engine.clock import Clock
from argo_engine.domain.ledger import PnlMethod
from argo_engine.domain.market import Bar
from argo_engine.domain.orders import Order
from argo_engine.engine.accepted_orders import AcceptedOrders
from argo_engine.engine.callbacks import EngineCallbacks
from argo_engine.engine.context import EngineContext
from argo_engine.engine.stats import StatsTracker, StrategyInfo
from argo_engine.errors import TerminalError
from argo_engine.persistence.trade_ids import TradeIdLog
from argo_engine.persistence.writers import RunWriters
from argo_engine.ports import Broker, MarketDataFeed
from argo_engine.settings import ArgoSettings
from argo_engine.strategies.base import Strategy

log = logging.getLogger(__name__)


class EngineBase:
    """The state of one engine start, shared by every part of ``TradingEngine``.

    Set by ``TradingEngine.__init__`` (where each field's purpose is said); declared here so
    that each part can be type-checked on its own.
    """

    settings: ArgoSettings
    session_id: str
    run_number: int
    feed: MarketDataFeed
    broker: Broker
    strategy: Strategy
    _strategy_name: str
    clock: Clock
    callbacks: EngineCallbacks
    session_start: datetime
    data_output: Path
    symbols: tuple[str, ...]
    _symbol_set: frozenset[str]
    _tz: ZoneInfo
    _day_start: time | None
    context: EngineContext
    _pnl_method: PnlMethod
    _slow_bar_s: float
    stats: StatsTracker | None
    writers: RunWriters | None
    day: date | None
    folder: Path | None
    run_id_on_day: str
    _day_lo: datetime
    _day_hi: datetime
    _last_time: dict[str, datetime]
    _last_bar: dict[str, Bar]
    _open: dict[str, Order]
    _order_seq: int
    _order_prefix: str
    _replay_order: Callable[[Order], None] | None
    _durable_orders: bool
    _accepted: AcceptedOrders
    _day_trades: TradeIdLog | None
    _stats_dirty: bool
    _next_stats_at: float
    _stats_earliest: float
    _started: bool
    _stopped: bool
    _counts: dict[str, int]

    @property
    def strategy_info(self) -> StrategyInfo:
        """Identity of the running strategy for stats.yaml."""
        cls = type(self.strategy)
        return StrategyInfo(
            id=getattr(cls, "strategy_id", cls.__qualname__),
            version=getattr(cls, "version", "0"),
            name=getattr(cls, "name", cls.__name__),
        )

    def _tracker_identity(self, day: date) -> dict[str, Any]:
        """What a StatsTracker of this engine is built with, for ``day`` (new or restored)."""
        return {
            "session_id": self.session_id,
            "run_id": f"run_{self.run_number}",
            "symbols": list(self.symbols),
            "initial_capital": self.settings.session.initial_capital,
            "pnl_method": self._pnl_method,
            "session_start": self.session_start,
            "strategy": self.strategy_info,
            "trading_date": day,
        }

    def _require_day(self) -> tuple[RunWriters, StatsTracker, date]:
        if self.writers is None or self.stats is None or self.day is None:
            raise RuntimeError("no trading date is open; call open_day() first")
        return self.writers, self.stats, self.day

    def _fire(self, name: str, *args: Any, fatal: bool = False) -> None:
        callback = getattr(self.callbacks, name)
        if callback is None:
            return
        try:
            callback(*args)
        except Exception as exc:
            if fatal:
                raise TerminalError(f"callback {name} failed: {exc!r}", callback=name) from exc
            log.exception("callback %s failed", name)
            if name != "on_error" and self.callbacks.on_error is not None:
                try:
                    self.callbacks.on_error(exc)
                except Exception:
                    log.exception("callback on_error failed")


__all__ = ["EngineBase"]
