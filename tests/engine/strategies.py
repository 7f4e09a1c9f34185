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
