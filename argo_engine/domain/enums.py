"""String enums whose values are exactly what lands in parquet files, YAML and logs."""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    """Order side. BUY opens or increases a bucket, SELL closes or decreases it."""

    BUY = "BUY"
    SELL = "SELL"


class OrderType(StrEnum):
    """Order type."""

    MARKET = "MARKET"
    LIMIT = "LIMIT"


class OrderStatus(StrEnum):
    """Order status as stored in orders.parquet."""

    PENDING = "PENDING"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    FAILED = "FAILED"

    @property
    def is_final(self) -> bool:
        """Whether no further status change can follow."""
        return self is not OrderStatus.PENDING


class PositionType(StrEnum):
    """Position bucket an order belongs to."""

    LONG = "LONG"
    SHORT = "SHORT"


class EngineStatus(StrEnum):
    """Engine lifecycle status reported through on_status_update."""

    PREFETCHING = "prefetching"
    GAP_FILLING = "gap_filling"
    RUNNING = "running"
    STOPPED = "stopped"


class ProviderStatus(StrEnum):
    """Connection status of a feed or broker."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


class LogLevel(StrEnum):
    """Level of a strategy log entry."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class MarkShape(StrEnum):
    """Shape of a chart mark."""

    CIRCLE = "circle"
    SQUARE = "square"
    TRIANGLE = "triangle"


class SignalType(StrEnum):
    """Signal attached to a mark."""

    BUY_LONG = "buy_long"
    SELL_LONG = "sell_long"
    BUY_SHORT = "buy_short"
    SELL_SHORT = "sell_short"
    NO_ACTION = "no_action"
    CLOSE_POSITION = "close_position"
    WAIT = "wait"
    ABORT = "abort"
