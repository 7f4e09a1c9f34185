"""The background flusher of RunWriters, and engine sessions that use it.

Every hand-over between the engine thread and the flusher is synchronized with events (a
paused ``after_sync``), never with sleeps, so what runs while a flush is in flight is exact.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from argo_engine.clock import FakeClock
from argo_engine.domain import OrderStatus
from argo_engine.domain.market import Bar
from argo_engine.engine.callbacks import EngineCallbacks
from argo_engine.errors import PersistenceError
from argo_engine.persistence import row_buffers as writers_module
from argo_engine.persistence.schema import TABLES
from argo_engine.persistence.stats_yaml import write_stats_yaml
from argo_engine.persistence.writers import RunWriters
from argo_engine.session import run_session
from tests.engine.helpers import session_rows, utc, wave_bars, write_replay
from tests.integration.test_writers import (
    T0,
    bar,
    fill,
    journaled,
    log,
    mark,
    order,
    parquet_rows,
)


class PausedFlush:
    """An ``after_sync`` that holds the flusher until the test lets it go."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.thread: threading.Thread | None = None

    def __call__(self) -> None:
        self.thread = threading.current_thread()
        self.entered.set()
        assert self.release.wait(timeout=60), "the test never released the flush"


def paused_flush(tmp_path: Path, first_bars: int) -> tuple[RunWriters, FakeClock, PausedFlush]:
    """Background writers with ``first_bars`` bars, whose first flush is held in after_sync."""
    clock = FakeClock(T0)
    writers = RunWriters(tmp_path / "run_1", clock=clock, flush_interval_s=1.0, background=True)
    for i in range(first_bars):
        writers.append_bar(bar(i))
    clock.advance(1.0)
    pause = PausedFlush()
    writers.submit(pause)
    assert pause.entered.wait(timeout=60)
    return writers, clock, pause


def test_flush_runs_on_the_flusher_while_the_engine_appends(tmp_path: Path) -> None:
    writers, clock, pause = paused_flush(tmp_path, 10)
    folder = writers.folder
    assert pause.thread is not threading.current_thread()
    assert not writers.idle()
    # The engine goes on while the flush is held: bars, then an order (durable at once,
    # taking the bars before it along).
    for i in range(10, 13):
        writers.append_bar(bar(i))
    writers.append_order(order("o1"))
    assert [r[0] for r in journaled(folder, "orders")] == ["o1"]
    pause.release.set()
    writers.wait()
    assert writers.idle()
    # The flush wrote what it took (10 bars) and no more; nothing of the order is lost: its
    # journal line, written during the flush, survived the flush's journal truncation.
    assert len(parquet_rows(folder / "market_data.parquet")) == 10
    assert [r[0] for r in journaled(folder, "orders")] == ["o1"]
    # A crash now (the writer is abandoned, not closed) loses nothing that was durable.
    reopened = RunWriters(folder, clock=clock)
    assert reopened.row_count("market_data") == 13
    assert [r["order_id"] for r in reopened.read_table("orders")] == ["o1"]
    reopened.close()


def test_queries_wait_for_the_flush_in_flight(tmp_path: Path) -> None:
    writers, _, pause = paused_flush(tmp_path, 1)
    writers.append_bar(bar(1))
    answer: list[int] = []
    reader = threading.Thread(target=lambda: answer.append(writers.row_count("market_data")))
    reader.start()
    pause.release.set()
    reader.join(timeout=60)
    assert answer == [2]
    writers.close()
    assert len(parquet_rows(writers.folder / "market_data.parquet")) == 2


def test_a_failed_background_flush_is_reported_by_the_next_call(tmp_path: Path) -> None:
    folder = tmp_path / "run_1"
    clock = FakeClock(T0)
    writers = RunWriters(folder, clock=clock, background=True)
    writers.wait()  # the flusher creates a new folder's files
    target = folder / "orders.parquet"
    target.unlink()
    target.mkdir()  # os.replace cannot put a file over a directory
    writers.append_order(order("o1"))
    clock.advance(1.0)
    assert writers.maybe_flush()
    with pytest.raises(PersistenceError, match=r"orders\.parquet"):
        writers.wait()
    # Reported once; the order is still journaled and lands once the path is usable again.
    target.rmdir()
    writers.close()
    assert [r[0] for r in parquet_rows(target)] == ["o1"]


def test_maybe_flush_skips_while_the_previous_flush_runs(tmp_path: Path) -> None:
    writers, clock, pause = paused_flush(tmp_path, 1)
    writers.append_bar(bar(1))
    clock.advance(1.0)
    assert writers.flush_due()
    assert not writers.maybe_flush()  # not joined: the bar path never waits for the disk
    pause.release.set()
    writers.wait()
    assert writers.maybe_flush()  # what was due goes with the next one
    writers.wait()
    assert len(parquet_rows(writers.folder / "market_data.parquet")) == 2
    writers.close()


def _stats(out: Path) -> list[dict[str, Any]]:
    docs = []
    for path in sorted(out.glob("*/run_*/stats.yaml")):
        doc = yaml.safe_load(path.read_text())
        # Identity and wall-clock fields differ between two sessions by design.
        docs.append({k: v for k, v in doc.items() if k != "session_id" and not k.endswith("_path")})
    return docs


def _session(tmp_path: Path, replay: Path, *, background: bool) -> Path:
    out = tmp_path / ("background" if background else "inline")
    from argo_engine.settings import load_settings

    # One session id for both outputs: order ids carry it, and the files must be equal.
    settings = load_settings(
        None,
        session={
            "data_output": str(out),
            "symbols": ["BTCUSDT", "ETHUSDT"],
            "session_id": "flush-compare",
        },
        feed={"kind": "replay", "replay_file": str(replay)},
        broker={"commission": "fixed_rate", "commission_rate": 0.001},
        persistence={"background_flush": background, "flush_interval_s": 1.0},
    )
    clock = FakeClock(utc(2025, 10, 1, 21, 0))

    def tick(run_id: str, bar: Bar) -> None:
        clock.advance(0.25)  # a flush falls due every fourth bar

    run_session(settings, clock=clock, callbacks=EngineCallbacks(on_market_data=tick))
    return out


def test_background_and_inline_flushing_write_the_same_files(tmp_path: Path) -> None:
    bars = wave_bars(["BTCUSDT", "ETHUSDT"], utc(2025, 10, 1, 22, 0), 1440 + 120, period=40)
    replay = write_replay(tmp_path / "bars.parquet", bars)
    inline = _session(tmp_path, replay, background=False)
    background = _session(tmp_path, replay, background=True)
    for table in TABLES:
        assert session_rows(background, table) == session_rows(inline, table), table
        # Same parquet schema whichever way a file was written (DuckDB table, rows, append);
        # the metadata holds each file's own checksums.
        schemas = {
            str(pq.read_schema(path).remove_metadata())
            for out in (inline, background)
            for path in out.glob(f"*/run_*/{TABLES[table].file_name}")
        }
        assert len(schemas) == 1, (table, schemas)
    assert len(session_rows(background, "market_data")) == len(bars)
    assert len(session_rows(background, "trades")) > 10
    assert _stats(background) == _stats(inline)
    assert list(background.glob("*/run_*/.journal/*.jsonl")) == []


def test_finalize_in_background_makes_the_folder_final_while_the_caller_goes_on(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "run_1"
    writers = RunWriters(folder, clock=FakeClock(T0), background=True)
    for i in range(5):
        writers.append_bar(bar(i))
    writers.append_order(order("o1"))
    pause = PausedFlush()
    finals: list[list[str]] = []
    done = writers.finalize_in_background(
        pause, lambda: finals.append(sorted(p.name for p in (folder / ".journal").iterdir()))
    )
    assert pause.entered.wait(timeout=60)
    # Held after the fsync: every row is in the journal, nothing in parquet yet, and the
    # writer takes no more rows.
    assert len(journaled(folder, "market_data")) == 5
    assert parquet_rows(folder / "market_data.parquet") == []
    assert not done.done()
    with pytest.raises(RuntimeError, match="closed"):
        writers.append_bar(bar(5))
    pause.release.set()
    done.result(timeout=60)
    assert finals == [[]]  # after_final runs once the journals are gone
    assert len(parquet_rows(folder / "market_data.parquet")) == 5
    assert [r[0] for r in parquet_rows(folder / "orders.parquet")] == ["o1"]
    writers.close()  # already released: a no-op


def test_a_failed_background_finalize_leaves_the_journal_for_recovery(tmp_path: Path) -> None:
    folder = tmp_path / "run_1"
    writers = RunWriters(folder, clock=FakeClock(T0), background=True)
    writers.wait()  # the flusher creates a new folder's files
    writers.append_bar(bar(0))
    writers.append_order(order("o1"))
    target = folder / "orders.parquet"
    target.unlink()
    target.mkdir()  # os.replace cannot put a file over a directory
    done = writers.finalize_in_background()
    with pytest.raises(PersistenceError, match=r"orders\.parquet"):
        done.result(timeout=60)
    assert [r[0] for r in journaled(folder, "orders")] == ["o1"]
    # Reopening the folder (what a restart does) finishes the job.
    target.rmdir()
    again = RunWriters(folder, clock=FakeClock(T0))
    again.finalize()
    again.close()
    assert [r[0] for r in parquet_rows(target)] == ["o1"]
    assert len(parquet_rows(folder / "market_data.parquet")) == 1


def test_a_date_closed_in_the_background_is_final_when_on_day_closed_fires(
    tmp_path: Path,
) -> None:
    from argo_engine.settings import load_settings

    # Three dates: 22:00 on day 1 to 02:00 on day 3, two symbols.
    bars = wave_bars(["BTCUSDT", "ETHUSDT"], utc(2025, 10, 1, 22, 0), 1440 + 240, period=40)
    replay = write_replay(tmp_path / "bars.parquet", bars)
    out = tmp_path / "out"
    settings = load_settings(
        None,
        session={"data_output": str(out), "symbols": ["BTCUSDT", "ETHUSDT"]},
        feed={"kind": "replay", "replay_file": str(replay)},
        broker={"commission": "fixed_rate", "commission_rate": 0.001},
        persistence={"background_flush": True},
    )
    seen: list[tuple[Any, ...]] = []

    def closed(day: Any, daily: Any) -> None:
        folder = out / day.isoformat() / "run_1"
        stats = yaml.safe_load((folder / "stats.yaml").read_text())
        seen.append(
            (
                day,
                sorted(p.name for p in (folder / ".journal").glob("*.jsonl")),
                len(parquet_rows(folder / "market_data.parquet")),
                len(parquet_rows(folder / "trades.parquet")),
                stats["date"],
                stats["daily"]["trade_result"]["number_of_trades"],
                daily["trade_result"]["number_of_trades"],
            )
        )

    _, summaries = run_session(
        settings,
        clock=FakeClock(utc(2025, 10, 1, 21)),
        callbacks=EngineCallbacks(on_day_closed=closed),
    )
    per_day = {
        d: sum(1 for b in bars if b.time.date().isoformat() == d)
        for d in ("2025-10-01", "2025-10-02")
    }
    assert [s[0].isoformat() for s in seen] == ["2025-10-01", "2025-10-02"]
    for day, journals, n_bars, n_trades, stats_date, stats_trades, daily_trades in seen:
        # Everything of the date is in its parquet files and its final stats.yaml already.
        assert journals == []
        assert n_bars == per_day[day.isoformat()]
        assert stats_date == day.isoformat()
        assert n_trades == stats_trades == daily_trades
    assert sum(s[3] for s in seen) > 0
    assert [s.date for s in summaries] == ["2025-10-01", "2025-10-02", "2025-10-03"]
    assert [s.folder for s in summaries[:2]] == [
        str(out / d / "run_1") for d in ("2025-10-01", "2025-10-02")
    ]
    assert [s.daily["trade_result"]["number_of_trades"] for s in summaries[:2]] == [
        s[6] for s in seen
    ]
    assert summaries[1].cumulative["trade_result"]["number_of_trades"] == sum(s[6] for s in seen)


def test_a_stats_only_flush_syncs_the_journal_and_leaves_the_rows_for_the_next_flush(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "run_1"
    clock = FakeClock(T0)
    writers = RunWriters(folder, clock=clock, flush_interval_s=1.0, background=True)
    for i in range(3):
        writers.append_bar(bar(i))
    writers.append_order(order("o1"), durable=False)
    synced: list[int] = []
    writers.submit(lambda: synced.append(len(journaled(folder, "market_data"))), full=False)
    writers.wait()
    # The journal holds (and fsynced) every row before after_sync ran; nothing else moved.
    assert synced == [3]
    assert not writers.awaiting_fsync
    assert [r[0] for r in journaled(folder, "orders")] == ["o1"]
    assert parquet_rows(folder / "market_data.parquet") == []
    assert writers.materializations == 5  # the five empty files of the new folder
    # The next full flush loads and writes them, and only then empties the journal.
    writers.append_bar(bar(3))
    clock.advance(1.0)
    assert writers.maybe_flush()
    writers.wait()
    assert len(parquet_rows(folder / "market_data.parquet")) == 4
    assert [r[0] for r in parquet_rows(folder / "orders.parquet")] == ["o1"]
    assert journaled(folder, "market_data") == []
    writers.close()


def test_many_buffered_bars_make_a_flush_due_before_its_interval(tmp_path: Path) -> None:
    writers = RunWriters(
        tmp_path / "run_1", clock=FakeClock(T0), flush_interval_s=3600.0, background=True
    )
    writers.wait()  # the flusher creates a new folder's files
    n = writers_module._EARLY_FLUSH_ROWS
    for i in range(n - 1):
        writers.append_bar(bar(i))
    assert not writers.flush_due()
    writers.append_bar(bar(n))
    assert writers.flush_due()  # handed to the flusher before they would spill inline
    assert writers.maybe_flush()
    writers.wait()
    assert not writers.flush_due()
    assert writers.row_count("market_data") == n
    writers.close()


def test_a_new_folder_gets_its_files_from_the_flusher_and_a_reopen_recovers_inline(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "run_1"
    writers = RunWriters(folder, clock=FakeClock(T0), background=True)
    writers.append_bar(bar(0))  # appends need not wait for the files
    writers.wait()
    for table in TABLES.values():
        assert parquet_rows(folder / table.file_name) == []  # complete, readable, empty
    assert not writers.restored
    writers.close()
    again = RunWriters(folder, clock=FakeClock(T0), background=True)
    # Not new (its files and rows exist): opened and recovered before the constructor returns.
    assert again.restored
    assert again.idle()
    assert len(parquet_rows(folder / "market_data.parquet")) == 1
    again.close()


def test_a_short_date_closed_in_the_background_writes_the_same_files_as_a_closed_one(
    tmp_path: Path,
) -> None:
    def fill_up(writers: RunWriters) -> None:
        for i in range(30):
            writers.append_bar(bar(i, "ETHUSDT"))
            writers.append_bar(bar(i))
        writers.append_order(order("o2"), durable=False)
        writers.append_order(order("o1", minute=3), durable=False)
        writers.append_order(order("o3", minute=1), durable=False)
        # o2's later status replaces its first row, in place (o2 sorts before o3 and o1).
        writers.append_order(order("o2", OrderStatus.CANCELLED), durable=False)
        writers.append_fill(fill("t1", minute=3, pnl=-1.5), durable=False)
        writers.append_mark(mark(writers, "buy"))
        writers.append_log(log(writers, "hello", {"k": "v"}))

    closed = RunWriters(tmp_path / "a" / "run_1", clock=FakeClock(T0), background=False)
    fill_up(closed)
    closed.close()
    # Never flushed before its close: every table is written straight from its rows.
    bg = RunWriters(tmp_path / "b" / "run_1", clock=FakeClock(T0), background=True)
    fill_up(bg)
    bg.finalize_in_background().result(timeout=60)
    for table in TABLES.values():
        a = tmp_path / "a" / "run_1" / table.file_name
        b = tmp_path / "b" / "run_1" / table.file_name
        assert parquet_rows(b) == parquet_rows(a), table.name
        assert pq.read_schema(b) == pq.read_schema(a), table.name
    assert len(parquet_rows(tmp_path / "b" / "run_1" / "market_data.parquet")) == 60
    statuses = [(r[0], r[7]) for r in parquet_rows(tmp_path / "b" / "run_1" / "orders.parquet")]
    assert statuses == [("o2", "CANCELLED"), ("o3", "PENDING"), ("o1", "PENDING")]


def test_finalize_queued_behind_a_running_flush_keeps_the_rows_that_flush_wrote(
    tmp_path: Path,
) -> None:
    # The running flush writes the first 10 bars to parquet; the final job queued behind it
    # must append the rest to them, not write a file of the rest alone.
    writers, _, pause = paused_flush(tmp_path, 10)
    folder = writers.folder
    for i in range(10, 15):
        writers.append_bar(bar(i))
    done = writers.finalize_in_background()
    pause.release.set()
    done.result(timeout=60)
    assert [r[0] for r in parquet_rows(folder / "market_data.parquet")] == [
        bar(i).time.replace(tzinfo=None) for i in range(15)
    ]


@pytest.mark.parametrize("background", [True, False])
def test_rows_a_failed_flush_took_reach_parquet_once_the_problem_goes_away(
    tmp_path: Path, background: bool
) -> None:
    # The flush takes the buffered rows, then fails writing stats.yaml (a directory stands
    # in for a full disk). Those rows must not vanish with it: the next flush writes them,
    # and only then may the journal, their only other copy, be emptied.
    folder = tmp_path / "run_1"
    clock = FakeClock(T0)
    writers = RunWriters(folder, clock=clock, flush_interval_s=1.0, background=background)
    writers.wait()
    for i in range(5):
        writers.append_bar(bar(i))
    (folder / "stats.yaml").mkdir()
    clock.advance(1.0)

    def stats() -> None:
        write_stats_yaml(folder / "stats.yaml", {"bars": 5})

    def flush_and_join() -> None:
        writers.submit(stats)  # inline: raises here
        writers.wait()  # background: reported by the next call that joins the flusher

    with pytest.raises(PersistenceError):
        flush_and_join()
    (folder / "stats.yaml").rmdir()
    for i in range(5, 8):
        writers.append_bar(bar(i))
    writers.flush()
    assert len(parquet_rows(folder / "market_data.parquet")) == 8
    writers.close()
    again = RunWriters(folder, clock=clock)
    assert again.row_count("market_data") == 8
    again.close()


def test_rows_a_failed_spill_took_stay_buffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "run_1"
    writers = RunWriters(folder, clock=FakeClock(T0), background=True)
    writers.wait()
    monkeypatch.setattr(writers_module, "_EARLY_FLUSH_ROWS", 3)
    monkeypatch.setattr(writers_module, "_SPILL_ROWS", 3)
    broken = {"on": True}
    load_rows = RunWriters._load_rows

    def failing_load(self: RunWriters, *args: Any) -> None:
        if broken["on"]:
            raise PersistenceError("no memory for the batch")
        load_rows(self, *args)

    monkeypatch.setattr(RunWriters, "_load_rows", failing_load)
    writers.append_bar(bar(0))
    writers.append_bar(bar(1))
    with pytest.raises(PersistenceError):
        writers.append_bar(bar(2))  # the third row spills into DuckDB, which fails
    broken["on"] = False
    writers.append_bar(bar(3))  # spills again: all four
    writers.flush()
    assert len(parquet_rows(folder / "market_data.parquet")) == 4
    writers.close()
