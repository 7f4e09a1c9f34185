"""A SELL larger than the open position: only the matched part is booked, the rest is counted.

On a venue an account can sell coins it held before the session started; the paper broker
here is given such coins (its book holds 2 BTC the session never bought), so it fills a SELL
of 3 while the session's own position is 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from argo_engine.bootstrap import build_broker
from argo_engine.clock import FakeClock
from argo_engine.domain.enums import PositionType, Side
from argo_engine.domain.market import Bar
from argo_engine.domain.orders import OrderIntent
from argo_engine.session import run_session, start_session
from argo_engine.strategies.base import Strategy, StrategyConfig, StrategyContext

from .helpers import utc, wave_bars, write_replay


class _Cfg(StrategyConfig):
    pass


class SellsMoreThanBought(Strategy):
    """Buys 1 BTC on its 3rd bar and sells 3 on its 6th; nothing after that."""

    name = "sells_more"
    strategy_id = "tests.sells_more"
    config_model = _Cfg

    def __init__(self) -> None:
        self.n = 0

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
        self.n += 1
        if self.n == 3:
            ctx.place_order(OrderIntent(symbol=bar.symbol, side=Side.BUY, quantity=1.0))
        elif self.n == 6:
            ctx.place_order(OrderIntent(symbol=bar.symbol, side=Side.SELL, quantity=3.0))


class Idle(Strategy):
    """Places no order (the restarted run only carries the figures on)."""

    name = "idle"
    strategy_id = "tests.idle"
    config_model = _Cfg

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
        return None


def _settings(make_settings: Any, replay: Path) -> Any:
    return make_settings(
        session={"symbols": ["BTCUSDT"], "session_id": "unmatched"},
        feed={"kind": "replay", "replay_file": str(replay)},
        broker={"commission": "zero"},
    )


def test_unmatched_sell_is_counted_logged_and_survives_a_restart(
    make_settings: Any, tmp_path: Path
) -> None:
    bars = wave_bars(["BTCUSDT"], utc(2025, 10, 1, 9, 0), 40)
    first = _settings(make_settings, write_replay(tmp_path / "a.parquet", bars[:20]))
    clock = FakeClock(utc(2025, 10, 1, 8, 0))
    broker = build_broker(first, clock)
    # Coins held at the venue before the session: the broker's book, never the session's.
    broker.ledger.apply(  # type: ignore[attr-defined]
        symbol="BTCUSDT",
        side=Side.BUY,
        position_type=PositionType.LONG,
        qty=2.0,
        price=100.0,
        fee=0.0,
        time=utc(2025, 9, 30),
    )
    plan, _ = run_session(first, clock=clock, broker=broker, strategy=SellsMoreThanBought())
    out = Path(first.session.data_output)
    folder = out / "2025-10-01" / f"run_{plan.run_number}"
    con = duckdb.connect()
    sells = con.execute(
        "SELECT executed_qty, executed_price, pnl FROM read_parquet(?) WHERE side = 'SELL'",
        [str(folder / "trades.parquet")],
    ).fetchall()
    buy_price = con.execute(
        "SELECT executed_price FROM read_parquet(?) WHERE side = 'BUY'",
        [str(folder / "trades.parquet")],
    ).fetchone()
    warnings = con.execute(
        "SELECT symbol, fields FROM read_parquet(?) WHERE level = 'warning' "
        "AND fields LIKE '%unmatched_qty%'",
        [str(folder / "logs.parquet")],
    ).fetchall()
    assert buy_price is not None
    # The venue filled all 3; only the 1 the session bought is booked as PnL.
    assert len(sells) == 1
    qty, price, pnl = sells[0]
    assert qty == 3.0
    assert pnl == pytest.approx(price - buy_price[0])
    stats = yaml.safe_load((folder / "stats.yaml").read_text())
    for block in (stats["daily"], stats["cumulative"], stats):
        assert block["trade_result"]["unmatched_qty"] == pytest.approx(2.0)
    # The warning names the symbol and the quantity (as a logs.parquet row, not log text).
    assert len(warnings) == 1
    fields = json.loads(warnings[0][1])
    assert (warnings[0][0], fields["symbol"], float(fields["unmatched_qty"])) == (
        "BTCUSDT",
        "BTCUSDT",
        2.0,
    )

    # A restart of the session (a new run_N, same date) carries the figure on.
    second = _settings(make_settings, write_replay(tmp_path / "b.parquet", bars[20:]))
    plan2 = start_session(second, clock=clock)
    assert plan2.run_number != plan.run_number
    run_session(second, plan=plan2, clock=clock, strategy=Idle())
    folder2 = out / "2025-10-01" / f"run_{plan2.run_number}"
    again = yaml.safe_load((folder2 / "stats.yaml").read_text())
    assert again["cumulative"]["trade_result"]["unmatched_qty"] == pytest.approx(2.0)
    assert again["daily"]["trade_result"]["unmatched_qty"] == pytest.approx(2.0)
    assert again["cumulative"]["trade_result"]["number_of_trades"] == 2


def test_matched_sells_count_no_unmatched_qty(make_settings: Any, tmp_path: Path) -> None:
    bars = wave_bars(["BTCUSDT"], utc(2025, 10, 1, 0, 0), 600, period=90)
    settings = make_settings(
        session={"symbols": ["BTCUSDT"]},
        feed={"kind": "replay", "replay_file": str(write_replay(tmp_path / "r.parquet", bars))},
        broker={"commission": "zero"},
    )
    plan, _ = run_session(settings, clock=FakeClock(utc(2025, 10, 1)))
    folder = Path(settings.session.data_output) / "2025-10-01" / f"run_{plan.run_number}"
    stats = yaml.safe_load((folder / "stats.yaml").read_text())
    assert stats["cumulative"]["trade_result"]["number_of_trades"] >= 2
    assert stats["cumulative"]["trade_result"]["unmatched_qty"] == 0.0
