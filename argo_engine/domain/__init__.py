"""Pure domain values of argo-engine: enums, bars, orders, fills, positions, marks and logs.

Nothing here performs I/O or imports third-party packages; everything is immutable.
"""

from argo_engine.domain.enums import (
    EngineStatus,
    LogLevel,
    MarkShape,
    OrderStatus,
    OrderType,
    PositionType,
    ProviderStatus,
    Side,
    SignalType,
)
from argo_engine.domain.market import Bar
from argo_engine.domain.orders import Fill, Order, OrderIntent
from argo_engine.domain.positions import Position
from argo_engine.domain.records import LogEntry, Mark

__all__ = [
    "Bar",
    "EngineStatus",
    "Fill",
    "LogEntry",
    "LogLevel",
    "Mark",
    "MarkShape",
    "Order",
    "OrderIntent",
    "OrderStatus",
    "OrderType",
    "Position",
    "PositionType",
    "ProviderStatus",
    "Side",
    "SignalType",
]
