"""A simple moving-average crossover strategy (long only)."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import Field, model_validator

from argo_engine.domain.enums import MarkShape, Side, SignalType
from argo_engine.domain.market import Bar
from argo_engine.domain.orders import OrderIntent
from argo_engine.strategies.base import Strategy, StrategyConfig, StrategyContext
from argo_engine.strategies.indicators import SMA


class MaCrossConfig(StrategyConfig):
    """Parameters of :class:`MovingAverageCrossStrategy`."""

    fast: int = Field(default=10, ge=1, description="Fast SMA period.")
    slow: int = Field(default=30, ge=2, description="Slow SMA period.")
    quantity: float = Field(default=1.0, gt=0, description="Units bought per entry.")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> MaCrossConfig:
        if self.fast >= self.slow:
            raise ValueError("fast must be smaller than slow")
        return self


class MovingAverageCrossStrategy(Strategy):
    """BUY when the fast SMA crosses above the slow one and flat; SELL when it crosses below."""

    name = "ma_cross"
    strategy_id = "argo.strategies.ma_cross"
    version = "1.0.0"
    config_model = MaCrossConfig

    config: MaCrossConfig

    def __init__(self) -> None:
        self.config = MaCrossConfig()
        self._state: dict[str, tuple[SMA, SMA, list[float | None]]] = {}

    def initialize(self, config: StrategyConfig) -> None:
        """Store the validated parameters."""
        assert isinstance(config, MaCrossConfig)
        self.config = config
        self._state = {}

    def _update(self, bar: Bar) -> tuple[float | None, float | None]:
        state = self._state.get(bar.symbol)
        if state is None:
            state = self._state[bar.symbol] = (SMA(self.config.fast), SMA(self.config.slow), [None])
        fast, slow, last = state
        f, s = fast.update(bar.close), slow.update(bar.close)
        diff = None if f is None or s is None else f - s
        previous = last[0]
        last[0] = diff
        return previous, diff

    def warmup(self, bars: Iterable[Bar]) -> None:
        """Prime the averages with stored closes."""
        for bar in bars:
            self._update(bar)

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
        """Trade on crossings."""
        previous, diff = self._update(bar)
        if previous is None or diff is None:
            return
        held = ctx.position(bar.symbol).quantity
        if previous <= 0 < diff and held <= 0:
            ctx.place_order(
                OrderIntent(symbol=bar.symbol, side=Side.BUY, quantity=self.config.quantity)
            )
            ctx.mark(title="golden cross", color="green", shape=MarkShape.TRIANGLE,
                     signal=SignalType.BUY_LONG)  # fmt: skip
        elif previous >= 0 > diff and held > 0:
            ctx.place_order(OrderIntent(symbol=bar.symbol, side=Side.SELL, quantity=held))
            ctx.mark(title="death cross", color="red", shape=MarkShape.TRIANGLE,
                     signal=SignalType.SELL_LONG)  # fmt: skip
