"""Market data values."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple


class Bar(NamedTuple):
    """One OHLCV bar (candle) of one symbol; immutable.

    A named tuple rather than a frozen dataclass: the engine creates one per bar of every
    symbol, and a tuple is built (and read) about three times faster.

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
