"""RunWriters across crashes: SIGKILLed writers, torn journals, corrupt files, live readers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from argo_engine.clock import FakeClock
from argo_engine.domain import Bar, Order, OrderStatus, OrderType, PositionType, Side
from argo_engine.persistence.journal import (
    Journal,
    encode_rows,
    seal_lines,
    tag_lines,
    unseal_line,
)
from argo_engine.persistence.schema import JOURNAL_DIR, TABLES
from argo_engine.persistence.writers import DURABLE_JOURNAL, RunWriters
from tests.integration.test_writers import journaled

T0 = datetime(2025, 10, 1, tzinfo=UTC)
PROCS = Path(__file__).with_name("writer_procs.py")
EPOCH_US = int(T0.timestamp()) * 1_000_000


def bar(i: int) -> Bar:
    return Bar("BTCUSDT", T0 + timedelta(minutes=i), 1.0, 2.0, 0.5, 1.0, float(i))


def bar_row(i: int) -> tuple[object, ...]:
    """A market_data journal row, as RunWriters writes it."""
    return (EPOCH_US + i * 60_000_000, "BTCUSDT", 1.0, 2.0, 0.5, 1.0, float(i))


def order(oid: str, status: OrderStatus = OrderStatus.PENDING) -> Order:
    return Order(
        order_id=oid,
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=1.0,
        price=1.0,
        timestamp=T0,
        status=status,
        strategy_name="s",
        position_type=PositionType.LONG,
    )


def parquet_rows(path: Path, sql: str = "SELECT * FROM read_parquet(?)") -> list[tuple[Any, ...]]:
    return duckdb.connect().execute(sql, [str(path)]).fetchall()


def journal_path(folder: Path, table: str) -> Path:
    return folder / JOURNAL_DIR / f"{table}.jsonl"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "2025-10-01" / "run_1"


def test_sigkill_after_appends_keeps_every_acknowledged_row_exactly_once(
    folder: Path, clock: FakeClock
) -> None:
    child = subprocess.run(
        [sys.executable, str(PROCS), "crash", str(folder)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    manifest = json.loads(child.stdout.decode().strip().splitlines()[-1])
    acked = manifest["acked"]
    # The crash left all three layers: parquet rows, journaled rows and (lost) buffered rows.
    assert journaled(folder, "orders")
    assert journaled(folder, "market_data")

    writers = RunWriters(folder, clock=clock)
    assert writers.corrupt_files == []
    bars: list[dict[str, Any]] = writers.read_table("market_data")
    minutes = [int((r["time"] - T0).total_seconds() // 60) for r in bars]
    assert len(minutes) == len(set(minutes))
    assert set(acked["bars"]) <= set(minutes) <= set(range(manifest["appended_bars"]))
    for row in bars:
        assert row["volume"] == float(int((row["time"] - T0).total_seconds() // 60))
    orders: list[dict[str, Any]] = writers.read_table("orders")
    assert sorted((r["order_id"], r["status"]) for r in orders) == [
        tuple(pair) for pair in acked["orders"]
    ]
    trades: list[dict[str, Any]] = writers.read_table("trades")
    assert sorted(r["trade_id"] for r in trades) == sorted(acked["fills"])
    marks = writers.read_table("marks")
    logs = writers.read_table("logs")
    assert [r["title"] for r in marks][: len(acked["marks"])] == acked["marks"]
    assert [r["message"] for r in logs][: len(acked["logs"])] == acked["logs"]
    # Same ids as before the crash (1..n in append order), and new ids continue after them.
    assert [r["id"] for r in marks] == list(range(1, len(marks) + 1))
    assert [r["id"] for r in logs] == list(range(1, len(logs) + 1))
    assert writers.next_id("logs") == len(logs) + 1
    # Reopening already made the recovered rows durable in parquet and emptied the journals.
    assert len(parquet_rows(folder / "market_data.parquet")) == len(bars)
    assert len(parquet_rows(folder / "orders.parquet")) == len(acked["orders"])
    assert all(p.stat().st_size == 0 for p in (folder / JOURNAL_DIR).glob("*.jsonl"))
    writers.close()


def test_crash_between_parquet_replace_and_journal_drain_duplicates_nothing(
    folder: Path, clock: FakeClock
) -> None:
    writers = RunWriters(folder, clock=clock, max_write_share=1e-9)
    writers.append_bar(bar(0))
    writers.append_order(order("z"))
    clock.advance(1.0)
    writers.maybe_flush()  # first materialization; afterwards only flush() writes parquet
    for i in range(1, 6):
        writers.append_bar(bar(i))
    writers.append_order(order("a"))
    writers.append_order(order("a", OrderStatus.FILLED))
    writers.append_order(order("b"))
    clock.advance(1.0)
    writers.maybe_flush()  # journals fsynced, parquet not rewritten
    shared = folder / JOURNAL_DIR / DURABLE_JOURNAL
    before = shared.read_bytes()
    assert journaled(folder, "market_data")
    assert journaled(folder, "orders")
    writers.close()  # parquet now holds every row and the journals are empty
    # The on-disk state of a crash right after os.replace, before the journal truncation.
    shared.write_bytes(before)

    reopened = RunWriters(folder, clock=clock)
    assert reopened.row_count("market_data") == 6
    assert reopened.read_table("orders") == [
        {**_order_dict("a", "FILLED")},
        {**_order_dict("b", "PENDING")},
        {**_order_dict("z", "PENDING")},
    ]
    reopened.close()
    md = parquet_rows(folder / "market_data.parquet", "SELECT volume FROM read_parquet(?)")
    assert md == [(float(i),) for i in range(6)]


def _order_row(oid: str, status: str) -> tuple[object, ...]:
    """An orders journal row, as RunWriters writes it."""
    d = _order_dict(oid, status)
    return (*(d[k] for k in list(d)[:6]), EPOCH_US, *(d[k] for k in list(d)[7:]))


def _order_dict(oid: str, status: str) -> dict[str, object]:
    return {
        "order_id": oid,
        "symbol": "BTCUSDT",
        "side": "BUY",
        "order_type": "MARKET",
        "quantity": 1.0,
        "price": 1.0,
        "timestamp": T0,
        "status": status,
        "strategy_name": "s",
        "position_type": "LONG",
        "reason": "strategy",
        "message": "",
    }


def test_torn_last_journal_line_is_ignored(folder: Path, clock: FakeClock) -> None:
    RunWriters(folder, clock=clock).close()
    good = encode_rows([bar_row(0), bar_row(1)])
    torn = encode_rows([bar_row(2)])[:-9]  # cut mid-number, no newline
    journal_path(folder, "market_data").write_bytes(good + torn)

    writers = RunWriters(folder, clock=clock)
    assert writers.torn_journal_tails == 1
    assert writers.corrupt_journal_lines == 0
    assert writers.corrupt_files == []
    assert writers.row_count("market_data") == 2
    # New appends must not glue onto the torn fragment.
    writers.append_bar(bar(3))
    clock.advance(1.0)
    writers.maybe_flush()
    writers.append_bar(bar(4))
    writers.flush()
    writers.append_bar(bar(5))
    clock.advance(1.0)
    writers.maybe_flush()
    again = RunWriters(folder, clock=clock)  # the first writer "crashed": never closed
    assert again.corrupt_journal_lines == 0
    assert again.torn_journal_tails == 0
    assert [r["volume"] for r in again.read_table("market_data")] == [0.0, 1.0, 3.0, 4.0, 5.0]
    again.close()


def test_last_line_missing_only_its_newline_is_kept(folder: Path, clock: FakeClock) -> None:
    RunWriters(folder, clock=clock).close()
    journal_path(folder, "market_data").write_bytes(encode_rows([bar_row(0), bar_row(1)])[:-1])
    writers = RunWriters(folder, clock=clock)
    assert writers.row_count("market_data") == 2
    assert writers.torn_journal_tails == 0
    writers.close()


def test_corrupt_middle_journal_lines_are_skipped_and_kept_aside(
    folder: Path, clock: FakeClock
) -> None:
    RunWriters(folder, clock=clock).close()
    lines = [
        encode_rows([bar_row(0)]),
        b"\x00\x00\x00garbage\n",
        b'[1, "wrong", "width"]\n',
        b'["not an int","BTCUSDT",1.0,2.0,0.5,1.0,9.0]\n',
        encode_rows([bar_row(1)]),
    ]
    path = journal_path(folder, "market_data")
    path.write_bytes(b"".join(lines))
    writers = RunWriters(folder, clock=clock)
    assert writers.corrupt_journal_lines == 3
    assert writers.row_count("market_data") == 2
    assert len(writers.corrupt_files) == 1
    aside = writers.corrupt_files[0]
    assert aside.name.startswith("market_data.jsonl.corrupt-")
    assert aside.read_bytes() == b"".join(lines)
    assert len(parquet_rows(folder / "market_data.parquet")) == 2
    writers.close()


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_parquet_is_moved_aside_and_journal_rows_survive(
    folder: Path, clock: FakeClock, damage: str
) -> None:
    writers = RunWriters(folder, clock=clock)
    for i in range(10):
        writers.append_bar(bar(i))
    writers.close()
    parquet = folder / "market_data.parquet"
    good = parquet.read_bytes()
    bad = b"garbage!" * 64 if damage == "garbage" else good[: len(good) // 2]
    parquet.write_bytes(bad)
    # Rows appended after the last materialization, journaled before the crash.
    journal_path(folder, "market_data").write_bytes(encode_rows([bar_row(10), bar_row(11)]))

    clock.advance(5.0)
    reopened = RunWriters(folder, clock=clock)
    assert len(reopened.corrupt_files) == 1
    aside = reopened.corrupt_files[0]
    assert aside.parent == folder
    assert aside.name.startswith("market_data.parquet.corrupt-")
    assert aside.read_bytes() == bad  # kept as found, never overwritten
    assert [r["volume"] for r in reopened.read_table("market_data")] == [10.0, 11.0]
    assert parquet_rows(parquet, "SELECT volume FROM read_parquet(?)") == [(10.0,), (11.0,)]
    reopened.close()
    # A later reopen finds a sound folder and leaves the moved-aside file alone.
    again = RunWriters(folder, clock=clock)
    assert again.corrupt_files == []
    assert aside.read_bytes() == bad
    again.close()


def test_parquet_with_foreign_schema_is_moved_aside(folder: Path, clock: FakeClock) -> None:
    folder.mkdir(parents=True)
    foreign = folder / "orders.parquet"
    duckdb.connect().execute(
        f"COPY (SELECT 'x' AS order_id, 1 AS is_completed) TO '{foreign}' (FORMAT PARQUET)"
    )
    writers = RunWriters(folder, clock=clock)
    assert [p.name.split(".corrupt-")[0] for p in writers.corrupt_files] == ["orders.parquet"]
    assert parquet_rows(writers.corrupt_files[0]) == [("x", 1)]
    assert [c for c, _ in TABLES["orders"].columns] == [
        r[0] for r in parquet_rows(foreign, "DESCRIBE SELECT * FROM read_parquet(?)")
    ]
    writers.close()


def test_stale_temp_files_of_a_crashed_writer_are_removed(folder: Path, clock: FakeClock) -> None:
    RunWriters(folder, clock=clock).close()
    stale = folder / ".market_data.parquet.999999999.tmp"
    stale.write_bytes(b"half a parquet file")
    unrelated = folder / "notes.tmp"
    unrelated.write_bytes(b"user file")
    RunWriters(folder, clock=clock).close()
    assert not stale.exists()
    assert unrelated.read_bytes() == b"user file"


def test_stale_temp_files_of_a_new_folder_are_removed(folder: Path, clock: FakeClock) -> None:
    # A process killed while it created a new date's files (on its flusher) leaves a temp
    # file and no parquet file: the next open still treats the folder as new.
    folder.mkdir(parents=True)
    stale = folder / ".market_data.parquet.999999999.tmp"
    stale.write_bytes(b"half a parquet file")
    writers = RunWriters(folder, clock=clock, background=True)
    writers.close()
    assert not stale.exists()
    assert sorted(p.name for p in folder.glob("*.parquet")) == sorted(
        t.file_name for t in TABLES.values()
    )


def test_reader_process_never_sees_a_partial_file(tmp_path: Path, clock: FakeClock) -> None:
    folder = tmp_path / "run_1"
    batch, flushes = 40, 120
    writers = RunWriters(folder, clock=clock)
    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, str(PROCS), "reader", str(folder), str(stop), str(batch)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None
        assert json.loads(reader.stdout.readline()) == {"count": 0}  # reader is polling
        for f in range(flushes):
            for i in range(batch):
                writers.append_bar(bar(f * batch + i))
            writers.append_order(order(f"o{f}"))
            if f:
                # A stored order changes status: orders.parquet cannot simply grow by a row
                # group, the whole table supersedes the old one after its bytes.
                writers.append_order(order(f"o{f - 1}", OrderStatus.FILLED))
            writers.flush()
        final = batch * flushes
        assert writers.superseded_versions >= flushes - 1
        # Wait (bounded by the reader's own read limit) until the reader saw the final file.
        seen = [0]
        for line in reader.stdout:
            message = json.loads(line)
            if "count" in message:
                seen.append(message["count"])
                if message["count"] == final:
                    break
            else:
                pytest.fail(f"reader stopped early: {message}")
        stop.touch()
        out, err = reader.communicate(timeout=60)
    finally:
        if reader.poll() is None:
            reader.kill()
        writers.close()
    summary = json.loads(out.strip().splitlines()[-1])
    assert reader.returncode == 0, err
    assert summary["errors"] == []
    assert summary["seen"] == seen
    assert seen == sorted(seen)
    assert seen[-1] == final
    assert all(count % batch == 0 for count in seen)


def test_journal_lines_written_by_the_writer_are_orjson_arrays(
    folder: Path, clock: FakeClock
) -> None:
    writers = RunWriters(folder, clock=clock)
    writers.append_order(order("o1"))
    line = (folder / JOURNAL_DIR / DURABLE_JOURNAL).read_bytes()
    assert line.endswith(b"\n")
    body = unseal_line(line[:-1], sealed=True)  # the array, then its checksum
    assert body is not None
    tag, row = json.loads(body)  # shared journal: the table, then its rows
    assert (tag, row[0]) == ("orders", "o1")
    assert row[6] == EPOCH_US  # timestamps as integer microseconds since the epoch
    writers.close()


def test_journal_reopens_after_remove(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    journal = Journal(path)
    journal.write(encode_rows([bar_row(0)]))
    journal.sync()
    journal.remove()
    assert not path.exists()
    journal.write(encode_rows([bar_row(1)]))
    journal.sync()
    assert path.read_bytes() == seal_lines(encode_rows([bar_row(1)]))
    journal.close()
    assert os.path.getsize(path) > 0


def test_per_table_journals_of_earlier_versions_replay_before_the_shared_one(
    folder: Path, clock: FakeClock
) -> None:
    # An older version journaled orders in .journal/orders.jsonl; this one in the shared
    # journal. Both survive a crash; the shared lines are the later ones.
    RunWriters(folder, clock=clock).close()
    legacy = journal_path(folder, "orders")
    legacy.write_bytes(encode_rows([_order_row("a", "PENDING"), _order_row("b", "PENDING")]))
    shared = Journal(folder / JOURNAL_DIR / DURABLE_JOURNAL)
    shared.write(tag_lines(encode_rows([_order_row("a", "FILLED")]), b'"orders",'))
    shared.close()
    reopened = RunWriters(folder, clock=clock)
    assert [(r["order_id"], r["status"]) for r in reopened.read_table("orders")] == [
        ("a", "FILLED"),
        ("b", "PENDING"),
    ]
    assert not legacy.exists()
    assert (folder / JOURNAL_DIR / DURABLE_JOURNAL).stat().st_size == 0
    reopened.close()
