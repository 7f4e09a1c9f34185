"""Registry, configuration errors and user strategies loaded from module:Class."""

from __future__ import annotations

import pytest

from argo_engine.errors import ConfigurationError
from argo_engine.strategies.ma_cross import MovingAverageCrossStrategy
from argo_engine.strategies.registry import STRATEGIES, build_strategy, resolve_strategy
from argo_engine.strategies.rsi import RsiConfig, RsiStrategy


def test_registered_names() -> None:
    assert {"rsi": RsiStrategy, "ma_cross": MovingAverageCrossStrategy} == STRATEGIES
    s = build_strategy("rsi", {"period": 7, "quantity": 0.5})
    assert isinstance(s, RsiStrategy)
    assert s.config == RsiConfig(period=7, quantity=0.5)


def test_user_strategy_from_module_path() -> None:
    cls = resolve_strategy("tests.engine.strategies:ExplodingStrategy")
    assert cls.name == "exploding"


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("nope", "registered: ma_cross, rsi"),
        ("tests.engine.nowhere:X", "cannot import"),
        ("tests.engine.strategies:Missing", "not a Strategy"),
        ("argo_engine.settings:ArgoSettings", "not a Strategy"),
    ],
)
def test_bad_names_are_configuration_errors(name: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        resolve_strategy(name)


def test_bad_and_unknown_params_name_the_parameter() -> None:
    with pytest.raises(ConfigurationError, match="'period'"):
        build_strategy("rsi", {"period": 0})
    with pytest.raises(ConfigurationError, match="'colour'"):
        build_strategy("rsi", {"colour": "red"})
    with pytest.raises(ConfigurationError, match="fast must be smaller"):
        build_strategy("ma_cross", {"fast": 30, "slow": 10})
