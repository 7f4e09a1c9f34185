"""The daily block adds up: recomputed from the parquet files alone, independently of the engine.

For each date: realized = sum(trades.pnl) of the date; open PnL at the date's last bar = the
open FIFO lots (entry fees included) marked at each symbol's last close in market_data; the
daily unrealized_pnl is its change over the date; the daily totals sum to the cumulative one.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import duckdb
import pytest
import yaml

from argo_engine.clock import FakeClock
from argo_engine.session import run_session
from argo_engine.settings import load_settings
from tests.engine.helpers import utc, wave_bars, write_replay


def _open_pnl(lots: dict[str, deque[list[float]]], last: dict[str, float]) -> float:
    return sum(
        qty * last[symbol] - qty * (price + fee_per_unit)
        for symbol, held in lots.items()
        for qty, price, fee_per_unit in held
    )


def test_daily_figures_are_the_dates_changes_and_add_up(tmp_path: Path) -> None:
    bars = wave_bars(["BTCUSDT", "ETHUSDT"], utc(2025, 10, 1, 20, 0), 3 * 1440, period=97)
    replay = write_replay(tmp_path / "bars.parquet", bars)
    out = tmp_path / "out"
    settings = load_settings(
        None,
        session={"data_output": str(out), "symbols": ["BTCUSDT", "ETHUSDT"], "session_id": "s"},
        feed={"kind": "replay", "replay_file": str(replay)},
    )
    run_session(settings, clock=FakeClock(utc(2025, 10, 1)))

    con = duckdb.connect()
    lots: dict[str, deque[list[float]]] = {}
    last: dict[str, float] = {}
    previous_open = 0.0
    totals = 0.0
    folders = sorted(out.glob("20*/run_1"))
    assert len(folders) == 4
    for folder in folders:
        stats = yaml.safe_load((folder / "stats.yaml").read_text())
        fills = con.execute(
            "SELECT symbol, side, executed_qty, executed_price, commission, pnl "
            f"FROM read_parquet('{folder / 'trades.parquet'}') ORDER BY executed_at, trade_id"
        ).fetchall()
        for symbol, side, qty, price, fee, _ in fills:
            held = lots.setdefault(symbol, deque())
            if side == "BUY":
                held.append([qty, price, fee / qty])
                continue
            remaining = qty
            while remaining > 1e-12 and held:
                take = min(held[0][0], remaining)
                held[0][0] -= take
                remaining -= take
                if held[0][0] <= 1e-12:
                    held.popleft()
        closes = con.execute(
            "SELECT symbol, arg_max(close, time) "
            f"FROM read_parquet('{folder / 'market_data.parquet'}') GROUP BY symbol"
        ).fetchall()
        last.update(dict(closes))
        open_now = _open_pnl(lots, last)
        daily = stats["daily"]["trade_pnl"]
        realized = sum(f[5] for f in fills)
        assert daily["realized_pnl"] == pytest.approx(realized, abs=1e-6)
        assert daily["unrealized_pnl"] == pytest.approx(open_now - previous_open, abs=1e-6)
        assert daily["total_pnl"] == pytest.approx(realized + open_now - previous_open, abs=1e-6)
        assert stats["cumulative"]["trade_pnl"]["unrealized_pnl"] == pytest.approx(
            open_now, abs=1e-6
        )
        previous_open = open_now
        totals += daily["total_pnl"]
    assert totals == pytest.approx(stats["cumulative"]["trade_pnl"]["total_pnl"], abs=1e-6)
