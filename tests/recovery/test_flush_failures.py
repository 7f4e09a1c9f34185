"""Failures of the background flusher and power losses while a date closes lose no bar.

Deterministic: before every bar the engine joins its date's flusher (a live feed slower
than the disk), through a done-callback event, never a sleep; the clock is a FakeClock
advanced per bar.
"""

from __future__ import annotations

import os
import shutil
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from argo_engine.clock import FakeClock
from argo_engine.domain.market import Bar
from argo_engine.engine import core
from argo_engine.engine.callbacks import EngineCallbacks
from argo_engine.errors import PersistenceError
from argo_engine.persistence.journal import Journal
from argo_engine.persistence.writers import RunWriters
from argo_engine.session import run_session, start_session
from argo_engine.settings import ArgoSettings, load_settings
from tests.engine.helpers import utc, wave_bars, write_replay

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
_FINALIZE = RunWriters.finalize_in_background


def _settings(out: Path, replay: Path) -> ArgoSettings:
    return load_settings(
        None,
        session={"data_output": str(out), "symbols": SYMBOLS, "session_id": "s1"},
        feed={"kind": "replay", "replay_file": str(replay)},
        broker={"commission": "fixed_rate", "commission_rate": 0.001},
        persistence={"background_flush": True, "flush_interval_s": 1.0},
    )


def _stored(out: Path, table: str, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    try:
        return con.execute(
            sql.replace("FROM T", f"FROM read_parquet('{out}/*/run_*/{table}.parquet')")
        ).fetchall()
    finally:
        con.close()


def _missing(out: Path, bars: list[Bar]) -> list[Bar]:
    have = set(_stored(out, "market_data", "SELECT symbol, time FROM T"))
    return [b for b in bars if (b.symbol, b.time.replace(tzinfo=None)) not in have]


def _join_flusher_first(engine: core.TradingEngine) -> None:
    writers = engine.writers
    running = writers._pending_flush if writers is not None else None
    if running is not None:
        done = threading.Event()
        running.add_done_callback(lambda _: done.set())  # after RunWriters' own callback
        assert done.wait(60)


def _hold_closes(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Queue a job that waits for the returned event before each date's background close.

    It stands for an interval flush still running when the date rolls (a slow disk).
    """
    gate = threading.Event()

    def behind_a_slow_flush(self: RunWriters, *args: Any, **options: Any) -> Any:
        self.wait()
        self._start(lambda: gate.wait(60))
        return _FINALIZE(self, *args, **options)

    monkeypatch.setattr(RunWriters, "finalize_in_background", behind_a_slow_flush)
    return gate


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Callables run before each bar (after joining the flusher), given the engine and bar."""
    before: list[Any] = []
    process_bar = core.TradingEngine.process_bar

    def joined(self: core.TradingEngine, bar: Bar, **options: Any) -> Any:
        _join_flusher_first(self)
        for hook in before:
            hook(self, bar)
        return process_bar(self, bar, **options)

    monkeypatch.setattr(core.TradingEngine, "process_bar", joined)
    return before


def test_a_failed_stats_write_loses_no_bar(tmp_path: Path, hooks: list[Any]) -> None:
    bars = wave_bars(SYMBOLS, utc(2025, 10, 1, 0, 0), 600, period=40)  # one date
    replay = write_replay(tmp_path / "bars.parquet", bars)
    out = tmp_path / "out"
    settings = _settings(out, replay)
    clock = FakeClock(utc(2025, 10, 1, 0, 0))
    folder = out / "2025-10-01" / "run_1"
    seen = {"bars": 0, "broken": False}

    def tick(run_id: str, bar: Bar) -> None:
        seen["bars"] += 1
        clock.advance(0.1)  # a full flush with the state and stats.yaml every 10th bar

    def break_stats_once(engine: core.TradingEngine, bar: Bar) -> None:
        due = engine.clock.monotonic() + 0.1
        assert engine.writers is not None
        if (
            seen["bars"] >= 500
            and not seen["broken"]
            and due >= engine.writers.next_flush_at
            and due >= engine._next_stats_at
        ):
            # This bar hands over a flush whose stats.yaml write fails (a full disk, say).
            seen["broken"] = True
            (folder / "stats.yaml").unlink()
            (folder / "stats.yaml").mkdir()

    def on_error(exc: BaseException) -> None:
        if (folder / "stats.yaml").is_dir():
            (folder / "stats.yaml").rmdir()  # the disk has room again

    hooks.append(break_stats_once)
    with pytest.raises(PersistenceError):
        run_session(
            settings,
            plan=start_session(settings, clock=clock),
            clock=clock,
            callbacks=EngineCallbacks(on_market_data=tick, on_error=on_error),
        )
    assert seen["broken"]
    hooks.clear()
    run_session(settings, plan=start_session(settings, session_id="s1", clock=clock), clock=clock)
    assert _missing(out, bars) == []
    assert _stored(out, "market_data", "SELECT count(*) FROM T") == [(len(bars),)]


def test_a_power_loss_while_a_date_closes_loses_no_bar_and_counts_no_missing_fill(
    tmp_path: Path, hooks: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The next date's state counts the closing date's last bars and fills; it must never be
    # on disk before they are durable, even while the closing date's flusher is still busy.
    bars = wave_bars(SYMBOLS, utc(2025, 10, 1, 22, 0), 240, period=40)  # 22:00 -> 02:00
    replay = write_replay(tmp_path / "bars.parquet", bars)
    out, crashed = tmp_path / "out", tmp_path / "crashed"

    # What a power loss leaves of each journal: its length at its last fsync.
    durable: dict[Path, int] = {}
    lock = threading.Lock()
    sync, truncate, remove = Journal.sync, Journal._truncate, Journal.remove

    def tracked_sync(self: Journal) -> None:
        fd = self._fd
        size = os.fstat(fd).st_size if fd is not None and self.unsynced else None
        sync(self)
        if size is not None:
            with lock:
                durable[self.path] = size

    def tracked_truncate(self: Journal) -> None:
        truncate(self)
        with lock:
            durable[self.path] = 0

    def tracked_remove(self: Journal) -> None:
        remove(self)
        with lock:
            durable.pop(self.path, None)

    monkeypatch.setattr(Journal, "sync", tracked_sync)
    monkeypatch.setattr(Journal, "_truncate", tracked_truncate)
    monkeypatch.setattr(Journal, "remove", tracked_remove)

    # The closing date's flusher is still busy with an interval flush when the date rolls.
    gate = _hold_closes(monkeypatch)

    def power_loss(engine: core.TradingEngine, bar: Bar) -> None:
        # Once the next date's state is on disk (its flusher idle, the old one held).
        if gate.is_set() or engine.day is None or engine.day.isoformat() != "2025-10-02":
            return
        assert engine.folder is not None
        if not (engine.folder / ".journal" / core.STATE_FILE).exists():
            return
        shutil.copytree(out, crashed)
        with lock:
            cuts = dict(durable)
        for path in crashed.glob("*/run_*/.journal/*.jsonl"):
            with open(path, "r+b") as fh:
                fh.truncate(cuts.get(out / path.relative_to(crashed), 0))
        gate.set()

    hooks.append(power_loss)
    clock = FakeClock(utc(2025, 10, 1, 21, 0))

    def tick(run_id: str, bar: Bar) -> None:
        clock.advance(0.001)

    run_session(_settings(out, replay), clock=clock, callbacks=EngineCallbacks(on_market_data=tick))
    assert gate.is_set(), "the power loss point was never reached"

    # Restart after the power loss: recovery, then the session resumes.
    hooks.clear()
    monkeypatch.setattr(RunWriters, "finalize_in_background", _FINALIZE)
    settings = _settings(crashed, replay)
    clock = FakeClock(utc(2025, 10, 3, 0, 0))
    run_session(settings, plan=start_session(settings, session_id="s1", clock=clock), clock=clock)
    assert _missing(crashed, bars) == []
    ((trades,),) = _stored(crashed, "trades", "SELECT count(*) FROM T")
    last = sorted(crashed.glob("2025-10-02/run_*/stats.yaml"))[-1]
    counted = yaml.safe_load(last.read_text())["cumulative"]["trade_result"]["number_of_trades"]
    assert trades == counted > 0


def test_failed_closes_of_several_dates_still_leave_the_open_date_on_disk(
    tmp_path: Path, hooks: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three dates fail to close (their market_data.parquet cannot be replaced) while the
    # disk is slow (their closes are held until the fourth date streams): the failures are
    # reported, and the open date's rows still reach its files.
    step = timedelta(minutes=15)
    bars = wave_bars(SYMBOLS, utc(2025, 10, 1, 22, 0), 4 * 51, step=step, period=12)
    replay = write_replay(tmp_path / "bars.parquet", bars)
    out = tmp_path / "out"
    settings = _settings(out, replay)
    clock = FakeClock(utc(2025, 10, 1, 21, 0))
    broken: list[Path] = []
    gate = _hold_closes(monkeypatch)

    def break_the_closes(engine: core.TradingEngine, bar: Bar) -> None:
        assert engine.day is not None
        assert engine.folder is not None
        if bar.time.date() > engine.day and len(broken) < 3:
            # The date rolls at this bar: its close will fail (the file, which may hold
            # rows of earlier flushes, is put aside, not lost).
            target = engine.folder / "market_data.parquet"
            target.rename(target.with_name("aside.parquet"))
            target.mkdir()
            broken.append(target)
        elif len(broken) == 3:
            gate.set()

    def tick(run_id: str, bar: Bar) -> None:
        clock.advance(0.01)

    hooks.append(break_the_closes)
    with pytest.raises(PersistenceError, match=r"market_data\.parquet"):
        run_session(
            settings,
            plan=start_session(settings, clock=clock),
            clock=clock,
            callbacks=EngineCallbacks(on_market_data=tick),
        )
    assert len(broken) == 3
    open_date = out / "2025-10-04" / "run_1"
    con = duckdb.connect()
    try:
        ((n,),) = con.execute(
            f"SELECT count(*) FROM read_parquet('{open_date}/market_data.parquet')"
        ).fetchall()
    finally:
        con.close()
    assert n > 0
    assert not [p for p in open_date.glob(".journal/*.jsonl") if p.stat().st_size]
    # The failed dates kept their journals: once the files can be written, a restart
    # recovers them and nothing is missing.
    hooks.clear()
    monkeypatch.setattr(RunWriters, "finalize_in_background", _FINALIZE)
    for target in broken:
        target.rmdir()
        target.with_name("aside.parquet").rename(target)
    run_session(settings, plan=start_session(settings, session_id="s1", clock=clock), clock=clock)
    assert _missing(out, bars) == []
