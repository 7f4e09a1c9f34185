"""Explicit strategy registry, plus ``module:Class`` loading for user strategies."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from argo_engine.errors import ArgoError, ConfigurationError, StrategyError
from argo_engine.strategies.base import Strategy
from argo_engine.strategies.ma_cross import MovingAverageCrossStrategy
from argo_engine.strategies.rsi import RsiStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    RsiStrategy.name: RsiStrategy,
    MovingAverageCrossStrategy.name: MovingAverageCrossStrategy,
}


def resolve_strategy(name: str) -> type[Strategy]:
    """A registered strategy by name, or a user strategy from ``package.module:ClassName``.

    Raises:
        ConfigurationError: Unknown name, failed import, or not a Strategy subclass.
    """
    if name in STRATEGIES:
        return STRATEGIES[name]
    known = ", ".join(sorted(STRATEGIES))
    if ":" not in name:
        raise ConfigurationError(
            f"unknown strategy {name!r}; registered: {known}; or give module:Class",
            field="strategy.name",
        )
    module_name, _, class_name = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure of user code is a config problem
        raise ConfigurationError(
            f"cannot import strategy module {module_name!r}: {exc!r}", field="strategy.name"
        ) from exc
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ConfigurationError(f"{name!r} is not a Strategy subclass", field="strategy.name")
    return cls


def build_strategy(name: str, params: Mapping[str, Any]) -> Strategy:
    """Resolve, validate parameters, instantiate and initialize a strategy.

    Raises:
        ConfigurationError: Unknown strategy or invalid parameters (naming the parameter).
    """
    cls = resolve_strategy(name)
    with strategy_code(cls.name, "parse_config"):
        config = cls.parse_config(params)
    with strategy_code(cls.name, "__init__"):
        strategy = cls()
    with strategy_code(cls.name, "initialize"):
        strategy.initialize(config)
    return strategy


@contextmanager
def strategy_code(name: str, hook: str) -> Iterator[None]:
    """Run user strategy code outside the bar loop; what it raises names the strategy.

    ArgoErrors (a ConfigurationError naming a parameter) pass unchanged; anything else
    becomes a StrategyError "strategy <name> raised in <hook>: <error>".

    Raises:
        StrategyError: If the code raised anything but an ArgoError.
    """
    try:
        yield
    except ArgoError:
        raise
    except Exception as exc:  # user code: any exception is the strategy's
        raise StrategyError(
            f"strategy {name} raised in {hook}: {type(exc).__name__}: {exc}",
            strategy=name,
            hook=hook,
        ) from exc
