"""Strategies of the recovery tests (the kill child loads them as ``module:Class``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from pydantic import Field

from argo_engine.domain.enums import OrderType, Side
from argo_engine.domain.market import Bar
from argo_engine.domain.orders import OrderIntent
from argo_engine.strategies.base import Strategy, StrategyConfig, StrategyContext
from argo_engine.strategies.indicators import RSI


class LimitRsiConfig(StrategyConfig):
    """Parameters of :class:`LimitRsiStrategy`."""

    period: int = Field(default=14, ge=2, description="RSI look-back in bars.")
    oversold: float = Field(default=30.0, gt=0, lt=100, description="Enter below this RSI.")
    overbought: float = Field(default=70.0, gt=0, lt=100, description="Exit above this RSI.")
    quantity: float = Field(default=1.0, gt=0, description="Units bought per entry.")
    entry_discount: float = Field(
        default=0.004, ge=0, description="Entry limit below the signal close (0.004 = 0.4%)."
    )
    symbol_discounts: dict[str, float] = Field(
        default_factory=dict, description="Per-symbol entry_discount overrides."
    )
    take_profit: float = Field(
        default=0.01, gt=0, description="Take-profit limit above the average entry price."
    )
    entry_ttl_minutes: int = Field(
        default=2, gt=0, description="A resting entry this old (bar time) is cancelled."
    )


class LimitRsiStrategy(Strategy):
    """RSI long-only with resting orders: every kind of order a crash can interrupt.

    Per bar of a symbol: an entry BUY resting for ``entry_ttl_minutes`` is cancelled; when
    long, RSI > overbought cancels the take-profit and exits with a MARKET SELL; when long with
    no SELL resting, a take-profit LIMIT SELL rests at the average entry price plus
    ``take_profit``; when RSI < oversold, flat and no BUY resting, an entry LIMIT BUY rests at
    the close minus ``entry_discount``. Decisions depend only on bars, positions and open
    orders, so a resumed run decides exactly like an uninterrupted one.
    """

    name = "limit_rsi"
    strategy_id = "tests.recovery.limit_rsi"
    version = "1.0.0"
    config_model = LimitRsiConfig

    config: LimitRsiConfig

    def __init__(self) -> None:
        self.config = LimitRsiConfig()
        self._rsi: dict[str, RSI] = {}

    def initialize(self, config: StrategyConfig) -> None:
        """Store the validated parameters."""
        assert isinstance(config, LimitRsiConfig)
        self.config = config
        self._rsi = {}

    def _indicator(self, symbol: str) -> RSI:
        rsi = self._rsi.get(symbol)
        if rsi is None:
            rsi = self._rsi[symbol] = RSI(self.config.period)
        return rsi

    def warmup(self, bars: Iterable[Bar]) -> None:
        """Prime the RSI of each symbol with stored closes."""
        for bar in bars:
            self._indicator(bar.symbol).update(bar.close)

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
        """Cancel stale entries, exit, place the take-profit, enter."""
        cfg = self.config
        value = self._indicator(bar.symbol).update(bar.close)
        ttl = timedelta(minutes=cfg.entry_ttl_minutes)
        for order in ctx.open_orders(bar.symbol):
            if order.side is Side.BUY and bar.time - order.timestamp >= ttl:
                ctx.cancel_order(order.order_id)
        if value is None:
            return
        position = ctx.position(bar.symbol)
        sells = [o for o in ctx.open_orders(bar.symbol) if o.side is Side.SELL]
        if position.quantity > 0 and value > cfg.overbought:
            for order in sells:
                ctx.cancel_order(order.order_id)
            ctx.place_order(
                OrderIntent(symbol=bar.symbol, side=Side.SELL, quantity=position.quantity,
                            reason="exit", message=f"RSI {value:.2f}")
            )  # fmt: skip
            return
        if position.quantity > 0 and not sells:
            ctx.place_order(
                OrderIntent(symbol=bar.symbol, side=Side.SELL, quantity=position.quantity,
                            order_type=OrderType.LIMIT,
                            price=round(position.average_price * (1 + cfg.take_profit), 6),
                            reason="take_profit")
            )  # fmt: skip
        buys = [o for o in ctx.open_orders(bar.symbol) if o.side is Side.BUY]
        discount = cfg.symbol_discounts.get(bar.symbol, cfg.entry_discount)
        if position.quantity <= 0 and value < cfg.oversold and not buys:
            ctx.place_order(
                OrderIntent(symbol=bar.symbol, side=Side.BUY, quantity=cfg.quantity,
                            order_type=OrderType.LIMIT,
                            price=round(bar.close * (1 - discount), 6),
                            reason="entry", message=f"RSI {value:.2f}")
            )  # fmt: skip


class SeenBarsConfig(StrategyConfig):
    """Parameters of :class:`SeenBarsStrategy`."""

    entry_bar: int = Field(default=3, ge=1, description="Rest the LIMIT BUY on this bar (1-based).")
    limit_price: float = Field(default=95.0, gt=0, description="Limit of the BUY.")
    quantity: float = Field(default=1.0, gt=0, description="Units of the BUY.")


class SeenBarsStrategy(Strategy):
    """Records the time of every bar it is given in ``ctx.cache["seen"]``; rests one LIMIT BUY.

    The cache is saved with the engine state, so across a retry of the same run it still
    tells which bars the strategy was given, and how often. Decisions come from the cache
    alone: a resumed run decides exactly like an uninterrupted one.
    """

    name = "seen_bars"
    strategy_id = "tests.recovery.seen_bars"
    config_model = SeenBarsConfig

    config: SeenBarsConfig

    def __init__(self) -> None:
        self.config = SeenBarsConfig()

    def initialize(self, config: StrategyConfig) -> None:
        """Store the validated parameters."""
        assert isinstance(config, SeenBarsConfig)
        self.config = config

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
        """Record the bar; on the entry bar, rest a BUY of 1 at the limit price."""
        seen: list[str] = ctx.cache.setdefault("seen", [])
        seen.append(bar.time.isoformat())
        if len(seen) == self.config.entry_bar:
            ctx.place_order(
                OrderIntent(symbol=bar.symbol, side=Side.BUY, quantity=self.config.quantity,
                            order_type=OrderType.LIMIT, price=self.config.limit_price)
            )  # fmt: skip


class TimedOrdersConfig(StrategyConfig):
    """Parameters of :class:`TimedOrdersStrategy`."""

    orders: dict[str, list[tuple[Side, OrderType, float]]] = Field(
        default_factory=dict,
        description="Per bar time (ISO 8601): orders of 1 unit as (side, type, limit price).",
    )


class TimedOrdersStrategy(Strategy):
    """Places the orders scheduled for a bar's time: restart-invariant by construction.

    A price of 0 stands for none (MARKET orders).
    """

    name = "timed_orders"
    strategy_id = "tests.recovery.timed_orders"
    config_model = TimedOrdersConfig

    config: TimedOrdersConfig

    def __init__(self) -> None:
        self.config = TimedOrdersConfig()

    def initialize(self, config: StrategyConfig) -> None:
        """Store the validated parameters."""
        assert isinstance(config, TimedOrdersConfig)
        self.config = config

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
        """Place the orders scheduled for this bar."""
        for side, order_type, price in self.config.orders.get(bar.time.isoformat(), []):
            ctx.place_order(
                OrderIntent(symbol=bar.symbol, side=side, quantity=1.0, order_type=order_type,
                            price=price if order_type is OrderType.LIMIT else None)
            )  # fmt: skip
