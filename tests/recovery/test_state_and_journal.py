"""A crash never leaves a saved engine state older than what the emptied journals held.

In-process and deterministic: the engine is driven bar by bar with a FakeClock, waits for its
flusher after each bar, and is then abandoned without a stop (what a kill -9 leaves on disk:
every write returned, nothing after it).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
import yaml

from argo_engine.clock import FakeClock
from argo_engine.domain.enums import OrderType, Side
from argo_engine.domain.market import Bar
from argo_engine.session import open_engine, run_session, start_session
from argo_engine.settings import ArgoSettings, load_settings
from tests.engine.helpers import utc, write_replay
from tests.engine.strategies import ScriptedOrders

SYMBOL = "BTCUSDT"
T0 = utc(2025, 10, 1, 9, 0)
BARS = [
    Bar(SYMBOL, T0 + timedelta(minutes=i), 100.0 + i, 100.0 + i, 100.0 + i, 100.0 + i, 1.0)
    for i in range(10)
]


def _settings(
    tmp_path: Path, bars: list[Bar], broker: dict[str, Any], persistence: dict[str, Any]
) -> ArgoSettings:
    return load_settings(
        None,
        session={
            "data_output": str(tmp_path / "out"),
            "symbols": [SYMBOL],
            "session_id": "s1",
            "initial_capital": 1000.0,
        },
        feed={"kind": "replay", "replay_file": str(write_replay(tmp_path / "bars.parquet", bars))},
        broker=broker,
        persistence=persistence,
    )


def _script() -> ScriptedOrders:
    return ScriptedOrders(
        {
            (SYMBOL, BARS[2].time): [{"side": Side.BUY, "quantity": 1.0}],
            (SYMBOL, BARS[3].time): [{"side": Side.SELL, "quantity": 1.0}],
        }
    )


@pytest.mark.parametrize("background", [True, False])
def test_a_flush_due_before_stats_saves_the_state_of_what_it_writes(
    tmp_path: Path, background: bool
) -> None:
    # The BUY at bar 2 (0.96 s) writes stats.yaml and the state; the SELL at bar 3 (1.00 s)
    # comes when the flush is due (every 1 s) but the next stats.yaml is not (0.05 s minimum
    # spacing after a write): that flush writes parquet and empties the journal, so it must
    # save the state too. Otherwise the restart restores the state of bar 2 and streams
    # bar 3 and its SELL again.
    settings = _settings(
        tmp_path,
        BARS,
        {"commission": "fixed_rate", "commission_rate": 0.001},
        {"background_flush": background},
    )
    clock = FakeClock(T0)
    plan = start_session(settings, session_id="s1", clock=clock)
    engine = open_engine(settings, plan, T0.date(), clock=clock, strategy=_script())
    engine.start()
    for bar, step in zip(BARS[:4], (0.01, 0.01, 0.94, 0.04), strict=True):
        clock.advance(step)
        engine.process_bar(bar)
        assert engine.writers is not None
        engine.writers.wait()
    # Crash: the engine is abandoned here. The same session resumes.
    resumed = start_session(settings, session_id="s1", clock=clock)
    run_session(settings, plan=resumed, clock=clock, strategy=_script())
    out = tmp_path / "out"
    con = duckdb.connect()
    try:
        bars = con.execute(
            f"SELECT time, count(*) FROM read_parquet('{out}/*/run_*/market_data.parquet') "
            "GROUP BY time ORDER BY time"
        ).fetchall()
        sides = con.execute(
            f"SELECT side FROM read_parquet('{out}/*/run_*/trades.parquet') ORDER BY executed_at"
        ).fetchall()
    finally:
        con.close()
    assert [n for _, n in bars] == [1] * len(BARS)
    assert sides == [("BUY",), ("SELL",)]


def test_bars_journaled_after_the_state_still_count_for_drawdown(tmp_path: Path) -> None:
    # Zero fees, 1,000 of capital: BUY 1 @ 100 at bar 1 (the state is saved with the fill),
    # bar 4 closes at 80, bar 6 rests a LIMIT BUY @ 50, whose acceptance makes bars 2-6
    # durable without a new state. After a crash there, the restart must still count the
    # trough: equity 1,000 -> 980, a drawdown of 20.
    closes = [100.0, 100.0, 100.0, 100.0, 80.0, 100.0, 100.0, 100.0, 100.0, 100.0]
    bars = [Bar(SYMBOL, T0 + timedelta(minutes=i), c, c, c, c, 1.0) for i, c in enumerate(closes)]
    settings = _settings(tmp_path, bars, {"commission": "zero"}, {"paper_fsync": "per_order"})
    script = {
        (SYMBOL, bars[1].time): [{"side": Side.BUY, "quantity": 1.0}],
        (SYMBOL, bars[6].time): [
            {"side": Side.BUY, "quantity": 1.0, "order_type": OrderType.LIMIT, "price": 50.0}
        ],
    }
    clock = FakeClock(T0)
    plan = start_session(settings, session_id="s1", clock=clock)
    engine = open_engine(settings, plan, T0.date(), clock=clock, strategy=ScriptedOrders(script))
    engine.start()
    for bar in bars[:7]:
        clock.advance(0.001)
        engine.process_bar(bar)
        assert engine.writers is not None
        engine.writers.wait()
    # Crash after bar 6; the same session resumes and runs to the end.
    resumed = start_session(settings, session_id="s1", clock=clock)
    run_session(settings, plan=resumed, clock=clock, strategy=ScriptedOrders(script))
    latest = max((tmp_path / "out").glob("*/run_*/stats.yaml"), key=lambda p: p.parent.name)
    stats = yaml.safe_load(latest.read_text())
    for block in ("daily", "cumulative"):
        assert stats[block]["trade_result"]["max_drawdown_abs"] == pytest.approx(20.0)
        assert stats[block]["trade_result"]["max_drawdown"] == pytest.approx(0.02)


def test_the_state_counts_the_dates_fills_without_holding_their_ids(tmp_path: Path) -> None:
    # The ids of the fills the state counts are in .journal/trade-ids.txt, in booking order;
    # the state holds their number, so its size does not grow with the date's fills.
    orders: dict[tuple[str, object], list[dict[str, object]]] = {
        (SYMBOL, bar.time): [{"side": Side.BUY if i % 2 == 0 else Side.SELL, "quantity": 1.0}]
        for i, bar in enumerate(BARS[:8])
    }
    settings = _settings(tmp_path, BARS, {"commission": "fixed_rate"}, {})
    clock = FakeClock(T0)
    run_session(settings, plan=start_session(settings, session_id="s1", clock=clock),
                clock=clock, strategy=ScriptedOrders(orders))  # fmt: skip
    folder = tmp_path / "out" / T0.date().isoformat() / "run_1"
    state = orjson.loads((folder / ".journal" / "engine-state.json").read_bytes())
    con = duckdb.connect()
    try:
        stored = con.execute(
            f"SELECT trade_id FROM read_parquet('{folder}/trades.parquet') ORDER BY executed_at"
        ).fetchall()
    finally:
        con.close()
    assert len(stored) == 8
    assert "day_trade_ids" not in state
    assert state["day_trades_counted"] == 8
    logged = (folder / ".journal" / "trade-ids.txt").read_text().split()
    assert logged == [t for (t,) in stored]
