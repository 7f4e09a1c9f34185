"""The engine's marks and log entries: ``marks.parquet`` and ``logs.parquet`` rows.

A log entry also goes to stdlib logging; it is stamped with the bar time (the current bar
unless given), so that a replay's logs line up with its bars.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from argo_engine.domain.enums import LogLevel, MarkShape, SignalType
from argo_engine.domain.market import Bar
from argo_engine.domain.orders import Fill
from argo_engine.domain.records import LogEntry, Mark
from argo_engine.engine.base import EngineBase

log = logging.getLogger(__name__)


class MarksAndLogs(EngineBase):
    """Writes marks and log entries for the open trading date (a part of ``TradingEngine``)."""

    def record_mark(
        self,
        *,
        title: str,
        message: str,
        color: str,
        shape: MarkShape,
        level: LogLevel,
        category: str,
        signal: SignalType | None,
    ) -> None:
        """Write a mark for the current bar."""
        writers, _, _ = self._require_day()
        bar = self.context.current_bar
        writers.append_mark(
            Mark(
                id=writers.next_id("marks"),
                market_data_id="" if bar is None else f"{bar.symbol}@{bar.time.isoformat()}",
                signal_type=None if signal is None else str(signal),
                signal_name=None if signal is None else str(signal),
                signal_time=None if signal is None or bar is None else bar.time,
                signal_symbol=None if signal is None or bar is None else bar.symbol,
                color=color,
                shape=shape if type(shape) is MarkShape else MarkShape(shape),
                level=level if type(level) is LogLevel else LogLevel(level),
                title=title,
                message=message,
                category=category,
            )
        )

    def record_log(
        self,
        message: str,
        *,
        level: LogLevel = LogLevel.INFO,
        fields: Mapping[str, object] | None = None,
        bar: Bar | None = None,
    ) -> None:
        """Write a log entry stamped with the bar time (current bar unless given)."""
        writers = self.writers
        bar = bar or self.context.current_bar
        getattr(log, "warning" if level is LogLevel.WARNING else str(level), log.info)(
            "%s", message
        )
        if writers is None:
            return
        ts = bar.time if bar is not None else self.clock.now()
        writers.append_log(
            LogEntry(
                id=writers.next_id("logs"),
                timestamp=ts,
                symbol=bar.symbol if bar is not None else "",
                level=level if type(level) is LogLevel else LogLevel(level),
                message=message,
                fields={str(k): str(v) for k, v in (fields or {}).items()},
            )
        )

    def _log_unmatched(self, fill: Fill, unmatched_qty: float) -> None:
        """Warn that part of a SELL closed no open position (stats count it as unmatched_qty).

        A venue can sell what the session never bought (coins held before it started): only
        the matched part is booked as PnL, and the rest must not pass silently.
        """
        self.record_log(
            f"SELL of {fill.executed_qty:g} {fill.symbol} ({fill.position_type}) exceeded the "
            f"open position by {unmatched_qty:g}: that quantity books no PnL (unmatched_qty)",
            level=LogLevel.WARNING,
            fields={
                "symbol": fill.symbol,
                "unmatched_qty": unmatched_qty,
                "order_id": fill.order_id,
            },
        )


__all__ = ["MarksAndLogs"]
