"""A session's run_N taken by another session on a later date: one folder, one run identity.

DESIGN.md: the same N is used on every later date of a session; where another session owns
``run_N``, the next free N is taken there and stats.yaml records the session's own run id
(``session_run_id``). Every step that reopens such a date (a trading-day task, its retry, the
recovery of a crash) must find that folder again and keep that record.

In-process and deterministic: a FakeClock, synchronous flushes, and a crash is an engine
abandoned without a stop (what a kill -9 leaves on disk).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from argo_engine.clock import FakeClock
from argo_engine.domain.enums import Side
from argo_engine.domain.market import Bar
from argo_engine.persistence.runs import RunInfo, find_session_runs, write_run_yaml
from argo_engine.session import (
    SessionPlan,
    continue_session,
    finalize_day,
    needs_recovery,
    open_engine,
    prefetch_day,
    start_session,
    stream_day,
)
from argo_engine.settings import ArgoSettings, load_settings
from tests.engine.helpers import session_rows, utc, write_replay
from tests.engine.strategies import ScriptedOrders

SYMBOL = "BTCUSDT"
D1, D2, D3 = date(2025, 10, 1), date(2025, 10, 2), date(2025, 10, 3)
# Three bars at the end of D1, six on D2.
BARS = [
    Bar(SYMBOL, utc(2025, 10, 1, 23, 57) + timedelta(minutes=i), p, p, p, p, 1.0)
    for i, p in enumerate([100.0, 101.0, 102.0, 103.0, 104.0, 105.0, 106.0, 107.0, 108.0])
]
SCRIPT = {
    (SYMBOL, BARS[1].time): [{"side": Side.BUY, "quantity": 1.0}],
    (SYMBOL, BARS[4].time): [{"side": Side.SELL, "quantity": 1.0}],
}


def _settings(tmp_path: Path) -> ArgoSettings:
    return load_settings(
        None,
        session={
            "data_output": str(tmp_path / "out"),
            "symbols": [SYMBOL],
            "initial_capital": 1000.0,
        },
        feed={"kind": "replay", "replay_file": str(write_replay(tmp_path / "bars.parquet", BARS))},
        broker={"commission": "zero"},
        strategy={"name": "rsi"},
        # Synchronous flushes: the crash below leaves the same files every time.
        persistence={"paper_fsync": "per_order", "background_flush": False},
    )


def _other_session_owns(out: Path, day: date, n: int) -> None:
    folder = out / day.isoformat() / f"run_{n}"
    folder.mkdir(parents=True)
    write_run_yaml(
        folder,
        RunInfo(
            session_id="beta",
            run_id=f"run_{n}",
            run_number=n,
            date=day,
            strategy="rsi",
            symbols=(SYMBOL,),
            interval="1m",
            start_time=datetime(2025, 10, 1, tzinfo=UTC),
        ),
    )


def _stats(folder: Path) -> dict[str, Any]:
    data = yaml.safe_load((folder / "stats.yaml").read_text())
    assert isinstance(data, dict)
    return data


def _alpha_folders(out: Path) -> list[tuple[str, str]]:
    return [(d.isoformat(), f.name) for d, _, f in find_session_runs(out, "alpha")]


def test_trading_day_steps_of_a_displaced_date_share_one_folder(tmp_path: Path) -> None:
    # beta owns run_1 on D2, so alpha's run 1 writes D2 into run_2. The trading-day flow opens
    # the date once per task (prefetch, stream, finalize): each must continue in run_2, not
    # take a new folder.
    settings = _settings(tmp_path)
    out = tmp_path / "out"
    _other_session_owns(out, D2, 1)
    clock = FakeClock(BARS[0].time)
    plan = start_session(settings, session_id="alpha", clock=clock, first_date=D1)
    assert plan.run_number == 1
    for day in (D1, D2):
        prefetch_day(settings, plan, day, clock=clock)
        stream_day(settings, plan, day, clock=clock)
        finalize_day(settings, plan, day, clock=clock)
    assert _alpha_folders(out) == [("2025-10-01", "run_1"), ("2025-10-02", "run_2")]
    folder = out / "2025-10-02" / "run_2"
    stats = _stats(folder)
    assert (stats["id"], stats["session_run_id"]) == ("run_2", "run_1")
    assert len(session_rows(out, "market_data")) == len(BARS)


def _crash_on_d2(tmp_path: Path) -> tuple[ArgoSettings, FakeClock, SessionPlan, Path]:
    """alpha's run 1 streams D1 and D2 (displaced to run_2) and crashes after the SELL on D2."""
    settings = _settings(tmp_path)
    out = tmp_path / "out"
    _other_session_owns(out, D2, 1)
    clock = FakeClock(BARS[0].time)
    plan = start_session(settings, session_id="alpha", clock=clock, first_date=D1)
    engine = open_engine(settings, plan, D1, clock=clock, strategy=ScriptedOrders(SCRIPT))
    engine.start()
    for bar in BARS[:6]:
        clock.advance(0.001)
        engine.process_bar(bar)
    folder = out / "2025-10-02" / "run_2"
    # Preconditions: D2 went to run_2, which says so, and the crash leaves it to recover.
    assert engine.folder == folder
    assert _stats(folder)["session_run_id"] == "run_1"
    assert needs_recovery(folder)
    return settings, clock, plan, folder


def test_recovering_a_displaced_folder_keeps_the_sessions_run_id(tmp_path: Path) -> None:
    settings, clock, _, folder = _crash_on_d2(tmp_path)
    # A new start of the session recovers the crashed folder first, then takes a new run_N.
    resumed = start_session(settings, session_id="alpha", clock=clock)
    assert not needs_recovery(folder)
    stats = _stats(folder)
    assert (stats["id"], stats["session_run_id"]) == ("run_2", "run_1")
    # The recovered folder counts the SELL filled before the crash: 1 @ 101 -> 1 @ 104.
    assert stats["daily"]["trade_result"]["number_of_trades"] == 1
    assert stats["cumulative"]["trade_pnl"]["realized_pnl"] == 3.0
    assert resumed.run_number == 3
    assert _alpha_folders(tmp_path / "out") == [
        ("2025-10-01", "run_1"),
        ("2025-10-02", "run_2"),
        ("2025-10-02", "run_3"),
    ]


def test_a_retried_day_after_a_crash_continues_in_the_displaced_folder(tmp_path: Path) -> None:
    settings, clock, plan, folder = _crash_on_d2(tmp_path)
    # A Prefect retry of the stream task reopens the date with the same plan (run 1): it
    # recovers run_2 and goes on there, neither taking a new folder nor redoing stored rows.
    summary = stream_day(settings, plan, D2, clock=clock)
    assert summary.folder == str(folder)
    finalize_day(settings, plan, D2, clock=clock)
    assert _alpha_folders(tmp_path / "out") == [("2025-10-01", "run_1"), ("2025-10-02", "run_2")]
    sides = [r[2] for r in session_rows(tmp_path / "out", "trades")]
    assert sorted(sides) == ["BUY", "SELL"]
    stats = _stats(folder)
    assert (stats["id"], stats["session_run_id"]) == ("run_2", "run_1")
    assert len(session_rows(tmp_path / "out", "market_data")) == len(BARS)


def test_a_continued_session_keeps_its_run_number_after_a_displaced_date(
    tmp_path: Path,
) -> None:
    # The daily deployment continues the session's latest run on D3: that is run 1 (shown as
    # run_2 on D2 only), so D3 is written to run_1.
    settings = _settings(tmp_path)
    out = tmp_path / "out"
    _other_session_owns(out, D2, 1)
    clock = FakeClock(BARS[0].time)
    plan = start_session(settings, session_id="alpha", clock=clock, first_date=D1)
    for day in (D1, D2):
        stream_day(settings, plan, day, clock=clock)
        finalize_day(settings, plan, day, clock=clock)
    continued = continue_session(settings, session_id="alpha", clock=clock, first_date=D3)
    assert continued.run_number == 1
