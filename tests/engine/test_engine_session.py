"""End-to-end engine sessions on the replay/synthetic feeds and the paper broker."""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from argo_engine.clock import FakeClock
from argo_engine.domain.enums import EngineStatus
from argo_engine.domain.market import Bar
from argo_engine.engine.callbacks import EngineCallbacks
from argo_engine.session import run_session, start_session

from .helpers import rows, utc, wave_bars, write_replay

FILES = (
    "stats.yaml",
    "orders.parquet",
    "trades.parquet",
    "marks.parquet",
    "logs.parquet",
    "market_data.parquet",
    "run.yaml",
)


def replay_settings(make_settings: Any, path: Path, **session: Any) -> Any:
    return make_settings(
        session={"symbols": ["BTCUSDT", "ETHUSDT"], **session},
        feed={"kind": "replay", "replay_file": str(path)},
        broker={"commission": "fixed_rate", "commission_rate": 0.001},
    )


def test_three_date_session_layout_and_stats(make_settings: Any, tmp_path: Path) -> None:
    # 3 days of 1m bars from 2025-10-01 22:00 UTC: crosses two midnights.
    bars = wave_bars(["BTCUSDT", "ETHUSDT"], utc(2025, 10, 1, 22, 0), 2 * 1440 + 60)
    settings = replay_settings(make_settings, write_replay(tmp_path / "bars.parquet", bars))
    clock = FakeClock(utc(2025, 10, 1, 21, 0))
    plan, summaries = run_session(settings, clock=clock)
    out = Path(settings.session.data_output)
    days = sorted(p.name for p in out.iterdir())
    assert days == ["2025-10-01", "2025-10-02", "2025-10-03"]
    all_trades: list[dict[str, Any]] = []
    bars_by_day: dict[str, int] = defaultdict(int)
    for b in bars:
        bars_by_day[b.time.date().isoformat()] += 1
    for day in days:
        folder = out / day / f"run_{plan.run_number}"
        assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == sorted(
            FILES
        )
        md = rows(folder / "market_data.parquet")
        assert len(md) == bars_by_day[day]
        assert {r["time"].date().isoformat() for r in md} == {day}
        trades = rows(folder / "trades.parquet")
        orders = rows(folder / "orders.parquet")
        assert all(t["executed_at"].date().isoformat() == day for t in trades)
        assert all(o["timestamp"].date().isoformat() == day for o in orders)
        for tbl in ("logs", "marks"):
            for r in rows(folder / f"{tbl}.parquet"):
                ts = r["timestamp"] if tbl == "logs" else r["signal_time"]
                assert ts is None or ts.date().isoformat() == day
        stats = yaml.safe_load((folder / "stats.yaml").read_text())
        assert stats["id"] == f"run_{plan.run_number}"
        assert stats["date"] == day
        assert stats["session_id"] == plan.session_id
        con = duckdb.connect()
        n, wins, losses, realized, fees = con.execute(
            "SELECT count(*), count(*) FILTER (pnl > 0), count(*) FILTER (pnl < 0), "
            "coalesce(sum(pnl), 0), coalesce(sum(commission), 0) "
            f"FROM read_parquet('{folder / 'trades.parquet'}')"
        ).fetchone()
        daily = stats["daily"]
        assert daily["trade_result"]["number_of_trades"] == n
        assert daily["trade_result"]["number_of_winning_trades"] == wins
        assert daily["trade_result"]["number_of_losing_trades"] == losses
        assert daily["trade_pnl"]["realized_pnl"] == pytest.approx(realized, abs=1e-9)
        assert daily["total_fees"] == pytest.approx(fees, abs=1e-9)
        all_trades.extend(trades)
    assert len(all_trades) > 4, "the wave must make the RSI strategy trade"
    last = yaml.safe_load((out / days[-1] / f"run_{plan.run_number}" / "stats.yaml").read_text())
    cum = last["cumulative"]
    assert cum["trade_result"]["number_of_trades"] == len(all_trades)
    assert cum["trade_pnl"]["realized_pnl"] == pytest.approx(sum(t["pnl"] for t in all_trades))
    assert last["trade_result"] == cum["trade_result"]
    assert last["trade_pnl"] == cum["trade_pnl"]
    assert [s.date for s in summaries] == days


def test_three_sessions_same_date_get_run_1_2_3(make_settings: Any) -> None:
    settings = make_settings(feed={"bars": 30})
    numbers = []
    for _ in range(3):
        plan, _ = run_session(settings, clock=FakeClock(utc(2025, 10, 1, 8, 0)))
        numbers.append(plan.run_number)
    assert numbers == [1, 2, 3]
    day = Path(settings.session.data_output) / "2025-10-01"
    assert sorted(p.name for p in day.iterdir()) == ["run_1", "run_2", "run_3"]


def test_external_query_during_session_sees_trades_so_far(
    make_settings: Any, tmp_path: Path
) -> None:
    bars = wave_bars(["BTCUSDT"], utc(2025, 10, 1, 0, 0), 600)
    settings = make_settings(
        session={"symbols": ["BTCUSDT"]},
        feed={"kind": "replay", "replay_file": str(write_replay(tmp_path / "b.parquet", bars))},
        # Flushes inline on the engine thread: the reader's view then depends on the injected
        # clock only, not on how soon a flusher thread gets a core (a first test in a fresh
        # process saw no version at all before the replay ended).
        persistence={"flush_interval_s": 10.0, "background_flush": False},
    )
    clock = FakeClock(utc(2025, 10, 1, 0, 0))
    fills_seen: list[str] = []
    observations: list[tuple[int, int]] = []
    seen_by_bar: list[int] = []  # fills made up to each bar
    trades_file: list[Path] = []

    def on_bar(run_id: str, bar: Bar) -> None:
        clock.advance(1.0)  # one second of wall time per bar: a flush every tenth bar
        seen_by_bar.append(len(fills_seen))
        if trades_file and trades_file[0].exists():
            con = duckdb.connect()
            (n,) = con.execute(f"SELECT count(*) FROM read_parquet('{trades_file[0]}')").fetchone()  # type: ignore[misc]
            con.close()
            observations.append((len(seen_by_bar) - 1, n))

    def on_start(info: Any) -> None:
        trades_file.append(Path(info.run_folder) / "trades.parquet")

    callbacks = EngineCallbacks(
        on_engine_start=on_start,
        on_market_data=on_bar,
        on_order_filled=lambda f: fills_seen.append(f.trade_id),
    )
    run_session(settings, clock=clock, callbacks=callbacks)
    assert len(fills_seen) >= 4
    # A reader during the run sees every fill made up to the previous flush (at most one
    # flush interval, ten bars, plus the bar in flight ago), and never a fill not yet made.
    assert any(n > 0 for _, n in observations)
    for bar, n in observations:
        assert n >= seen_by_bar[max(bar - 11, 0)]
        assert n <= seen_by_bar[bar]


@pytest.mark.parametrize("parquet_interval_s", [None, 20.0])
def test_parquet_interval_spaces_the_versions_readers_see(
    make_settings: Any, tmp_path: Path, parquet_interval_s: float | None
) -> None:
    # One bar a second, a flush a second: the market data file gets a version every second by
    # default, every 20 s with the setting; a reader never sees more than 20 s stale.
    bars = wave_bars(["BTCUSDT"], utc(2025, 10, 1, 0, 0), 200)
    settings = make_settings(
        session={"symbols": ["BTCUSDT"]},
        feed={"kind": "replay", "replay_file": str(write_replay(tmp_path / "b.parquet", bars))},
        persistence={
            "flush_interval_s": 1.0,
            "background_flush": False,
            "parquet_interval_s": parquet_interval_s,
        },
    )
    clock = FakeClock(utc(2025, 10, 1, 0, 0))
    seen: list[int] = []
    files: list[Path] = []

    def on_bar(run_id: str, bar: Bar) -> None:
        clock.advance(1.0)
        if files and files[0].exists():
            con = duckdb.connect()
            (n,) = con.execute(f"SELECT count(*) FROM read_parquet('{files[0]}')").fetchone()  # type: ignore[misc]
            con.close()
            seen.append(n)

    callbacks = EngineCallbacks(
        on_engine_start=lambda info: files.append(Path(info.run_folder) / "market_data.parquet"),
        on_market_data=on_bar,
    )
    run_session(settings, clock=clock, callbacks=callbacks)
    versions = len(set(seen))
    stale = max(i - n for i, n in enumerate(seen))
    if parquet_interval_s is None:
        assert versions > 150
        assert stale <= 2
    else:
        assert 8 <= versions <= 12
        assert stale <= 21


def naive_rsi_trades(closes: list[tuple[Any, float]]) -> list[tuple[Any, str, float]]:
    trades = []
    long = False
    for i in range(14, len(closes)):
        window = [closes[j][1] - closes[j - 1][1] for j in range(i - 13, i + 1)]
        gain = sum(d for d in window if d > 0) / 14
        loss = sum(-d for d in window if d < 0) / 14
        rsi = 100.0 if loss == 0 else 100 - 100 / (1 + gain / loss)
        if rsi < 30 and not long:
            trades.append((closes[i][0], "BUY", closes[i][1]))
            long = True
        elif rsi > 70 and long:
            trades.append((closes[i][0], "SELL", closes[i][1]))
            long = False
    return trades


def test_rsi_trades_match_independent_recomputation(make_settings: Any, tmp_path: Path) -> None:
    bars = wave_bars(["BTCUSDT"], utc(2025, 10, 1, 0, 0), 1000, period=90)
    settings = make_settings(
        session={"symbols": ["BTCUSDT"]},
        feed={"kind": "replay", "replay_file": str(write_replay(tmp_path / "b.parquet", bars))},
        broker={"commission": "zero"},
    )
    plan, _ = run_session(settings, clock=FakeClock(utc(2025, 10, 1)))
    folder = Path(settings.session.data_output) / "2025-10-01" / f"run_{plan.run_number}"
    got = rows(folder / "trades.parquet", "SELECT * FROM t ORDER BY executed_at")
    expected = naive_rsi_trades([(b.time.replace(tzinfo=None), b.close) for b in bars])
    assert len(expected) >= 4
    assert [(t["executed_at"], t["side"], t["executed_price"]) for t in got] == expected
    # Independent PnL: each SELL closes the previous BUY, 1 unit, no fees.
    exp_pnl = []
    for i, (_, side, price) in enumerate(expected):
        exp_pnl.append(price - expected[i - 1][2] if side == "SELL" else 0.0)
    assert [t["pnl"] for t in got] == pytest.approx(exp_pnl)
    stats = yaml.safe_load((folder / "stats.yaml").read_text())
    assert stats["trade_pnl"]["realized_pnl"] == pytest.approx(sum(exp_pnl))


@pytest.mark.parametrize(
    ("tz", "day_start", "start", "expected_days"),
    [
        # DST ends 2025-11-02 in New York: that local date has 25 hours.
        (
            "America/New_York",
            None,
            utc(2025, 11, 1, 22, 0),
            ["2025-11-01", "2025-11-02", "2025-11-03"],
        ),
        # Futures-style day starting 17:00 New York time.
        (
            "America/New_York",
            "17:00",
            utc(2025, 10, 1, 19, 0),
            ["2025-10-01", "2025-10-02", "2025-10-03"],
        ),
    ],
)
def test_time_zone_and_day_start_split_days(
    make_settings: Any,
    tmp_path: Path,
    tz: str,
    day_start: str | None,
    start: Any,
    expected_days: list[str],
) -> None:
    from zoneinfo import ZoneInfo

    from argo_engine.domain.calendar import trading_date

    bars = wave_bars(["BTCUSDT"], start, 36 * 60, step=timedelta(minutes=1))
    settings = make_settings(
        session={"symbols": ["BTCUSDT"], "timezone": tz, "day_start": day_start},
        feed={"kind": "replay", "replay_file": str(write_replay(tmp_path / "b.parquet", bars))},
    )
    plan, _ = run_session(settings, clock=FakeClock(start))
    out = Path(settings.session.data_output)
    assert sorted(p.name for p in out.iterdir()) == expected_days
    zone = ZoneInfo(tz)
    from datetime import time as dtime

    ds = dtime.fromisoformat(day_start) if day_start else None
    for day in expected_days:
        md = rows(out / day / f"run_{plan.run_number}" / "market_data.parquet")
        expected = [b for b in bars if trading_date(b.time, zone, ds).isoformat() == day]
        assert len(md) == len(expected)
        from datetime import UTC

        assert {r["time"].replace(tzinfo=UTC) for r in md} == {b.time for b in expected}


def test_bad_bars_are_rejected_and_logged_not_fatal(make_settings: Any, tmp_path: Path) -> None:
    good = wave_bars(["BTCUSDT"], utc(2025, 10, 1, 0, 0), 40)
    t = good[20].time
    bad = [
        Bar("BTCUSDT", t + timedelta(seconds=1), math.nan, 1, 1, 1, 1),
        Bar("BTCUSDT", t + timedelta(seconds=2), 1, 0.5, 2.0, 1, 1),  # high < low
        Bar("BTCUSDT", t + timedelta(seconds=3), -1, 1, -1, 1, 1),
        Bar("BTCUSDT", t, 1, 1, 1, 1, 1),  # duplicate of an accepted bar
    ]
    feed_bars = good[:21] + bad + good[21:]
    from argo_engine.testing.feeds import ListFeed

    errors: list[BaseException] = []
    settings = make_settings(session={"symbols": ["BTCUSDT"]})
    plan, _ = run_session(
        settings,
        clock=FakeClock(utc(2025, 10, 1)),
        feed=ListFeed(feed_bars),
        callbacks=EngineCallbacks(on_error=errors.append),
        plan=start_session(
            settings, clock=FakeClock(utc(2025, 10, 1)), first_date=date(2025, 10, 1)
        ),
    )
    folder = Path(settings.session.data_output) / "2025-10-01" / f"run_{plan.run_number}"
    assert len(rows(folder / "market_data.parquet")) == 40
    logged = rows(folder / "logs.parquet", "SELECT * FROM t WHERE level = 'error'")
    assert len(logged) == 4
    assert len(errors) == 4


def test_every_callback_fires_in_order(make_settings: Any, tmp_path: Path) -> None:
    bars = wave_bars(["BTCUSDT"], utc(2025, 10, 1, 23, 0), 200, period=40)
    settings = make_settings(
        session={"symbols": ["BTCUSDT"]},
        feed={"kind": "replay", "replay_file": str(write_replay(tmp_path / "b.parquet", bars))},
    )
    seen: dict[str, list[Any]] = defaultdict(list)
    order: list[str] = []

    def rec(name: str) -> Any:
        def cb(*args: Any) -> None:
            seen[name].append(args)
            order.append(name)

        return cb

    names = [
        "on_engine_start",
        "on_engine_stop",
        "on_market_data",
        "on_order_placed",
        "on_order_filled",
        "on_stats_update",
        "on_status_update",
        "on_day_closed",
    ]
    callbacks = EngineCallbacks(**{n: rec(n) for n in names})
    run_session(settings, clock=FakeClock(utc(2025, 10, 1, 23)), callbacks=callbacks)
    for name in names:
        assert seen[name], name
    statuses = [a[0] for a in seen["on_status_update"]]
    assert statuses[0] == EngineStatus.PREFETCHING
    assert EngineStatus.RUNNING in statuses
    assert statuses[-1] == EngineStatus.STOPPED
    assert seen["on_engine_stop"] == [(None,)]
    assert seen["on_day_closed"][0][0] == date(2025, 10, 1)
    assert len(seen["on_market_data"]) == 200
    # Per bar: market data before orders before stats.
    first_fill = order.index("on_order_filled")
    assert order[first_fill - 1] in ("on_order_placed",)
    assert order.index("on_market_data") < order.index("on_order_placed")
    assert order[first_fill + 1] == "on_stats_update"


def test_strategy_error_is_recorded_and_session_continues(make_settings: Any) -> None:
    from argo_engine.testing.feeds import ListFeed
    from tests.engine.strategies import ExplodingStrategy

    bars = wave_bars(["BTCUSDT"], utc(2025, 10, 1, 0, 0), 30)
    settings = make_settings(session={"symbols": ["BTCUSDT"]})
    errs: list[Any] = []
    plan, _ = run_session(
        settings,
        clock=FakeClock(utc(2025, 10, 1)),
        feed=ListFeed(bars),
        strategy=ExplodingStrategy(),
        callbacks=EngineCallbacks(on_strategy_error=lambda b, e: errs.append((b, e))),
    )
    folder = Path(settings.session.data_output) / "2025-10-01" / f"run_{plan.run_number}"
    assert len(errs) == 3  # every tenth bar raises
    assert len(rows(folder / "market_data.parquet")) == 30
    assert len(rows(folder / "logs.parquet", "SELECT * FROM t WHERE level='error'")) == 3


def test_stop_event_flushes_everything(make_settings: Any) -> None:
    from argo_engine.testing.feeds import ListFeed

    bars = wave_bars(["BTCUSDT"], utc(2025, 10, 1, 0, 0), 400, period=30)
    settings = make_settings(session={"symbols": ["BTCUSDT"]})
    stop = threading.Event()
    fills: list[Any] = []

    def on_bar(run_id: str, bar: Bar) -> None:
        if bar.time == bars[250].time:
            stop.set()

    plan, _ = run_session(
        settings,
        clock=FakeClock(utc(2025, 10, 1)),
        feed=ListFeed(bars),
        stop=stop,
        callbacks=EngineCallbacks(on_market_data=on_bar, on_order_filled=fills.append),
    )
    folder = Path(settings.session.data_output) / "2025-10-01" / f"run_{plan.run_number}"
    assert len(rows(folder / "market_data.parquet")) == 251
    assert len(rows(folder / "trades.parquet")) == len(fills) > 0
    assert not any((folder / ".journal").glob("*.jsonl")) or all(
        p.stat().st_size == 0 for p in (folder / ".journal").glob("*.jsonl")
    )
