"""Child processes for the RunWriters tests (run as scripts, never collected by pytest).

``python writer_procs.py reader <folder> <stop_file> <batch>``
    Polls market_data.parquet and orders.parquet until ``stop_file`` exists (bounded), and
    prints one JSON line per newly seen market_data row count, then a JSON summary. Reads go
    through the path (DuckDB ``read_parquet(path)``, ``pyarrow.parquet.read_table(path)``),
    which open it several times per read: appends keep every version a prefix of the next,
    so a replace between those opens must not show.
``python writer_procs.py crash <folder>``
    Appends rows of every kind, flushes part of them, prints a JSON manifest of what was
    acknowledged as durable, and SIGKILLs itself.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

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
from argo_engine.persistence.writers import RunWriters

T0 = datetime(2025, 10, 1, tzinfo=UTC)
MAX_READS = 200_000


def reader(folder: Path, stop_file: Path, batch: int) -> None:
    con = duckdb.connect()
    market = str(folder / "market_data.parquet")
    orders = str(folder / "orders.parquet")
    errors: list[str] = []
    seen: list[int] = []
    reads = 0
    while reads < MAX_READS and not stop_file.exists():
        reads += 1
        try:
            # Plain path reads, as users write them: DuckDB and pyarrow both open the path
            # more than once per read.
            if reads % 2:
                row = con.execute(
                    "SELECT count(*), coalesce(sum(close), 0) FROM read_parquet(?)", [market]
                ).fetchall()[0]
                count = int(row[0])
            else:
                table = pq.read_table(market)
                count = table.num_rows
                row = (count, sum(table.column("close").to_pylist()))
            # Each flush adds exactly `batch` bars with close == 1.0: a partial file shows.
            if count % batch or float(row[1]) != float(count):
                errors.append(f"partial market_data: {row}")
            # Orders change status every flush (superseding writes); read them both ways too.
            if reads % 2:
                con.execute("SELECT count(*) FROM read_parquet(?)", [orders]).fetchall()
            else:
                pq.read_table(orders)
        except Exception as exc:  # any failure of a reader is what we look for
            errors.append(repr(exc))
            continue
        if not seen or count != seen[-1]:
            seen.append(count)
            print(json.dumps({"count": count}), flush=True)
    print(json.dumps({"reads": reads, "errors": errors[:20], "seen": seen}), flush=True)


def crash_bar(i: int) -> Bar:
    return Bar("BTCUSDT", T0 + timedelta(minutes=i), 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, i)


def crash(folder: Path) -> None:
    clock = FakeClock(T0)
    # A tiny write share: after the first materialization only flush() writes parquet, so the
    # crash leaves parquet rows, journaled rows and buffered rows side by side.
    writers = RunWriters(folder, clock=clock, flush_interval_s=1.0, max_write_share=1e-9)
    acked: dict[str, list[Any]] = {
        "bars": [],
        "orders": [],
        "fills": [],
        "marks": [],
        "logs": [],
    }
    statuses: dict[str, str] = {}

    def order(i: int, status: OrderStatus) -> Order:
        return Order(
            order_id=f"o{i}",
            symbol="BTCUSDT",
            side=Side.BUY if i % 2 == 0 else Side.SELL,
            order_type=OrderType.MARKET,
            quantity=1.0,
            price=100.0 + i,
            timestamp=T0 + timedelta(minutes=i),
            status=status,
            strategy_name="crash",
            position_type=PositionType.LONG,
        )

    def step(i: int) -> None:
        writers.append_bar(crash_bar(i))
        if i % 10 == 0:
            writers.append_order(order(i, OrderStatus.PENDING))
            statuses[f"o{i}"] = "PENDING"
        if i % 10 == 5:
            j = i - 5
            writers.append_fill(
                Fill(
                    trade_id=f"t{j}",
                    order_id=f"o{j}",
                    symbol="BTCUSDT",
                    side=Side.BUY,
                    quantity=1.0,
                    price=100.0 + j,
                    timestamp=T0 + timedelta(minutes=j),
                    executed_at=T0 + timedelta(minutes=i),
                    executed_qty=1.0,
                    executed_price=100.0 + i,
                    commission=0.1,
                    position_type=PositionType.LONG,
                )
            )
            acked["fills"].append(f"t{j}")
            writers.append_order(order(j, OrderStatus.FILLED))
            statuses[f"o{j}"] = "FILLED"
        if i % 7 == 0:
            writers.append_mark(
                Mark(
                    id=writers.next_id("marks"),
                    market_data_id=f"m{i}",
                    signal_type=None,
                    signal_name=None,
                    signal_time=None,
                    signal_symbol=None,
                    color="red",
                    shape=MarkShape.CIRCLE,
                    level=LogLevel.INFO,
                    title=f"mark {i}",
                    message="",
                    category="c",
                )
            )
        writers.append_log(
            LogEntry(
                id=writers.next_id("logs"),
                timestamp=T0 + timedelta(minutes=i),
                symbol="BTCUSDT",
                level=LogLevel.INFO,
                message=f"bar {i}",
                fields={"i": str(i)},
            )
        )

    def durable_marks_logs() -> None:
        acked["marks"] = [r["title"] for r in writers.read_table("marks")]
        acked["logs"] = [r["message"] for r in writers.read_table("logs")]

    for i in range(120):
        step(i)
    clock.advance(1.0)
    assert writers.maybe_flush()  # first tick: parquet written, journals emptied
    for i in range(120, 250):
        step(i)
    clock.advance(1.0)
    assert writers.maybe_flush()  # journal fsync only (write share exhausted)
    acked["bars"] = list(range(250))
    durable_marks_logs()
    for i in range(250, 280):
        step(i)  # orders and fills here are fsynced; bars, marks and logs only buffered
    acked["orders"] = sorted(statuses.items())
    manifest = {
        "acked": acked,
        "appended_bars": 280,
        "materializations": writers.materializations,
    }
    print(json.dumps(manifest), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "reader":
        reader(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
    elif mode == "crash":
        crash(Path(sys.argv[2]))
    else:
        raise SystemExit(f"unknown mode {mode}")
