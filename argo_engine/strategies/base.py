"""The strategy API: a Strategy base class, its config model and the context protocol."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from argo_engine.domain.enums import LogLevel, MarkShape, PositionType, SignalType
from argo_engine.domain.market import Bar
from argo_engine.domain.orders import Order, OrderIntent
from argo_engine.domain.positions import Position
from argo_engine.errors import ConfigurationError
from argo_engine.ports import Account


class StrategyConfig(BaseModel):
    """Base of strategy parameter models: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StrategyContext(Protocol):
    """What a strategy can see and do while handling a bar."""

    def place_order(self, intent: OrderIntent) -> Order:
        """Record and submit an order; returns its latest snapshot (maybe REJECTED)."""
        ...

    def place_orders(self, intents: Sequence[OrderIntent]) -> list[Order]:
        """Several orders, in order."""
        ...

    def cancel_order(self, order_id: str) -> bool:
        """Cancel an open order; False when unknown or final."""
        ...

    def cancel_all(self, symbol: str | None = None) -> int:
        """Cancel every open order (of a symbol); returns how many."""
        ...

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Orders still open."""
        ...

    def positions(self) -> list[Position]:
        """Open positions."""
        ...

    def position(self, symbol: str, position_type: PositionType = PositionType.LONG) -> Position:
        """One bucket's position; flat (quantity 0) when none."""
        ...

    def account(self) -> Account:
        """Broker account figures."""
        ...

    def history(self, symbol: str, n: int) -> list[Bar]:
        """Last ``n`` bars of ``symbol`` (oldest first, current bar included)."""
        ...

    def sql(self, query: str, params: Sequence[object] | None = None) -> list[tuple[object, ...]]:
        """Read-only SQL over the session's market data (view ``market_data``)."""
        ...

    @property
    def cache(self) -> MutableMapping[str, Any]:
        """JSON-serializable key/value cache persisted with the run."""
        ...

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
        """Annotate the current bar (marks.parquet)."""
        ...

    def log(self, message: str, *, level: LogLevel = LogLevel.INFO, **fields: object) -> None:
        """Log at the current bar (logs.parquet)."""
        ...

    @property
    def now(self) -> datetime:
        """Time of the current bar."""
        ...


class Strategy(ABC):
    """Base class of strategies (argo's ProcessData is :meth:`on_bar`).

    Subclasses set ``name`` (registry key), ``strategy_id``, ``version`` and ``config_model``.
    """

    name: ClassVar[str] = "strategy"
    strategy_id: ClassVar[str] = "argo.strategies.strategy"
    version: ClassVar[str] = "1.0.0"
    config_model: ClassVar[type[StrategyConfig]] = StrategyConfig

    config: StrategyConfig

    def initialize(self, config: StrategyConfig) -> None:
        """Receive the validated configuration (override to set up indicators)."""
        self.config = config

    @abstractmethod
    def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
        """Handle one closed bar."""

    def on_stop(self, ctx: StrategyContext) -> None:  # noqa: B027 - optional hook
        """Called once when the session stops (optional)."""

    def warmup(self, bars: Iterable[Bar]) -> None:  # noqa: B027 - optional hook
        """Feed stored bars to indicators without trading (restart warm-up; optional)."""

    @classmethod
    def parse_config(cls, params: Mapping[str, Any]) -> StrategyConfig:
        """Validate parameters into ``config_model``.

        Raises:
            ConfigurationError: Naming the offending parameter(s).
        """
        try:
            return cls.config_model.model_validate(dict(params))
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"]) or "<params>"
                problems.append(f"strategy parameter {loc!r}: {err['msg']}")
            raise ConfigurationError(
                f"invalid parameters for strategy {cls.name!r}: " + "; ".join(problems),
                field="strategy.params",
            ) from None
