"""The RSI example strategy of DESIGN.md (long only, fixed quantity)."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import Field

from argo_engine.domain.enums import LogLevel, MarkShape, Side, SignalType
from argo_engine.domain.market import Bar
from argo_engine.domain.orders import OrderIntent
from argo_engine.strategies.base import Strategy, StrategyConfig, StrategyContext
from argo_engine.strategies.indicators import RSI


class RsiConfig(StrategyConfig):
    """Parameters of :class:`RsiStrategy`."""

    period: int = Field(default=14, ge=2, description="RSI look-back in bars.")
    oversold: float = Field(default=30.0, gt=0, lt=100, description="Buy below this RSI.")
    overbought: float = Field(default=70.0, gt=0, lt=100, description="Sell above this RSI.")
    quantity: float = Field(default=1.0, gt=0, description="Units bought per entry.")


class RsiStrategy(Strategy):
    """BUY ``quantity`` when RSI < oversold and flat; SELL it when RSI > overbought and long.

    Market orders fill at the signal bar's close (the paper broker's default price source).
    """

    name = "rsi"
    strategy_id = "argo.strategies.rsi"
    version = "1.0.0"
    config_model = RsiConfig

    config: RsiConfig

    def __init__(self) -> None:
        self.config = RsiConfig()
        self._rsi: dict[str, RSI] = {}

    def initialize(self, config: StrategyConfig) -> None:
        """Store the validated parameters."""
        assert isinstance(config, RsiConfig)
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
        """Trade on RSI thresholds."""
        rsi = self._rsi.get(bar.symbol) or self._indicator(bar.symbol)
        value = rsi.update(bar.close)
        if value is None:
            return
        cfg = self.config
        if value < cfg.oversold:
            if ctx.position(bar.symbol).quantity <= 0:
                ctx.place_order(
                    OrderIntent(symbol=bar.symbol, side=Side.BUY, quantity=cfg.quantity,
                                reason="strategy", message=f"RSI {value:.2f} < {cfg.oversold}")
                )  # fmt: skip
                ctx.mark(title="buy", message=f"RSI {value:.2f}", color="green",
                         shape=MarkShape.TRIANGLE, signal=SignalType.BUY_LONG)  # fmt: skip
        elif value > cfg.overbought:
            held = ctx.position(bar.symbol).quantity
            if held > 0:
                ctx.place_order(
                    OrderIntent(symbol=bar.symbol, side=Side.SELL, quantity=min(held, cfg.quantity),
                                reason="strategy", message=f"RSI {value:.2f} > {cfg.overbought}")
                )  # fmt: skip
                ctx.mark(title="sell", message=f"RSI {value:.2f}", color="red",
                         shape=MarkShape.TRIANGLE, signal=SignalType.SELL_LONG)  # fmt: skip
                ctx.log("exit long", level=LogLevel.INFO, rsi=f"{value:.2f}")
