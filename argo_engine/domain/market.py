"""Market data values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar (candle) of one symbol.

    Attributes:
        symbol: Instrument symbol, e.g. ``BTCUSDT``.
        time: Bar open time, timezone-aware UTC.
        open: Open price.
        high: High price.
        low: Low price.
        close: Close price.
        volume: Traded volume in base units.
    """

    symbol: str
    time: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
