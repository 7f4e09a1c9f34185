"""Strategy annotations: chart marks and log entries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from argo_engine.domain.enums import LogLevel, MarkShape


@dataclass(frozen=True, slots=True, kw_only=True)
class Mark:
    """A chart annotation made by a strategy (one row of marks.parquet)."""

    id: int
    market_data_id: str
    signal_type: str | None
    signal_name: str | None
    signal_time: datetime | None
    signal_symbol: str | None
    color: str
    shape: MarkShape
    level: LogLevel
    title: str
    message: str
    category: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LogEntry:
    """A log line of a strategy or the engine (one row of logs.parquet).

    Attributes:
        id: Sequence number, unique within a run.
        timestamp: Bar time the entry belongs to (UTC), not the wall clock.
        symbol: Symbol of the current bar ("" when none).
        level: Severity.
        message: Text.
        fields: Structured context, stored as JSON text.
    """

    id: int
    timestamp: datetime
    symbol: str
    level: LogLevel
    message: str
    fields: dict[str, str]
