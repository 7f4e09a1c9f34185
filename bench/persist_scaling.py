"""persist_scaling: cost of one more bar when the day's file already holds N rows.

Ours: ``RunWriters.append_bar`` plus ``sync`` (the journal fsync that makes the interval's
rows durable) plus every parquet version the writer's schedule publishes, measured from one
version to the end of the first scheduled version after at least ``--probe`` rows (so that
the amortized figure holds a whole schedule period, not a part of one), with a clock that
advances one flush interval every ``--rows-per-interval`` rows (a live cadence: 10 rows per
second is 10 symbols of 1 s bars; 100 is the issue's 100 symbols).

The data are seeded random walks (prices, and volumes that vary bar to bar), as a market
gives them: their parquet file is ~30x the size of constant bars', and its size is what a
new version copies. ``--data constant`` keeps the old constant bars (100/101/99/100.5/1).

Write amplification: bytes this process caused to be written to disk over the measured span
(``/proc/self/io`` ``write_bytes`` less ``cancelled_write_bytes``: journal, parquet versions,
temp files that lived to the disk) per byte of parquet data the file gained in it.

Baseline ("argo style"): an in-memory DuckDB table re-exported whole with COPY TO parquet
after every inserted row, as argo-trading's writers do (sizes up to ``--argo-max-size``).
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from argo_engine.clock import FakeClock
from argo_engine.domain.market import Bar
from argo_engine.persistence.parquet_append import data_bytes
from argo_engine.persistence.writers import RunWriters
from bench.common import report

T0 = datetime(2025, 10, 1, tzinfo=UTC)
N_SYMBOLS = 10


def disk_writes() -> int:
    """Bytes this process has caused to be written to storage (Linux ``/proc/self/io``)."""
    fields: dict[str, int] = {}
    with open("/proc/self/io") as fh:
        for line in fh:
            name, _, value = line.partition(":")
            fields[name] = int(value)
    return fields["write_bytes"] - fields["cancelled_write_bytes"]


class Bars:
    """Bars of ``N_SYMBOLS`` symbols in (time, symbol) order, 1 s apart.

    ``walk``: each symbol's close is a seeded gaussian random walk (sigma 0.1% per bar), open
    the previous close, high/low a random wick outside them, volume uniform in [1, 100).
    ``constant``: every bar 100/101/99/100.5/1 (compresses to almost nothing).
    """

    def __init__(self, data: str, seed: int = 42) -> None:
        self._constant = data == "constant"
        self._rng = random.Random(seed)
        self._price = [100.0 + 10.0 * i for i in range(N_SYMBOLS)]
        self._i = 0

    def take(self, count: int) -> Iterator[Bar]:
        """The next ``count`` bars."""
        gauss, rand, price = self._rng.gauss, self._rng.random, self._price
        for _ in range(count):
            i = self._i
            self._i = i + 1
            s = i % N_SYMBOLS
            when = T0 + timedelta(seconds=i // N_SYMBOLS)
            if self._constant:
                yield Bar(f"S{s}", when, 100.0, 101.0, 99.0, 100.5, 1.0)
                continue
            o = price[s]
            c = o * math.exp(gauss(0.0, 0.001))
            price[s] = c
            hi = max(o, c) * (1.0 + 0.0005 * rand())
            lo = min(o, c) * (1.0 - 0.0005 * rand())
            yield Bar(f"S{s}", when, o, hi, lo, c, 1.0 + 99.0 * rand())


def ours(
    size: int,
    probe: int,
    rows_per_interval: int,
    data: str,
    folder: Path,
    version_interval_s: float | None = None,
) -> dict[str, Any]:
    """Per-row figures of our writer with ``size`` rows already stored."""
    clock = FakeClock(T0)
    w = RunWriters(folder, clock=clock, flush_interval_s=1.0, version_interval_s=version_interval_s)
    source = Bars(data)
    for bar in source.take(size):
        w.append_bar(bar)
    w.flush()
    path = folder / "market_data.parquet"
    file_before = data_bytes(path)
    versions0 = w.materializations
    written0 = disk_writes()
    t0 = time.perf_counter()
    durable = 0.0
    rows = 0
    # Until the first version the schedule publishes after ``probe`` rows (bounded: a
    # schedule that never published would otherwise run forever).
    limit = max(probe, size) * 4 + 10 * rows_per_interval
    while rows < limit:
        for bar in source.take(rows_per_interval):
            a0 = time.perf_counter()
            w.append_bar(bar)
            durable += time.perf_counter() - a0
        rows += rows_per_interval
        clock.advance(1.0)
        a0 = time.perf_counter()
        w.sync()  # durability of the interval's rows (journal write + fsync)
        durable += time.perf_counter() - a0
        before = w.materializations
        w.maybe_flush()
        if rows >= probe and w.materializations > before:
            break
    elapsed = time.perf_counter() - t0
    written = disk_writes() - written0
    versions = w.materializations - versions0
    gained = data_bytes(path) - file_before
    file_mb = path.stat().st_size / 1e6
    w.close()
    return {
        "bar_us": elapsed / rows * 1e6,
        "durable_us": durable / rows * 1e6,
        "rows": rows,
        "versions": versions,
        "file_mb": file_mb,
        "write_amplification": written / gained if gained > 0 else math.nan,
    }


def argo_style(size: int, probe: int, folder: Path) -> float:
    """Per-row microseconds of insert + full COPY TO after every row."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE md (id VARCHAR, time TIMESTAMP, symbol VARCHAR, open DOUBLE, high DOUBLE, "
        "low DOUBLE, close DOUBLE, volume DOUBLE, PRIMARY KEY (symbol, time))"
    )
    con.execute(
        "INSERT INTO md SELECT uuid()::VARCHAR, TIMESTAMP '2025-10-01' + (i // 10) * "
        "INTERVAL 1 SECOND, 'S' || (i % 10), 100 + random(), 101 + random(), 99 + random(), "
        "100 + random(), 1 + 99 * random() FROM range(?) t(i)",
        [size],
    )
    path = folder / "argo.parquet"
    t0 = time.perf_counter()
    for k in range(probe):
        i = size + k
        con.execute(
            "INSERT INTO md VALUES (uuid()::VARCHAR, ?, ?, 100, 101, 99, 100.5, 1)",
            [(T0 + timedelta(seconds=i // 10)).replace(tzinfo=None), f"S{i % 10}"],
        )
        con.execute(f"COPY (SELECT * FROM md ORDER BY time) TO '{path}' (FORMAT PARQUET)")
    us = (time.perf_counter() - t0) / probe * 1e6
    con.close()
    return us


def run(
    sizes: list[int],
    probe: int,
    argo_probe: int,
    *,
    rows_per_interval: int = 10,
    data: str = "walk",
    argo_max_size: int = 1_000_000,
    version_interval_s: float | None = None,
) -> dict[str, Any]:
    """Measure every size for both writers."""
    results: dict[str, Any] = {"data": data, "rows_per_interval": rows_per_interval,
                               "version_interval_s": version_interval_s,
                               "sizes": sizes, "ours_bar_us": [], "ours_bar_durable_us": [],
                               "write_amplification": [], "probe_rows": [], "versions": [],
                               "file_mb": [], "argo_bar_us": []}  # fmt: skip
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            got = ours(size, probe, rows_per_interval, data, Path(tmp) / "run", version_interval_s)
            results["ours_bar_us"].append(round(got["bar_us"], 2))
            results["ours_bar_durable_us"].append(round(got["durable_us"], 2))
            results["write_amplification"].append(round(got["write_amplification"], 2))
            results["probe_rows"].append(got["rows"])
            results["versions"].append(got["versions"])
            results["file_mb"].append(round(got["file_mb"], 2))
            argo = argo_style(size, argo_probe, Path(tmp)) if size <= argo_max_size else None
            results["argo_bar_us"].append(None if argo is None else round(argo, 1))
    bar = results["ours_bar_us"]
    results["ours_growth_first_to_last"] = round(bar[-1] / bar[0], 2)
    results["ours_growth_max_over_first"] = round(max(bar) / bar[0], 2)
    results["flat_within_1_5x"] = max(bar) <= 1.5 * bar[0]
    durable = results["ours_bar_durable_us"]
    results["ours_durable_growth_first_to_last"] = round(durable[-1] / durable[0], 2)
    results["max_write_amplification"] = max(results["write_amplification"])
    results["argo_over_ours"] = [
        None if a is None else round(a / o, 1)
        for a, o in zip(results["argo_bar_us"], bar, strict=True)
    ]
    return results


def main(argv: list[str]) -> None:
    """CLI of the benchmark."""
    parser = argparse.ArgumentParser(prog="python -m bench persist_scaling")
    parser.add_argument("--sizes", default="1000,10000,100000,1000000,10000000")
    parser.add_argument("--probe", type=int, default=2000, help="at least this many rows")
    parser.add_argument("--rows-per-interval", type=int, default=10)
    parser.add_argument("--data", choices=["walk", "constant"], default="walk")
    parser.add_argument("--argo-probe", type=int, default=5)
    parser.add_argument("--argo-max-size", type=int, default=1_000_000)
    parser.add_argument(
        "--version-interval",
        type=float,
        default=None,
        help="Min seconds between versions (ARGO_PERSISTENCE__PARQUET_INTERVAL_S); "
        "default: the flush interval (1 s).",
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    figures = run(
        sizes,
        args.probe,
        args.argo_probe,
        rows_per_interval=args.rows_per_interval,
        data=args.data,
        argo_max_size=args.argo_max_size,
        version_interval_s=args.version_interval,
    )
    rows: list[tuple[str, Any]] = []
    for i, size in enumerate(sizes):
        rows.append((f"ours bar us (amortized) @ {size:,}", figures["ours_bar_us"][i]))
        rows.append((f"ours bar us (durable) @ {size:,}", figures["ours_bar_durable_us"][i]))
        rows.append((f"write amplification @ {size:,}", figures["write_amplification"][i]))
        rows.append((f"rows / versions @ {size:,}",
                     f"{figures['probe_rows'][i]:,} / {figures['versions'][i]}"))  # fmt: skip
        rows.append((f"file MB @ {size:,}", figures["file_mb"][i]))
        rows.append((f"argo bar us @ {size:,}", figures["argo_bar_us"][i]))
    rows.append(("ours growth max/first", figures["ours_growth_max_over_first"]))
    report("persist_scaling", rows, figures)
