"""Equity sampled when a resting order fills: valued at the filling bar's close."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import yaml

from argo_engine.clock import FakeClock
from argo_engine.domain.enums import OrderType, Side
from argo_engine.domain.market import Bar
from argo_engine.session import run_session
from argo_engine.settings import load_settings
from tests.engine.helpers import utc, write_replay
from tests.engine.strategies import ScriptedOrders

SYMBOL = "BTCUSDT"
T0 = utc(2025, 10, 1, 10, 0)


def test_a_limit_buy_filled_below_the_last_close_draws_down_nothing(tmp_path: Path) -> None:
    # Bar 0 closes at 100 and the strategy rests a BUY 1 @ 95; bar 1 (low 94, close 95) fills
    # it at 95; bar 2 closes at 95. Zero fees: equity is 10,000 at every bar, so there is no
    # drawdown (valuing the new lot at the previous close, 100, made a peak of 10,005).
    bars = [
        Bar(SYMBOL, T0, 100.0, 100.0, 100.0, 100.0, 1.0),
        Bar(SYMBOL, T0 + timedelta(minutes=1), 96.0, 101.0, 94.0, 95.0, 1.0),
        Bar(SYMBOL, T0 + timedelta(minutes=2), 95.0, 95.0, 95.0, 95.0, 1.0),
    ]
    settings = load_settings(
        None,
        session={
            "data_output": str(tmp_path / "out"),
            "symbols": [SYMBOL],
            "initial_capital": 10_000.0,
        },
        feed={"kind": "replay", "replay_file": str(write_replay(tmp_path / "b.parquet", bars))},
        broker={"commission": "zero"},
    )
    strategy = ScriptedOrders(
        {
            (SYMBOL, T0): [
                {"side": Side.BUY, "quantity": 1.0, "order_type": OrderType.LIMIT, "price": 95.0}
            ]
        }
    )
    run_session(settings, clock=FakeClock(T0), strategy=strategy)
    (stats_file,) = (tmp_path / "out").glob("*/run_*/stats.yaml")
    stats = yaml.safe_load(stats_file.read_text())
    assert stats["daily"]["trade_result"]["number_of_trades"] == 1
    for block in ("daily", "cumulative"):
        assert stats[block]["trade_result"]["max_drawdown"] == 0.0
        assert stats[block]["trade_result"]["max_drawdown_abs"] == 0.0
        assert stats[block]["trade_pnl"]["unrealized_pnl"] == 0.0
