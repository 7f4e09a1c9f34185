"""The engine's implementation of the strategy context protocol."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, MutableMapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from argo_engine.clock import Clock
from argo_engine.domain.enums import LogLevel, MarkShape, PositionType, SignalType
from argo_engine.domain.market import Bar
from argo_engine.domain.orders import Order, OrderIntent
from argo_engine.domain.positions import Position
from argo_engine.ports import Account, Broker


class EngineServices(Protocol):
    """What the context needs of the engine (the engine implements it; no import of it here).

    Keeping the context on this narrow protocol, not on ``TradingEngine``, keeps the two
    modules out of an import cycle and says exactly what a strategy can reach.
    """

    broker: Broker
    clock: Clock

    def place_order(self, intent: OrderIntent) -> Order:
        """Validate, route and record an order."""
        ...

    def cancel_order(self, order_id: str) -> bool:
        """Cancel an open order; False when it is not open."""
        ...

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Open orders, optionally of one symbol."""
        ...

    def query(self, sql: str, params: list[object] | None = None) -> list[tuple[object, ...]]:
        """Read-only SQL over the session's tables."""
        ...

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
        ...

    def record_log(
        self,
        message: str,
        *,
        level: LogLevel = LogLevel.INFO,
        fields: Mapping[str, object] | None = None,
        bar: Bar | None = None,
    ) -> None:
        """Write a log entry stamped with the bar time."""
        ...


class EngineContext:
    """What a strategy sees: orders, positions, account, history, SQL, cache, marks and logs.

    Args:
        engine: The engine that owns this context.
        history_bars: Bars kept in memory per symbol for :meth:`history`.
    """

    def __init__(self, engine: EngineServices, history_bars: int) -> None:
        self._engine = engine
        self._history_bars = history_bars
        self._history: dict[str, deque[Bar]] = {}
        # The same windows, for the engine's per-bar append (an attribute: no call).
        self.windows = self._history
        self._cache: dict[str, Any] = {}
        self.current_bar: Bar | None = None
        self._flat: dict[tuple[str, PositionType], Position] = {}
        self._positions: list[Position] | None = None
        self._by_bucket: dict[tuple[str, PositionType], Position] = {}

    # -- orders --------------------------------------------------------------------------------

    def place_order(self, intent: OrderIntent) -> Order:
        """Record and submit one order; returns its latest snapshot (maybe REJECTED)."""
        return self._engine.place_order(intent)

    def place_orders(self, intents: Sequence[OrderIntent]) -> list[Order]:
        """Record and submit several orders, in order."""
        return [self._engine.place_order(intent) for intent in intents]

    def cancel_order(self, order_id: str) -> bool:
        """Cancel an open order; False when it is unknown or already final."""
        return self._engine.cancel_order(order_id)

    def cancel_all(self, symbol: str | None = None) -> int:
        """Cancel every open order (of ``symbol`` when given); returns how many were cancelled."""
        ids = [o.order_id for o in self.open_orders(symbol)]
        return sum(1 for order_id in ids if self._engine.cancel_order(order_id))

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Orders still PENDING."""
        return self._engine.open_orders(symbol)

    def positions(self) -> list[Position]:
        """Open positions."""
        return self._engine.broker.positions()

    def position(self, symbol: str, position_type: PositionType = PositionType.LONG) -> Position:
        """Position of one bucket; a flat Position when none is open."""
        positions = self._engine.broker.positions()
        if positions is not self._positions:
            # The paper broker hands out the same list until a fill changes it.
            self._positions = positions
            self._by_bucket = {(p.symbol, p.position_type): p for p in positions}
        held = self._by_bucket.get((symbol, position_type))
        if held is not None:
            return held
        flat = self._flat.get((symbol, position_type))
        if flat is None:
            # Immutable, so one per bucket serves every call (strategies ask on most bars).
            flat = self._flat[(symbol, position_type)] = Position(
                symbol=symbol, position_type=position_type, quantity=0.0, average_price=0.0
            )
        return flat

    def account(self) -> Account:
        """Broker account figures."""
        return self._engine.broker.account()

    # -- data ----------------------------------------------------------------------------------

    def remember(self, bar: Bar) -> None:
        """Append a bar to the in-memory history (engine use)."""
        window = self._history.get(bar.symbol)
        if window is None:
            window = self._history[bar.symbol] = deque(maxlen=self._history_bars)
        window.append(bar)

    def history(self, symbol: str, n: int) -> list[Bar]:
        """Last ``n`` bars of ``symbol``, oldest first, current bar included."""
        window = self._history.get(symbol)
        if not window or n <= 0:
            return []
        if n >= len(window):
            return list(window)
        return list(window)[-n:]

    def sql(self, query: str, params: Sequence[object] | None = None) -> list[tuple[object, ...]]:
        """Read-only SQL over the current day's tables (``market_data``, ``orders``...)."""
        return self._engine.query(query, list(params) if params is not None else None)

    @property
    def cache(self) -> MutableMapping[str, Any]:
        """Key/value cache persisted with the run (values must be JSON-serializable)."""
        return self._cache

    def replace_cache(self, values: dict[str, Any]) -> None:
        """Restore the cache from saved state (engine use)."""
        self._cache = dict(values)

    def mark(
        self,
        *,
        title: str,
        message: str = "",
        color: str = "blue",
        shape: MarkShape = MarkShape.CIRCLE,
        level: LogLevel = LogLevel.INFO,
        category: str = "",
        signal: SignalType | None = None,
    ) -> None:
        """Annotate the current bar (lands in marks.parquet)."""
        self._engine.record_mark(
            title=title,
            message=message,
            color=color,
            shape=shape,
            level=level,
            category=category,
            signal=signal,
        )

    def log(self, message: str, *, level: LogLevel = LogLevel.INFO, **fields: object) -> None:
        """Log a line at the current bar (lands in logs.parquet)."""
        self._engine.record_log(message, level=level, fields=fields)

    @property
    def now(self) -> datetime:
        """Time of the current bar."""
        if self.current_bar is not None:
            return self.current_bar.time
        return self._engine.clock.now()
