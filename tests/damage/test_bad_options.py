"""Hostile options: every numeric setting is bounded; strategy failures name the strategy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from argo_engine.cli import app
from argo_engine.domain.market import Bar
from argo_engine.errors import ConfigurationError, StrategyError
from argo_engine.settings import load_settings
from argo_engine.strategies.base import Strategy, StrategyConfig, StrategyContext
from argo_engine.strategies.registry import build_strategy


@pytest.mark.parametrize(
    ("groups", "field"),
    [
        ({"feed": {"bars": 99999999999999999999999}}, "feed.bars"),
        ({"feed": {"bars": 0}}, "feed.bars"),
        ({"feed": {"bars": -5}}, "feed.bars"),
        ({"feed": {"prefetch_days": 10**9}}, "feed.prefetch_days"),
        ({"feed": {"prefetch_days": -1}}, "feed.prefetch_days"),
        ({"feed": {"end": "9999-12-31T00:00:00Z"}}, "feed.end"),
        ({"feed": {"start": "0001-01-01T00:00:00Z"}}, "feed.start"),
        ({"feed": {"seed": -1}}, "feed.seed"),
        ({"persistence": {"flush_interval_s": 1e12}}, "persistence.flush_interval_s"),
        ({"persistence": {"flush_interval_s": 0}}, "persistence.flush_interval_s"),
        ({"persistence": {"flush_interval_s": "inf"}}, "persistence.flush_interval_s"),
        ({"persistence": {"flush_interval_s": "nan"}}, "persistence.flush_interval_s"),
        ({"persistence": {"stats_min_interval_s": 1e30}}, "persistence.stats_min_interval_s"),
        ({"persistence": {"history_bars": 10**12}}, "persistence.history_bars"),
        ({"session": {"initial_capital": float("inf")}}, "session.initial_capital"),
        ({"broker": {"commission_rate": 5.0}}, "broker.commission_rate"),
        ({"broker": {"recv_window_ms": 10**9}}, "broker.recv_window_ms"),
        ({"broker": {"timeout_s": 1e9}}, "broker.timeout_s"),
        ({"strategy": {"slow_bar_s": float("nan")}}, "strategy.slow_bar_s"),
    ],
)
def test_numeric_setting_out_of_bounds_is_refused_naming_it(
    groups: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigurationError) as err:
        load_settings(None, **groups)
    assert field in err.value.attrs["fields"]


def test_end_before_start_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="must be after start"):
        load_settings(None, feed={"start": "2025-10-02T00:00Z", "end": "2025-10-01T00:00Z"})


def test_bars_running_past_the_calendar_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="would run past"):
        load_settings(None, session={"interval": "1w"}, feed={"bars": 90_000_000})
    assert load_settings(None, session={"interval": "1s"}, feed={"bars": 90_000_000})


def test_cli_refuses_huge_bars_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["run", "--no-prefect", "--data-output", str(out), "--bars", "9" * 23]
    )
    assert result.exit_code == 2
    assert "feed.bars" in result.output
    assert not out.exists()


class InitBoom(Strategy):
    """Raises in initialize."""

    name = "init-boom"

    def initialize(self, config: StrategyConfig) -> None:
        raise ValueError("init boom")

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
        """Never reached."""


class ConfigBoom(InitBoom):
    """Raises a plain KeyError while parsing its parameters."""

    name = "config-boom"

    @classmethod
    def parse_config(cls, params: Any) -> StrategyConfig:
        raise KeyError("period")


@pytest.mark.parametrize(("cls", "hook"), [(InitBoom, "initialize"), (ConfigBoom, "parse_config")])
def test_strategy_failing_at_start_is_named(cls: type[Strategy], hook: str) -> None:
    with pytest.raises(StrategyError, match=f"strategy {cls.name} raised in {hook}"):
        build_strategy(f"{__name__}:{cls.__name__}", {})


def test_cli_names_the_strategy_whose_initialize_raised(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--no-prefect",
            "--data-output",
            str(tmp_path / "out"),
            "--strategy",
            f"{__name__}:InitBoom",
        ],
    )
    assert result.exit_code == 1  # a failure at run time (bad input is 2)
    assert "strategy init-boom raised in initialize" in " ".join(result.output.split())
