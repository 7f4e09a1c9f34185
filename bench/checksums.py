"""checksums: what the CRC-32 checksums in each parquet file's footer cost on the write path.

Every version of a run folder's parquet file records a CRC-32 of its data bytes and of its
footer (:mod:`argo_engine.persistence.parquet_append`). An appended version extends the CRC
of the bytes it keeps over the new row group only; a rewrite (DuckDB ``COPY``, pyarrow) reads
the new file once more and rewrites its footer (:func:`seal_file`).

Two measurements:

- ``writer``: the persist_scaling loop (bars appended at a live cadence, the schedule's
  versions published) with a file of N rows already stored; the time spent in checksum work
  (CRC reads, footer re-encoding and rewrite) is timed inside every version, against the
  time of the versions themselves.
- ``engine``: the throughput replay (RSI, paper broker, every file) run alternately with the
  checksum work on and switched off (the CRC and sealing functions made no-ops in this
  process), CPU per bar of each.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from argo_engine.clock import FakeClock
from argo_engine.persistence import parquet_append
from argo_engine.persistence import parquet_versions as writers
from argo_engine.persistence.writers import RunWriters
from bench import throughput
from bench.common import report
from bench.persist_scaling import T0, Bars

_timers = {"checksum_s": 0.0, "versions_s": 0.0}


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _timers[name] += time.perf_counter() - started

    return wrapper


def _instrument() -> Callable[[], None]:
    """Time checksum work and parquet versions; return the undo."""
    saved = (
        parquet_append._crc_range,
        parquet_append.with_checksum,
        writers.seal_file,
        RunWriters._materialize,
    )
    # seal_file calls _crc_range and with_checksum: time the outer call only there.
    seal = _timed("checksum_s", saved[2])
    parquet_append._crc_range = _timed("checksum_s", saved[0])  # type: ignore[assignment]
    parquet_append.with_checksum = _timed("checksum_s", saved[1])  # type: ignore[assignment]

    def sealed(path: Path) -> Any:
        # Undo the inner timers while the outer one runs.
        inner = parquet_append._crc_range, parquet_append.with_checksum
        parquet_append._crc_range, parquet_append.with_checksum = saved[0], saved[1]  # type: ignore[assignment]
        try:
            return seal(path)
        finally:
            parquet_append._crc_range, parquet_append.with_checksum = inner  # type: ignore[assignment]

    writers.seal_file = sealed  # type: ignore[assignment]
    RunWriters._materialize = _timed("versions_s", saved[3])  # type: ignore[method-assign]

    def undo() -> None:
        parquet_append._crc_range = saved[0]  # type: ignore[assignment]
        parquet_append.with_checksum = saved[1]  # type: ignore[assignment]
        writers.seal_file = saved[2]  # type: ignore[assignment]
        RunWriters._materialize = saved[3]  # type: ignore[method-assign]

    return undo


def _switch_off() -> Callable[[], None]:
    """Make the checksum work no-ops (files get a constant entry); return the undo."""
    saved = parquet_append._crc_range, writers.seal_file
    parquet_append._crc_range = lambda path, start, length, crc=0: 0  # type: ignore[assignment]
    writers.seal_file = lambda path: None  # type: ignore[assignment]

    def undo() -> None:
        parquet_append._crc_range, writers.seal_file = saved  # type: ignore[assignment]

    return undo


def writer_cost(size: int, probe: int, rows_per_interval: int) -> dict[str, Any]:
    """Checksum time against version time while bars stream onto a file of ``size`` rows."""
    with tempfile.TemporaryDirectory() as tmp:
        clock = FakeClock(T0)
        w = RunWriters(Path(tmp) / "run", clock=clock, flush_interval_s=1.0)
        source = Bars("walk")
        for bar in source.take(size):
            w.append_bar(bar)
        w.flush()
        undo = _instrument()
        _timers.update(checksum_s=0.0, versions_s=0.0)
        try:
            rows, versions0 = 0, w.materializations
            started = time.perf_counter()
            while rows < probe:
                for bar in source.take(rows_per_interval):
                    w.append_bar(bar)
                rows += rows_per_interval
                clock.advance(1.0)
                w.sync()
                w.maybe_flush()
            elapsed = time.perf_counter() - started
            versions = w.materializations - versions0
            w.close()
        finally:
            undo()
    checksum, versions_s = _timers["checksum_s"], _timers["versions_s"]
    return {
        "size": size,
        "rows": rows,
        "versions": versions,
        "checksum_ms_per_version": round(1e3 * checksum / max(versions, 1), 3),
        "version_ms": round(1e3 * versions_s / max(versions, 1), 3),
        "checksum_share_of_versions": round(checksum / versions_s, 4) if versions_s else None,
        "checksum_us_per_bar": round(1e6 * checksum / rows, 3),
        "bar_us": round(1e6 * elapsed / rows, 3),
    }


def engine_cost(n_symbols: int, bars_per_symbol: int, repeats: int) -> dict[str, Any]:
    """CPU per bar of the full replay with and without checksum work, alternated."""
    on: list[float] = []
    off: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            for mode, sink in (("on", on), ("off", off)):
                undo = _switch_off() if mode == "off" else (lambda: None)
                try:
                    got = throughput.run(n_symbols, bars_per_symbol, workdir=Path(tmp), cadence=1e4)
                finally:
                    undo()
                sink.append(got["cpu_us_per_bar"])
    med_on, med_off = statistics.median(on), statistics.median(off)
    return {
        "bars": n_symbols * bars_per_symbol,
        "cpu_us_per_bar_on": on,
        "cpu_us_per_bar_off": off,
        "median_on": med_on,
        "median_off": med_off,
        "overhead": round(med_on / med_off - 1.0, 4),
    }


def main(argv: list[str]) -> None:
    """CLI of the benchmark."""
    parser = argparse.ArgumentParser(prog="python -m bench checksums")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--probe", type=int, default=2000)
    parser.add_argument("--rows-per-interval", type=int, default=10)
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--bars-per-symbol", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {"writer": [], "engine": None}
    rows: list[tuple[str, Any]] = []
    for size in (int(s) for s in args.sizes.split(",")):
        got = writer_cost(size, args.probe, args.rows_per_interval)
        figures["writer"].append(got)
        rows.append((f"checksum ms / version @ {size:,}", got["checksum_ms_per_version"]))
        rows.append((f"version ms @ {size:,}", got["version_ms"]))
        rows.append((f"checksum share of versions @ {size:,}", got["checksum_share_of_versions"]))
        rows.append((f"checksum us / bar @ {size:,}", got["checksum_us_per_bar"]))
    if args.repeats > 0:
        engine = engine_cost(args.symbols, args.bars_per_symbol, args.repeats)
        figures["engine"] = engine
        rows.append(("engine cpu us / bar, checksums on (median)", engine["median_on"]))
        rows.append(("engine cpu us / bar, checksums off (median)", engine["median_off"]))
        rows.append(("engine overhead", engine["overhead"]))
    report("checksums", rows, figures)
