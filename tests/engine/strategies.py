"""Strategies used by engine tests (user-code shaped, loaded by object or module:Class)."""

from __future__ import annotations

from argo_engine.domain.market import Bar
from argo_engine.strategies.base import Strategy, StrategyConfig, StrategyContext


class _Cfg(StrategyConfig):
    pass


class ExplodingStrategy(Strategy):
    """Raises on every tenth bar."""

    name = "exploding"
    strategy_id = "tests.exploding"
    config_model = _Cfg

    def __init__(self) -> None:
        self.n = 0

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
        self.n += 1
        if self.n % 10 == 0:
            raise RuntimeError(f"boom {self.n}")


class GarbageStrategy(Strategy):
    """Returns garbage orders: a dict instead of an OrderIntent, and NaN / negative quantities."""

    name = "garbage"
    strategy_id = "tests.garbage"
    config_model = _Cfg

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
        from argo_engine.domain.enums import Side
        from argo_engine.domain.orders import OrderIntent

        if bar.time.minute % 3 == 0:
            ctx.place_order({"symbol": bar.symbol, "side": "BUY"})  # type: ignore[arg-type]
        elif bar.time.minute % 3 == 1:
            ctx.place_order(OrderIntent(symbol=bar.symbol, side=Side.BUY, quantity=float("nan")))
        else:
            ctx.place_order(OrderIntent(symbol="NOPEUSDT", side=Side.BUY, quantity=1.0))


class SlowStrategy(Strategy):
    """Takes 'five seconds' (on the injected clock) on every tenth bar."""

    name = "slow"
    strategy_id = "tests.slow"
    config_model = _Cfg

    def __init__(self, clock: object) -> None:
        self.clock = clock
        self.n = 0

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
        self.n += 1
        if self.n % 10 == 0:
            self.clock.advance(5.0)  # type: ignore[attr-defined]


class OneOfEachStrategy(Strategy):
    """Second bar: a MARKET buy (fills at once); third bar: a LIMIT buy far below (rests)."""

    name = "one-of-each"
    strategy_id = "tests.one_of_each"
    config_model = _Cfg

    def __init__(self) -> None:
        self.n = 0

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
        from argo_engine.domain.enums import OrderType, Side
        from argo_engine.domain.orders import OrderIntent

        self.n += 1
        if self.n == 2:
            ctx.place_order(OrderIntent(symbol=bar.symbol, side=Side.BUY, quantity=1.0))
        elif self.n == 3:
            ctx.place_order(
                OrderIntent(
                    symbol=bar.symbol,
                    side=Side.BUY,
                    quantity=1.0,
                    order_type=OrderType.LIMIT,
                    price=bar.close / 2,
                )
            )


class ScheduledTrader(Strategy):
    """Buys ``qty`` of one symbol on its 2nd bar and sells it on its 5th (MARKET orders)."""

    name = "scheduled"
    strategy_id = "tests.scheduled"
    config_model = _Cfg

    def __init__(self, symbol: str, qty: float) -> None:
        self.symbol = symbol
        self.qty = qty
        self.n = 0

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
        from argo_engine.domain.enums import Side
        from argo_engine.domain.orders import OrderIntent

        if bar.symbol != self.symbol:
            return
        self.n += 1
        if self.n in (2, 5):
            side = Side.BUY if self.n == 2 else Side.SELL
            ctx.place_order(OrderIntent(symbol=bar.symbol, side=side, quantity=self.qty))


class ScriptedOrders(Strategy):
    """Places the order intents scripted for a bar's (symbol, time); nothing else."""

    name = "scripted"
    strategy_id = "tests.scripted"
    config_model = _Cfg

    def __init__(self, script: dict[tuple[str, object], list[dict[str, object]]]) -> None:
        self.script = script

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
        from argo_engine.domain.orders import OrderIntent

        for spec in self.script.get((bar.symbol, bar.time), []):
            ctx.place_order(OrderIntent(symbol=bar.symbol, **spec))  # type: ignore[arg-type]


class RoundTrip(Strategy):
    """Buys ``qty`` of one symbol on its bar at ``buy_at`` and sells on ``sell_at`` (MARKET).

    Bars are told apart by time, so that an instance started after a restart carries on. The
    SELL asks for the position the strategy sees (``sell="position"``) or for what was bought
    (``sell="bought"``). The position seen on each bar, before its order, is kept in ``seen``.
    """

    name = "round-trip"
    strategy_id = "tests.round_trip"
    config_model = _Cfg

    def __init__(
        self, symbol: str, qty: float, *, buy_at: object, sell_at: object, sell: str = "position"
    ) -> None:
        self.symbol = symbol
        self.qty = qty
        self.buy_at = buy_at
        self.sell_at = sell_at
        self.sell = sell
        self.seen: list[float] = []

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
        from argo_engine.domain.enums import Side
        from argo_engine.domain.orders import OrderIntent

        if bar.symbol != self.symbol:
            return
        held = ctx.position(self.symbol).quantity
        self.seen.append(held)
        if bar.time == self.buy_at:
            ctx.place_order(OrderIntent(symbol=bar.symbol, side=Side.BUY, quantity=self.qty))
        elif bar.time == self.sell_at:
            qty = held if self.sell == "position" else self.qty
            ctx.place_order(OrderIntent(symbol=bar.symbol, side=Side.SELL, quantity=qty))
