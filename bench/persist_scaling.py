"""persist_scaling: cost of one more bar/fill when the day already holds N rows.

Ours: ``RunWriters.append_bar`` / ``append_fill`` plus the amortized share of the periodic
flush (journal fsync + adaptive parquet materialization), measured over a block of appends
with a clock that advances one flush interval every ``rows_per_interval`` rows (a live-like
cadence: 1 s flush interval, 10 symbols, one bar per symbol per second -> 10 rows/interval).
Baseline ("argo style"): an in-memory DuckDB table re-exported whole with COPY TO parquet
after every inserted row, as argo-trading's writers do.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from argo_engine.clock import FakeClock
from argo_engine.domain.enums import PositionType, Side
from argo_engine.domain.market import Bar
from argo_engine.domain.orders import Fill
from argo_engine.persistence.writers import RunWriters
from bench.common import report

T0 = datetime(2025, 10, 1, tzinfo=UTC)


def _bar(i: int) -> Bar:
    return Bar(f"S{i % 10}", T0 + timedelta(minutes=i // 10), 100.0, 101.0, 99.0, 100.5, 1.0)


def _fill(i: int) -> Fill:
    t = T0 + timedelta(seconds=i)
    return Fill(trade_id=f"t{i}", order_id=f"o{i}", symbol="S1", side=Side.BUY, quantity=1.0,
                price=100.0, timestamp=t, executed_at=t, executed_qty=1.0, executed_price=100.0,
                commission=0.1, position_type=PositionType.LONG)  # fmt: skip


def ours(size: int, probe: int, rows_per_interval: int, folder: Path) -> tuple[float, float, float]:
    """Per-row microseconds of our writer with ``size`` rows already stored.

    Returns:
        (bar amortized incl. parquet materialization, bar durable (append + journal fsync),
        fill durable).
    """
    clock = FakeClock(T0)
    w = RunWriters(folder, clock=clock, flush_interval_s=1.0)
    for i in range(size):
        w.append_bar(_bar(i))
    w.flush()
    t0 = time.perf_counter()
    append = 0.0
    for k in range(probe):
        a0 = time.perf_counter()
        w.append_bar(_bar(size + k))
        append += time.perf_counter() - a0
        if (k + 1) % rows_per_interval == 0:
            clock.advance(1.0)
            a0 = time.perf_counter()
            w.sync()  # durability of the interval's rows (journal write + fsync)
            append += time.perf_counter() - a0
        w.maybe_flush()
    # The block's rows must be in the parquet file eventually: count the final flush too.
    w.flush()
    bar_us = (time.perf_counter() - t0) / probe * 1e6
    durable_us = append / probe * 1e6
    fills = max(probe // 20, 5)
    t0 = time.perf_counter()
    for k in range(fills):
        w.append_fill(_fill(size + k))
        clock.advance(1.0)
        w.maybe_flush()
    fill_us = (time.perf_counter() - t0) / fills * 1e6
    w.close()
    return bar_us, durable_us, fill_us


def argo_style(size: int, probe: int, folder: Path) -> float:
    """Per-row microseconds of insert + full COPY TO after every row."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE md (id VARCHAR, time TIMESTAMP, symbol VARCHAR, open DOUBLE, high DOUBLE, "
        "low DOUBLE, close DOUBLE, volume DOUBLE, PRIMARY KEY (symbol, time))"
    )
    con.execute(
        "INSERT INTO md SELECT uuid()::VARCHAR, TIMESTAMP '2025-10-01' + (i // 10) * "
        "INTERVAL 1 MINUTE, 'S' || (i % 10), 100, 101, 99, 100.5, 1 FROM range(?) t(i)",
        [size],
    )
    path = folder / "argo.parquet"
    t0 = time.perf_counter()
    for k in range(probe):
        i = size + k
        con.execute(
            "INSERT INTO md VALUES (uuid()::VARCHAR, ?, ?, 100, 101, 99, 100.5, 1)",
            [(T0 + timedelta(minutes=i // 10)).replace(tzinfo=None), f"S{i % 10}"],
        )
        con.execute(f"COPY (SELECT * FROM md ORDER BY time) TO '{path}' (FORMAT PARQUET)")
    us = (time.perf_counter() - t0) / probe * 1e6
    con.close()
    return us


def run(sizes: list[int], probe: int, argo_probe: int) -> dict[str, Any]:
    """Measure every size for both writers."""
    results: dict[str, Any] = {"sizes": sizes, "ours_bar_us": [], "ours_bar_durable_us": [],
                               "ours_fill_us": [], "argo_bar_us": []}  # fmt: skip
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            bar_us, durable_us, fill_us = ours(size, probe, 10, Path(tmp) / "run")
            results["ours_bar_us"].append(round(bar_us, 2))
            results["ours_bar_durable_us"].append(round(durable_us, 2))
            results["ours_fill_us"].append(round(fill_us, 2))
            results["argo_bar_us"].append(round(argo_style(size, argo_probe, Path(tmp)), 1))
    first, last = results["ours_bar_us"][0], results["ours_bar_us"][-1]
    results["ours_growth_first_to_last"] = round(last / first, 2)
    d_first, d_last = results["ours_bar_durable_us"][0], results["ours_bar_durable_us"][-1]
    results["ours_durable_growth_first_to_last"] = round(d_last / d_first, 2)
    results["durable_flat_within_2x"] = d_last <= 2 * d_first
    results["argo_over_ours"] = [
        round(a / o, 1) for a, o in zip(results["argo_bar_us"], results["ours_bar_us"], strict=True)
    ]
    results["flat_within_2x"] = last <= 2 * first
    return results


def main(argv: list[str]) -> None:
    """CLI of the benchmark."""
    parser = argparse.ArgumentParser(prog="python -m bench persist_scaling")
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--probe", type=int, default=2000)
    parser.add_argument("--argo-probe", type=int, default=5)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    figures = run(sizes, args.probe, args.argo_probe)
    rows = []
    for i, size in enumerate(sizes):
        rows.append((f"ours bar us (amortized) @ {size:,}", figures["ours_bar_us"][i]))
        rows.append((f"ours bar us (durable) @ {size:,}", figures["ours_bar_durable_us"][i]))
        rows.append((f"ours fill us @ {size:,}", figures["ours_fill_us"][i]))
        rows.append((f"argo bar us @ {size:,}", figures["argo_bar_us"][i]))
    rows.append(("ours growth first->last", figures["ours_growth_first_to_last"]))
    report("persist_scaling", rows, figures)
