"""RunWriters against real DuckDB and real parquet files under tmp_path."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from argo_engine.clock import FakeClock
from argo_engine.domain import (
    Bar,
    Fill,
    LogEntry,
    LogLevel,
    Mark,
    MarkShape,
    Order,
    OrderStatus,
    OrderType,
    PositionType,
    Side,
)
from argo_engine.errors import ConfigurationError, DataError, PersistenceError
from argo_engine.persistence import writers as writers_module
from argo_engine.persistence.journal import (
    encode_batch_line,
    read_journal,
    read_tagged_journal,
    unseal_line,
)
from argo_engine.persistence.schema import JOURNAL_DIR, TABLES
from argo_engine.persistence.writers import DURABLE_JOURNAL, RunWriters

T0 = datetime(2025, 10, 1, tzinfo=UTC)


def bar(i: int, symbol: str = "BTCUSDT", close: float | None = None) -> Bar:
    c = 100.0 + i if close is None else close
    return Bar(symbol, T0 + timedelta(minutes=i), c - 0.5, c + 1.0, c - 1.0, c, 10.0 + i)


def order(oid: str, status: OrderStatus = OrderStatus.PENDING, minute: int = 0) -> Order:
    return Order(
        order_id=oid,
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=2.0,
        price=99.5,
        timestamp=T0 + timedelta(minutes=minute),
        status=status,
        strategy_name="rsi",
        position_type=PositionType.LONG,
        reason="strategy",
        message="m",
    )


def fill(tid: str, minute: int = 0, pnl: float = 0.0) -> Fill:
    return Fill(
        trade_id=tid,
        order_id=f"o-{tid}",
        symbol="BTCUSDT",
        side=Side.SELL,
        quantity=2.0,
        price=99.5,
        timestamp=T0 + timedelta(minutes=minute),
        executed_at=T0 + timedelta(minutes=minute, seconds=3),
        executed_qty=2.0,
        executed_price=99.75,
        commission=0.2,
        position_type=PositionType.SHORT,
        pnl=pnl,
        commission_asset="USDT",
    )


def mark(writers: RunWriters, title: str, signal: bool = True) -> Mark:
    return Mark(
        id=writers.next_id("marks"),
        market_data_id="BTCUSDT@1",
        signal_type="buy_long" if signal else None,
        signal_name="buy_long" if signal else None,
        signal_time=T0 if signal else None,
        signal_symbol="BTCUSDT" if signal else None,
        color="green",
        shape=MarkShape.TRIANGLE,
        level=LogLevel.WARNING,
        title=title,
        message="msg",
        category="signal",
    )


def log(writers: RunWriters, message: str, fields: dict[str, str] | None = None) -> LogEntry:
    return LogEntry(
        id=writers.next_id("logs"),
        timestamp=T0 + timedelta(minutes=1),
        symbol="BTCUSDT",
        level=LogLevel.ERROR,
        message=message,
        fields=fields or {},
    )


def journaled(folder: Path, table: str) -> list[list[object]]:
    """Rows of ``table`` in the run folder's journals (its own file, or the shared one)."""
    own = read_journal(folder / JOURNAL_DIR / f"{table}.jsonl", TABLES[table]).rows
    shared, _, _ = read_tagged_journal(
        folder / JOURNAL_DIR / DURABLE_JOURNAL, {table: TABLES[table]}
    )
    return own + shared[table]


def parquet_rows(path: Path) -> list[tuple[Any, ...]]:
    return duckdb.connect().execute("SELECT * FROM read_parquet(?)", [str(path)]).fetchall()


def described(path: Path) -> list[tuple[str, str]]:
    rows = duckdb.connect().execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)])
    return [(r[0], r[1]) for r in rows.fetchall()]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "2025-10-01" / "run_1"


def test_open_creates_five_empty_files_with_exact_schema(folder: Path, clock: FakeClock) -> None:
    writers = RunWriters(folder, clock=clock)
    for schema in TABLES.values():
        path = folder / schema.file_name
        assert described(path) == list(schema.columns)
        assert parquet_rows(path) == []
    assert (folder / JOURNAL_DIR).is_dir()
    assert writers.materializations == len(TABLES)
    writers.close()


def test_round_trip_every_table_matches_schema_and_values(folder: Path, clock: FakeClock) -> None:
    writers = RunWriters(folder, clock=clock)
    writers.append_bar(bar(0))
    writers.append_order(order("o1", OrderStatus.REJECTED))
    writers.append_fill(fill("t1", pnl=-1.25))
    writers.append_mark(mark(writers, "with signal"))
    writers.append_mark(mark(writers, "no signal", signal=False))
    writers.append_log(log(writers, "with fields", {"rsi": "28.5", "note": 'quote " and ],['}))
    writers.append_log(log(writers, "no fields"))
    writers.flush()
    naive = T0.replace(tzinfo=None)
    expected = {
        "market_data": [(naive, "BTCUSDT", 99.5, 101.0, 99.0, 100.0, 10.0)],
        "orders": [
            (
                "o1",
                "BTCUSDT",
                "BUY",
                "LIMIT",
                2.0,
                99.5,
                naive,
                "REJECTED",
                "rsi",
                "LONG",
                "strategy",
                "m",
            )
        ],
        "trades": [
            (
                "o-t1",
                "BTCUSDT",
                "SELL",
                2.0,
                99.5,
                naive,
                naive + timedelta(seconds=3),
                2.0,
                99.75,
                0.2,
                -1.25,
                "SHORT",
                "t1",
                "USDT",
                0.0,
            )
        ],
        "marks": [
            (
                1,
                "BTCUSDT@1",
                "buy_long",
                "buy_long",
                naive,
                "BTCUSDT",
                "green",
                "triangle",
                "warning",
                "with signal",
                "msg",
                "signal",
            ),
            (
                2,
                "BTCUSDT@1",
                None,
                None,
                None,
                None,
                "green",
                "triangle",
                "warning",
                "no signal",
                "msg",
                "signal",
            ),
        ],
        "logs": [
            (
                1,
                naive + timedelta(minutes=1),
                "BTCUSDT",
                "error",
                "with fields",
                '{"rsi":"28.5","note":"quote \\" and ],["}',
            ),
            (2, naive + timedelta(minutes=1), "BTCUSDT", "error", "no fields", ""),
        ],
    }
    for name, rows in expected.items():
        path = folder / TABLES[name].file_name
        assert described(path) == list(TABLES[name].columns), name
        assert parquet_rows(path) == rows, name
        # pyarrow readers see the same column names in the same order.
        assert pq.read_table(path).column_names == list(TABLES[name].column_names)
    assert writers.read_table("orders")[0]["timestamp"] == T0
    writers.close()


def test_files_are_sorted_by_order_by(folder: Path, clock: FakeClock) -> None:
    writers = RunWriters(folder, clock=clock)
    for i in (5, 3, 9, 1):
        writers.append_bar(bar(i, "ETHUSDT"))
        writers.append_bar(bar(i, "BTCUSDT"))
        writers.append_order(order(f"o{i}", minute=i))
        writers.append_fill(fill(f"t{i}", minute=i))
    writers.flush()
    md = parquet_rows(folder / "market_data.parquet")
    assert [(r[0].minute, r[1]) for r in md] == [
        (m, s) for m in (1, 3, 5, 9) for s in ("BTCUSDT", "ETHUSDT")
    ]
    assert [r[0] for r in parquet_rows(folder / "orders.parquet")] == ["o1", "o3", "o5", "o9"]
    assert [r[12] for r in parquet_rows(folder / "trades.parquet")] == ["t1", "t3", "t5", "t9"]
    writers.close()


def test_order_upsert_keeps_one_row_with_latest_status(folder: Path, clock: FakeClock) -> None:
    writers = RunWriters(folder, clock=clock)
    writers.append_order(order("a"))
    writers.append_order(order("b"))
    writers.append_order(order("a", OrderStatus.FILLED))
    writers.flush()
    writers.append_order(order("b", OrderStatus.CANCELLED))
    assert writers.query("SELECT order_id, status FROM orders ORDER BY order_id") == [
        ("a", "FILLED"),
        ("b", "CANCELLED"),
    ]
    writers.close()
    reopened = RunWriters(folder, clock=clock)
    reopened.append_order(order("a", OrderStatus.FAILED))
    reopened.close()
    rows = parquet_rows(folder / "orders.parquet")
    assert sorted((r[0], r[7]) for r in rows) == [("a", "FAILED"), ("b", "CANCELLED")]


def test_same_bar_key_replaces_and_same_trade_id_is_stored_once(
    folder: Path, clock: FakeClock
) -> None:
    writers = RunWriters(folder, clock=clock)
    writers.append_bar(bar(0, close=1.0))
    writers.append_bar(bar(1, close=2.0))
    writers.flush()
    writers.append_bar(bar(0, close=3.0))  # restated bar after a flush
    writers.append_bar(bar(2, close=4.0))
    writers.append_bar(bar(2, close=5.0))  # restated within one batch
    writers.append_fill(fill("t1", pnl=1.0))
    writers.append_fill(fill("t1", pnl=2.0))
    writers.flush()
    closes = [(r[0].minute, r[5]) for r in parquet_rows(folder / "market_data.parquet")]
    assert closes == [(0, 3.0), (1, 2.0), (2, 5.0)]
    assert [(r[12], r[10]) for r in parquet_rows(folder / "trades.parquet")] == [("t1", 2.0)]
    writers.close()
    reopened = RunWriters(folder, clock=clock)  # keys stored by an earlier writer count too
    reopened.append_bar(bar(1, close=7.0))
    reopened.append_fill(fill("t1", pnl=3.0))
    reopened.close()
    closes = [(r[0].minute, r[5]) for r in parquet_rows(folder / "market_data.parquet")]
    assert closes == [(0, 3.0), (1, 7.0), (2, 5.0)]
    assert [(r[12], r[10]) for r in parquet_rows(folder / "trades.parquet")] == [("t1", 3.0)]


def test_mark_and_log_ids_continue_after_reopen(folder: Path, clock: FakeClock) -> None:
    writers = RunWriters(folder, clock=clock)
    for n in range(3):
        writers.append_mark(mark(writers, f"m{n}"))
        writers.append_log(log(writers, f"l{n}"))
    assert writers.next_id("logs") == 4  # reserved, never used: a gap is fine, reuse is not
    writers.close()
    reopened = RunWriters(folder, clock=clock)
    assert reopened.next_id("marks") == 4
    reopened.append_log(log(reopened, "after"))
    reopened.finalize()
    assert [r["id"] for r in reopened.read_table("logs")] == [1, 2, 3, 4]
    reopened.close()
    again = RunWriters(folder, clock=clock)
    assert again.next_id("logs") == 5
    again.close()


def test_next_id_and_table_names_are_checked(folder: Path, clock: FakeClock) -> None:
    writers = RunWriters(folder, clock=clock)
    with pytest.raises(ConfigurationError):
        writers.next_id("orders")
    with pytest.raises(ConfigurationError):
        writers.row_count("nope")
    with pytest.raises(ConfigurationError):
        writers.read_table("nope")
    writers.close()


def test_query_sees_unflushed_rows(folder: Path, clock: FakeClock) -> None:
    writers = RunWriters(folder, clock=clock)
    for i in range(5):
        writers.append_bar(bar(i))
    writers.append_order(order("o1"))
    materialized = writers.materializations
    assert writers.query("SELECT count(*), max(close) FROM market_data") == [(5, 104.0)]
    assert writers.query("WITH o AS (SELECT * FROM orders) SELECT order_id FROM o") == [("o1",)]
    assert writers.query("SELECT count(*) FROM market_data WHERE close > ?", [102.0]) == [(2,)]
    assert writers.row_count("market_data") == 5
    assert [r["close"] for r in writers.read_table("market_data")] == [100.0 + i for i in range(5)]
    # Reading never writes parquet: the file is still the empty one from open.
    assert writers.materializations == materialized
    assert parquet_rows(folder / "market_data.parquet") == []
    writers.close()


def test_a_pooled_database_serves_the_next_writer_empty(tmp_path: Path, clock: FakeClock) -> None:
    first = RunWriters(tmp_path / "2025-10-01" / "run_1", clock=clock)
    for i in range(3):
        first.append_bar(bar(i))
    first.append_order(order("o1"))
    first.append_fill(fill("t1"))
    first.append_mark(mark(first, "m"))
    first.append_log(log(first, "x"))
    loaded = {name: first.row_count(name) for name in TABLES}  # loads every table
    assert loaded == {"market_data": 3, "orders": 1, "trades": 1, "marks": 1, "logs": 1}
    database = first._con
    first.finalize()
    first.close()

    second = RunWriters(tmp_path / "2025-10-02" / "run_1", clock=clock)
    assert second._con is database  # the released database was reused, tables and all
    assert {name: second.row_count(name) for name in TABLES} == dict.fromkeys(TABLES, 0)
    second.append_bar(bar(1, close=7.0))  # a key the first writer held
    second.finalize()
    assert [r[5] for r in parquet_rows(second.folder / "market_data.parquet")] == [7.0]
    second.close()


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM orders",
        "DROP TABLE market_data",
        "INSERT INTO logs (id) VALUES (99)",
        "UPDATE orders SET status = 'FILLED'",
        "SELECT 1; DELETE FROM market_data",
        "COPY market_data TO 'x.parquet'",
        "CREATE TABLE x AS SELECT 1",
        "PRAGMA version",
        "SELEC nonsense",
    ],
)
def test_query_rejects_anything_but_one_select(folder: Path, clock: FakeClock, sql: str) -> None:
    writers = RunWriters(folder, clock=clock)
    writers.append_bar(bar(0))
    writers.append_order(order("o1"))
    with pytest.raises(ConfigurationError):
        writers.query(sql)
    assert writers.row_count("market_data") == 1
    assert writers.row_count("orders") == 1
    assert writers.query("SELECT count(*) FROM logs") == [(0,)]
    writers.close()


def test_query_runtime_error_is_configuration_error(folder: Path, clock: FakeClock) -> None:
    writers = RunWriters(folder, clock=clock)
    with pytest.raises(ConfigurationError):
        writers.query("SELECT no_such_column FROM orders")
    writers.close()


def test_appends_without_due_flush_materialize_nothing(folder: Path, clock: FakeClock) -> None:
    writers = RunWriters(folder, clock=clock, flush_interval_s=1.0)
    opened = writers.materializations
    inode = (folder / "market_data.parquet").stat().st_ino
    for i in range(2_000):
        writers.append_bar(bar(i))
        if i % 100 == 0:
            writers.append_log(log(writers, f"l{i}"))
            writers.append_order(order(f"o{i}"))
        assert not writers.maybe_flush()
    clock.advance(0.999)
    assert not writers.maybe_flush()
    assert writers.materializations == opened
    assert (folder / "market_data.parquet").stat().st_ino == inode
    clock.advance(0.001)
    assert writers.maybe_flush()
    # One materialization per changed table (market_data, logs, orders), not per row.
    assert writers.materializations == opened + 3
    assert len(parquet_rows(folder / "market_data.parquet")) == 2_000
    writers.close()


def test_bulk_appends_spill_to_duckdb_without_materializing(folder: Path, clock: FakeClock) -> None:
    writers = RunWriters(folder, clock=clock)
    opened = writers.materializations
    n = writers_module._SPILL_ROWS + 10
    for i in range(n):
        writers.append_bar(bar(i))
    assert writers.materializations == opened
    # The spilled batch already reached the journal's OS buffer; the rest waits for a flush.
    assert len(journaled(folder, "market_data")) == writers_module._SPILL_ROWS
    assert writers.row_count("market_data") == n
    writers.close()
    assert len(parquet_rows(folder / "market_data.parquet")) == n


def test_slow_materializations_are_spaced_but_rows_stay_journaled(
    folder: Path, clock: FakeClock
) -> None:
    # A write share of 1e-9 makes any real write "too slow": the next non-forced
    # materialization of that table waits for years, while the journal keeps every row durable.
    writers = RunWriters(folder, clock=clock, flush_interval_s=1.0, max_write_share=1e-9)
    writers.append_bar(bar(0))
    clock.advance(1.0)
    assert writers.maybe_flush()
    after_first = writers.materializations
    journal = folder / JOURNAL_DIR / DURABLE_JOURNAL
    for step in range(1, 6):
        writers.append_bar(bar(step))
        clock.advance(1.0)
        assert writers.maybe_flush()
        assert len(journaled(folder, "market_data")) == step
    assert writers.materializations == after_first
    assert len(parquet_rows(folder / "market_data.parquet")) == 1
    writers.flush()  # forced: always materializes
    assert writers.materializations == after_first + 1
    assert len(parquet_rows(folder / "market_data.parquet")) == 6
    assert journal.stat().st_size == 0
    writers.close()


def test_fast_materializations_follow_the_flush_interval(folder: Path, clock: FakeClock) -> None:
    writers = RunWriters(folder, clock=clock, flush_interval_s=1.0, max_write_share=1.0)
    opened = writers.materializations
    for step in range(5):
        writers.append_bar(bar(step))
        clock.advance(1.0)
        assert writers.maybe_flush()
    assert writers.materializations == opened + 5
    writers.close()


def test_a_version_interval_spaces_versions_while_the_journal_keeps_every_row(
    folder: Path, clock: FakeClock
) -> None:
    # Rows trickle in every second; the file gets a version every 5 s, the journal every row
    # within its second.
    writers = RunWriters(
        folder, clock=clock, flush_interval_s=1.0, max_write_share=1.0, version_interval_s=5.0
    )
    opened = writers.materializations
    in_file = []
    for step in range(12):
        writers.append_bar(bar(step))
        clock.advance(1.0)
        assert writers.maybe_flush()
        in_file.append(len(parquet_rows(folder / "market_data.parquet")))
        assert (
            len(parquet_rows(folder / "market_data.parquet"))
            + len(journaled(folder, "market_data"))
            == step + 1
        )
    # Versions at 5 s and 10 s (the first one waits an interval from the open, as always).
    assert in_file == [0, 0, 0, 0, 5, 5, 5, 5, 5, 10, 10, 10]
    assert writers.materializations - opened == 2  # market data's; the other tables are empty
    writers.close()
    with pytest.raises(ConfigurationError, match="version_interval_s"):
        RunWriters(folder, clock=clock, version_interval_s=-1.0)


def test_a_large_file_gets_versions_spaced_by_its_size(
    folder: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file of k times _VISIBLE_BYTES waits k**2 flush intervals for its next version; the
    # journal holds the rows meanwhile.
    writers = RunWriters(folder, clock=clock, flush_interval_s=1.0, max_write_share=1.0)
    for i in range(99):
        writers.append_bar(bar(i))
    writers.flush()
    size = (folder / "market_data.parquet").stat().st_size
    monkeypatch.setattr(writers_module, "_VISIBLE_BYTES", size // 2)  # 4-7 intervals
    writers.append_bar(bar(99))
    writers.flush()
    published = writers.materializations
    waited = 0
    for i in range(100, 120):
        writers.append_bar(bar(i))
        clock.advance(1.0)
        assert writers.maybe_flush()
        if writers.materializations > published:
            break
        waited += 1
        # Not in the file yet, but durable in the journal.
        assert len(parquet_rows(folder / "market_data.parquet")) == 100
        assert len(journaled(folder, "market_data")) == i - 99
    assert 3 <= waited <= 8  # the 1-row version adds a row group and its footer
    assert len(parquet_rows(folder / "market_data.parquet")) == 100 + waited + 1
    writers.close()


def test_a_file_grown_by_a_fraction_gets_a_version_before_its_time(
    folder: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writers_module, "_VISIBLE_BYTES", 1)  # the time alone: years
    monkeypatch.setattr(writers_module, "_GROWTH_MIN_ROWS", 1)
    writers = RunWriters(folder, clock=clock, flush_interval_s=1.0, max_write_share=1.0)
    for i in range(100):
        writers.append_bar(bar(i))
    writers.flush()
    published = writers.materializations
    for i in range(100, 149):
        writers.append_bar(bar(i))
        clock.advance(1.0)
        assert writers.maybe_flush()
    assert writers.materializations == published  # 49 < 50% of 100
    writers.append_bar(bar(149))
    clock.advance(1.0)
    assert writers.maybe_flush()
    assert writers.materializations == published + 1
    assert len(parquet_rows(folder / "market_data.parquet")) == 150
    assert (folder / JOURNAL_DIR / DURABLE_JOURNAL).stat().st_size == 0
    writers.close()


def test_rows_a_version_has_not_published_yet_survive_a_crash(
    folder: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writers_module, "_VISIBLE_BYTES", 1)
    writers = RunWriters(folder, clock=clock, flush_interval_s=1.0)
    for i in range(50):
        writers.append_bar(bar(i))
    writers.flush()
    for i in range(50, 60):
        writers.append_bar(bar(i))
        clock.advance(1.0)
        writers.maybe_flush()
    assert len(parquet_rows(folder / "market_data.parquet")) == 50
    # The process dies here (nothing closed); a reopen publishes what the journal holds.
    reopened = RunWriters(folder, clock=clock)
    assert len(parquet_rows(folder / "market_data.parquet")) == 60
    assert reopened.row_count("market_data") == 60
    reopened.close()


def test_orders_and_fills_are_journaled_before_append_returns(
    folder: Path, clock: FakeClock
) -> None:
    writers = RunWriters(folder, clock=clock)
    writers.append_order(order("o1"))
    writers.append_fill(fill("t1"))
    writers.append_order(order("o1", OrderStatus.FILLED))
    orders = journaled(folder, "orders")
    assert [(r[0], r[7]) for r in orders] == [("o1", "PENDING"), ("o1", "FILLED")]
    assert [r[12] for r in journaled(folder, "trades")] == ["t1"]
    writers.close()


def test_an_unsynced_intent_rides_on_the_fsync_of_its_outcome(
    folder: Path, clock: FakeClock
) -> None:
    writers = RunWriters(folder, clock=clock)
    writers.append_bar(bar(0))
    writers.append_order(order("o1"), sync=False)
    # Written (it survives the process), with the bar before it, but not fsynced yet.
    assert [r[0] for r in journaled(folder, "orders")] == ["o1"]
    assert len(journaled(folder, "market_data")) == 1
    assert writers.awaiting_fsync
    writers.append_fill(fill("t1"))  # one fsync covers the intent and the fill
    assert not writers.awaiting_fsync
    assert [r[12] for r in journaled(folder, "trades")] == ["t1"]
    writers.append_order(order("o2"), sync=False)
    assert writers.awaiting_fsync
    writers.sync_durable()
    assert not writers.awaiting_fsync
    writers.close()


def test_buffered_orders_and_fills_reach_the_journal_in_append_order(
    folder: Path, clock: FakeClock
) -> None:
    writers = RunWriters(folder, clock=clock, flush_interval_s=3600)
    journal = folder / JOURNAL_DIR / DURABLE_JOURNAL
    writers.append_bar(bar(0))
    writers.append_bar(bar(1))
    writers.append_order(order("o1"), durable=False)
    writers.append_bar(bar(2))
    writers.append_fill(fill("t1"), durable=False)
    writers.append_order(order("o1", OrderStatus.FILLED), durable=False)
    writers.append_bar(bar(3))
    # Buffered like bars: nothing is written before the next sync or flush.
    assert not journal.exists() or journal.stat().st_size == 0
    writers.sync()
    lines = [
        orjson.loads(unseal_line(line, sealed=True) or b"")
        for line in journal.read_bytes().splitlines()
    ]
    # Any prefix of the file is a moment the writer went through: a fill never precedes
    # the bar it came after, nor an order its intent. (Each line is a batch of one table.)
    assert [(line[0], len(line) - 1) for line in lines] == [
        ("market_data", 2),
        ("orders", 1),
        ("market_data", 1),
        ("trades", 1),
        ("orders", 1),
        ("market_data", 1),
    ]
    assert not writers.awaiting_fsync
    writers.close()
    assert [r["order_id"] for r in pq.read_table(folder / "trades.parquet").to_pylist()] == ["o-t1"]
    stored = pq.read_table(folder / "orders.parquet").to_pylist()
    assert [(r["order_id"], r["status"]) for r in stored] == [("o1", "FILLED")]


def test_finalize_drains_journal_and_writer_stays_usable(folder: Path, clock: FakeClock) -> None:
    writers = RunWriters(folder, clock=clock)
    writers.append_bar(bar(0))
    writers.append_order(order("o1"))
    writers.append_log(log(writers, "x"))
    writers.finalize()
    assert list((folder / JOURNAL_DIR).glob("*.jsonl")) == []
    assert len(parquet_rows(folder / "orders.parquet")) == 1
    writers.append_bar(bar(1))
    writers.append_order(order("o2"))
    assert [r[0] for r in journaled(folder, "orders")] == ["o2"]
    writers.close()
    writers.close()  # idempotent
    with pytest.raises(RuntimeError):
        writers.append_order(order("o3"))
    with pytest.raises(RuntimeError):
        writers.append_bar(bar(9))
    with pytest.raises(RuntimeError):
        writers.query("SELECT 1")
    reopened = RunWriters(folder, clock=clock)
    assert reopened.row_count("market_data") == 2
    assert reopened.row_count("orders") == 2
    assert reopened.materializations == 0  # nothing to repair, nothing rewritten
    reopened.close()


def test_naive_timestamps_are_data_errors(folder: Path, clock: FakeClock) -> None:
    writers = RunWriters(folder, clock=clock)
    with pytest.raises(DataError):
        writers.append_bar(Bar("BTCUSDT", datetime(2025, 1, 1), 1.0, 1.0, 1.0, 1.0, 1.0))
    with pytest.raises(DataError):
        writers.append_order(dataclasses.replace(order("o1"), timestamp=datetime(2025, 1, 1)))
    assert writers.row_count("market_data") == 0
    assert writers.row_count("orders") == 0
    writers.close()


@pytest.mark.parametrize(("interval", "share"), [(-1.0, 0.1), (1.0, 0.0), (1.0, 1.5)])
def test_invalid_cadence_is_configuration_error(
    folder: Path, clock: FakeClock, interval: float, share: float
) -> None:
    with pytest.raises(ConfigurationError):
        RunWriters(folder, clock=clock, flush_interval_s=interval, max_write_share=share)


def test_folder_blocked_by_a_file_is_persistence_error(tmp_path: Path, clock: FakeClock) -> None:
    blocker = tmp_path / "2025-10-01"
    blocker.write_text("not a directory")
    with pytest.raises(PersistenceError, match="cannot write"):
        RunWriters(blocker / "run_1", clock=clock)


def test_unwritable_parquet_target_is_persistence_error_without_litter(
    folder: Path, clock: FakeClock
) -> None:
    writers = RunWriters(folder, clock=clock)
    target = folder / "orders.parquet"
    target.unlink()
    target.mkdir()  # os.replace cannot put a file over a directory
    writers.append_order(order("o1"))
    with pytest.raises(PersistenceError, match=r"orders\.parquet"):
        writers.flush()
    assert list(folder.glob(".orders.parquet.*")) == []
    # Nothing was lost: once the path is usable again the next flush writes the order.
    target.rmdir()
    writers.close()
    assert [r[0] for r in parquet_rows(target)] == ["o1"]


def row_groups(path: Path) -> int:
    return int(pq.read_metadata(path).num_row_groups)


def data_of(version: bytes) -> bytes:
    """A parquet file's bytes without its footer (what the next version must start with)."""
    footer_len = int.from_bytes(version[-8:-4], "little")
    return version[: len(version) - 8 - footer_len]


def test_new_rows_are_appended_keeping_each_version_as_a_prefix(
    folder: Path, clock: FakeClock
) -> None:
    writers = RunWriters(folder, clock=clock)
    path = folder / "market_data.parquet"
    versions: list[bytes] = []
    for f in range(4):
        for i in range(5):
            writers.append_bar(bar(f * 5 + i))
        writers.flush()
        versions.append(path.read_bytes())
    for old, new in itertools.pairwise(versions):
        assert new.startswith(data_of(old))
    assert row_groups(path) == 4
    assert writers.appended_versions == 3
    naive = T0.replace(tzinfo=None)
    assert [r[0] for r in parquet_rows(path)] == [naive + timedelta(minutes=i) for i in range(20)]
    writers.close()


def test_status_change_of_a_stored_order_supersedes_keeping_the_prefix(
    folder: Path, clock: FakeClock
) -> None:
    writers = RunWriters(folder, clock=clock)
    path = folder / "orders.parquet"
    writers.append_order(order("o1"))
    writers.flush()
    # Placed and filled between two writes: still an append of one row.
    writers.append_order(order("o2", minute=1))
    writers.append_order(order("o2", OrderStatus.FILLED, minute=1))
    writers.flush()
    assert row_groups(path) == 2
    before = path.read_bytes()
    writers.append_order(order("o1", OrderStatus.CANCELLED))
    writers.flush()
    # The whole table follows the old bytes; the footer lists only the new row group, so a
    # reader holding the old footer still finds the old row groups where they were.
    assert path.read_bytes().startswith(data_of(before))
    assert row_groups(path) == 1
    assert (writers.appended_versions, writers.superseded_versions) == (1, 1)
    rows = (
        duckdb.connect()
        .execute("SELECT order_id, status FROM read_parquet(?)", [str(path)])
        .fetchall()
    )
    assert rows == [("o1", "CANCELLED"), ("o2", "FILLED")]
    writers.close()


def test_late_rows_supersede_the_file_so_it_stays_sorted(folder: Path, clock: FakeClock) -> None:
    writers = RunWriters(folder, clock=clock)
    path = folder / "market_data.parquet"
    writers.append_bar(bar(5))
    writers.flush()
    writers.append_bar(bar(7, symbol="ETHUSDT"))
    writers.flush()
    assert row_groups(path) == 2
    before = path.read_bytes()
    writers.append_bar(bar(6))  # older than the file's last row
    writers.flush()
    assert path.read_bytes().startswith(data_of(before))
    assert row_groups(path) == 1
    got = [(r[1], r[0].replace(tzinfo=UTC)) for r in parquet_rows(path)]
    assert got == [
        ("BTCUSDT", T0 + timedelta(minutes=5)),
        ("BTCUSDT", T0 + timedelta(minutes=6)),
        ("ETHUSDT", T0 + timedelta(minutes=7)),
    ]
    writers.close()


def test_sort_check_uses_the_greatest_stored_key(folder: Path, clock: FakeClock) -> None:
    writers = RunWriters(folder, clock=clock)
    path = folder / "market_data.parquet"
    writers.append_bar(bar(0))
    writers.append_bar(bar(5))
    writers.append_bar(bar(5, symbol="ETHUSDT"))
    writers.flush()
    writers.append_bar(bar(3, symbol="XRPUSDT"))  # sorts before the stored (5, ...) rows
    writers.flush()
    times = [r[0] for r in parquet_rows(path)]
    assert times == sorted(times)
    assert len(times) == 4
    writers.close()


def test_nulls_arriving_later_do_not_stop_appends(folder: Path, clock: FakeClock) -> None:
    writers = RunWriters(folder, clock=clock)
    path = folder / "marks.parquet"
    writers.append_mark(mark(writers, "with signal"))  # every column set
    writers.flush()
    writers.append_mark(mark(writers, "no signal", signal=False))  # NULL signal columns
    writers.flush()
    assert row_groups(path) == 2
    rows = (
        duckdb.connect()
        .execute("SELECT title, signal_time IS NULL FROM read_parquet(?)", [str(path)])
        .fetchall()
    )
    assert rows == [("with signal", False), ("no signal", True)]
    writers.close()


def test_fragmented_file_is_compacted(
    folder: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writers_module, "_MAX_ROW_GROUPS", 3)
    writers = RunWriters(folder, clock=clock)
    path = folder / "logs.parquet"
    counts = []
    for _ in range(5):
        writers.append_log(log(writers, "x"))
        writers.flush()
        counts.append(row_groups(path))
    assert counts == [1, 2, 3, 1, 2]
    assert writers.superseded_versions == 1  # defragmented, old version still a prefix
    assert [r[0] for r in parquet_rows(path)] == [1, 2, 3, 4, 5]
    writers.close()


def test_unreferenced_bytes_are_bounded_by_a_compaction(
    folder: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No floor: compact as soon as the old bytes outgrow the new table.
    monkeypatch.setattr(writers_module, "_DEAD_BYTES_MIN", 0)
    writers = RunWriters(folder, clock=clock)
    path = folder / "orders.parquet"
    writers.append_order(order("o1"))
    writers.flush()
    written = writers.materializations
    kinds = []
    for k in range(1, 5):
        # A longer message each time: every new table is a little bigger than the last.
        writers.append_order(
            dataclasses.replace(order("o1", OrderStatus.CANCELLED), message="m" * k)
        )
        before = (writers.superseded_versions, path.read_bytes())
        writers.flush()
        superseded = writers.superseded_versions > before[0]
        assert path.read_bytes().startswith(data_of(before[1])) == superseded
        kinds.append("supersede" if superseded else "rewrite")
    # Superseding once leaves old bytes as big as the table: the next write compacts.
    assert kinds == ["supersede", "rewrite", "supersede", "rewrite"]
    assert writers.materializations - written == 4
    assert [(r[0], r[11]) for r in parquet_rows(path)] == [("o1", "mmmm")]
    writers.close()


def test_reopened_folder_appends_to_files_of_an_earlier_process(
    folder: Path, clock: FakeClock
) -> None:
    first = RunWriters(folder, clock=clock)
    first.append_fill(fill("t1", minute=1))
    first.close()
    second = RunWriters(folder, clock=clock)
    second.append_fill(fill("t2", minute=2))
    second.flush()
    path = folder / "trades.parquet"
    assert row_groups(path) == 2
    assert [r[0] for r in parquet_rows(path)] == ["o-t1", "o-t2"]
    second.close()


def test_a_folder_written_before_base_commission_existed_reopens_with_it_zero(
    folder: Path, clock: FakeClock
) -> None:
    # An earlier version wrote trades.parquet and journal rows without the last column.
    first = RunWriters(folder, clock=clock)
    first.append_fill(fill("t1", minute=1))
    first.close()
    path = folder / "trades.parquet"
    con = duckdb.connect()
    old = folder / "old.parquet"
    con.execute(f"COPY (SELECT * EXCLUDE (base_commission) FROM read_parquet('{path}')) TO '{old}'")
    old.replace(path)
    assert len(described(path)) == TABLES["trades"].min_width
    us = int((T0 + timedelta(minutes=2)).timestamp() * 1_000_000)
    old_row = ["o-t2", "BTCUSDT", "SELL", 2.0, 99.5, us, us, 2.0, 99.75, 0.2, 0.0, "SHORT", "t2",
               "USDT"]  # fmt: skip
    (folder / JOURNAL_DIR / DURABLE_JOURNAL).write_bytes(encode_batch_line([old_row], b'"trades",'))

    second = RunWriters(folder, clock=clock)
    assert second.corrupt_files == []
    assert second.corrupt_journal_lines == 0
    assert [(r["trade_id"], r["base_commission"]) for r in second.read_table("trades")] == [
        ("t1", 0.0),
        ("t2", 0.0),
    ]
    # The file was written again at once in the current columns; later rows go into it.
    assert described(path) == list(TABLES["trades"].columns)
    second.append_fill(dataclasses.replace(fill("t3", minute=3), base_commission=0.002))
    second.flush()
    assert [r[-2:] for r in parquet_rows(path)] == [("USDT", 0.0), ("USDT", 0.0), ("USDT", 0.002)]
    second.close()


# -- model-based check: any mix of appends, flushes and reopens keeps the latest row per key --

_op = st.one_of(
    st.tuples(st.just("bar"), st.integers(0, 6), st.sampled_from(["A", "B"]), st.floats(1, 9)),
    st.tuples(
        st.just("order"), st.integers(0, 4), st.sampled_from(list(OrderStatus)), st.just(0.0)
    ),
    st.tuples(st.just("fill"), st.integers(0, 4), st.just(""), st.floats(-5, 5)),
    st.tuples(st.just("log"), st.just(0), st.just(""), st.just(0.0)),
    st.tuples(st.just("tick"), st.just(0), st.just(""), st.just(0.0)),
    st.tuples(st.just("reopen"), st.just(0), st.just(""), st.just(0.0)),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=st.lists(_op, max_size=25))
def test_any_operation_sequence_matches_a_dict_model(tmp_path: Path, ops: list) -> None:  # type: ignore[type-arg]
    folder = tmp_path / f"model-{len(list(tmp_path.iterdir()))}"
    clock = FakeClock(T0)
    writers = RunWriters(folder, clock=clock, flush_interval_s=1.0)
    bars: dict[tuple[str, int], float] = {}
    orders: dict[str, str] = {}
    fills: dict[str, float] = {}
    logs: list[int] = []
    for kind, n, text, value in ops:
        if kind == "bar":
            writers.append_bar(bar(n, str(text), close=value))
            bars[(str(text), n)] = value
        elif kind == "order":
            writers.append_order(order(f"o{n}", OrderStatus(text)))
            orders[f"o{n}"] = str(text)
        elif kind == "fill":
            writers.append_fill(fill(f"t{n}", pnl=value))
            fills[f"t{n}"] = value
        elif kind == "log":
            entry = log(writers, "x")
            writers.append_log(entry)
            logs.append(entry.id)
        elif kind == "tick":
            clock.advance(1.0)
            writers.maybe_flush()
        else:
            writers.close()
            writers = RunWriters(folder, clock=clock, flush_interval_s=1.0)
    got_bars = {(r["symbol"], r["time"]): r["close"] for r in writers.read_table("market_data")}
    assert got_bars == {(s, T0 + timedelta(minutes=m)): c for (s, m), c in bars.items()}
    assert {r["order_id"]: r["status"] for r in writers.read_table("orders")} == orders
    assert {r["trade_id"]: r["pnl"] for r in writers.read_table("trades")} == fills
    assert [r["id"] for r in writers.read_table("logs")] == logs
    writers.close()
    # The files (written by appends and rewrites) hold the same rows, sorted.
    con = duckdb.connect()
    market = str(folder / "market_data.parquet")
    file_bars = con.execute("SELECT symbol, time, close FROM read_parquet(?)", [market]).fetchall()
    assert {(s, t.replace(tzinfo=UTC)): c for s, t, c in file_bars} == got_bars
    assert [(t, s) for s, t, _ in file_bars] == sorted((t, s) for s, t, _ in file_bars)
    orders_path = str(folder / "orders.parquet")
    file_orders = con.execute("SELECT order_id, status FROM read_parquet(?)", [orders_path])
    assert dict(file_orders.fetchall()) == orders
    trades_path = str(folder / "trades.parquet")
    file_fills = con.execute("SELECT trade_id, pnl FROM read_parquet(?)", [trades_path])
    assert dict(file_fills.fetchall()) == fills
    logs_path = str(folder / "logs.parquet")
    assert [
        r[0] for r in con.execute("SELECT id FROM read_parquet(?)", [logs_path]).fetchall()
    ] == logs
    for schema in TABLES.values():
        keys = ", ".join(schema.key)
        path = str(folder / schema.file_name)
        dup = duckdb.connect().execute(
            f"SELECT count(*) FROM (SELECT {keys} FROM read_parquet(?) GROUP BY {keys} "
            "HAVING count(*) > 1)",
            [path],
        )
        assert dup.fetchall() == [(0,)]
