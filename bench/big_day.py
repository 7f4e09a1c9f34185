"""big_day: one trading date of many symbols of 1 s bars through the full engine.

100 symbols x 86,400 bars of 1 s (8.64M bars, one date) by default: the replay goes through
the engine (RSI, paper broker, persistence, stats.yaml) while a reader thread opens the
date's five parquet files with DuckDB every ``--read-every`` seconds, as a user's query
would, and checks that each read succeeds and that no file ever holds fewer rows than the
reader saw before. Figures: bars/s, peak RSS, bytes this process caused to be written to disk
(``/proc/self/io``) and per byte of the final parquet files, the reader's reads and failures.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import duckdb

from argo_engine.persistence.schema import TABLES
from bench import throughput
from bench.common import replay_file, report
from bench.persist_scaling import disk_writes


class Reader(threading.Thread):
    """Reads every parquet file under ``out`` each ``every`` seconds until stopped."""

    def __init__(self, out: Path, every: float) -> None:
        super().__init__(name="bench-reader", daemon=True)
        self.out = out
        self.every = every
        self.stop = threading.Event()
        self.reads = 0
        self.failures: list[str] = []
        self.shrunk: list[str] = []
        self.max_rows: dict[str, int] = {}

    def run(self) -> None:
        """Poll until stopped."""
        con = duckdb.connect(config={"threads": 1})
        while not self.stop.wait(self.every):
            for path in sorted(self.out.glob("*/run_*/*.parquet")):
                if path.name not in {t.file_name for t in TABLES.values()}:
                    continue
                try:
                    ((rows,),) = con.execute(
                        "SELECT count(*) FROM read_parquet(?)", [str(path)]
                    ).fetchall()
                except duckdb.Error as exc:
                    self.failures.append(f"{path.name}: {exc}")
                    continue
                self.reads += 1
                key = str(path)
                if rows < self.max_rows.get(key, 0):
                    self.shrunk.append(f"{path.name}: {self.max_rows[key]} -> {rows}")
                self.max_rows[key] = max(rows, self.max_rows.get(key, 0))
        con.close()


def main(argv: list[str]) -> None:
    """CLI of the benchmark."""
    parser = argparse.ArgumentParser(prog="python -m bench big_day")
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--bars-per-symbol", type=int, default=86_400)
    parser.add_argument("--interval", default="1s")
    parser.add_argument("--read-every", type=float, default=1.0)
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keeps the replay file between runs (default: a new temporary folder)",
    )
    parser.add_argument(
        "--generate-only",
        action="store_true",
        help="write the replay file into --workdir and stop: the run's peak RSS then "
        "excludes generating 8.64M bars in Python",
    )
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="argo-bench-"))
    t0 = time.perf_counter()
    replay_file(workdir / "data", args.symbols, args.bars_per_symbol, interval=args.interval)
    generate_s = time.perf_counter() - t0
    if args.generate_only:
        print(f"replay file in {workdir / 'data'} ({generate_s:.1f} s)")
        return
    before = set(workdir.glob("out-*"))
    written0 = disk_writes()
    # The reader starts once run() has created its output folder.
    reader: Reader | None = None
    started = threading.Event()

    def start_reader() -> None:
        nonlocal reader
        while not started.wait(0.05):
            outs = set(workdir.glob("out-*")) - before
            if outs:
                reader = Reader(outs.pop(), args.read_every)
                reader.start()
                return

    watcher = threading.Thread(target=start_reader, daemon=True)
    watcher.start()
    try:
        figures = throughput.run(
            args.symbols, args.bars_per_symbol, workdir, interval=args.interval
        )
    finally:
        started.set()
        watcher.join()
        if reader is not None:
            reader.stop.set()
            reader.join()
    written = disk_writes() - written0
    outs = set(workdir.glob("out-*")) - before
    parquet = sum(p.stat().st_size for out in outs for p in out.glob("*/run_*/*.parquet"))
    result: dict[str, Any] = {
        "symbols": args.symbols,
        "bars_per_symbol": args.bars_per_symbol,
        "interval": args.interval,
        "generate_replay_s": round(generate_s, 1),
        **{k: figures[k] for k in ("bars", "wall_s", "bars_per_s", "cpu_s", "peak_rss_mb")},
        "rows": figures["rows"],
        "rows_ok": figures["market_data_rows_ok"] and figures["trades_match_stats_ok"],
        "bytes_written_mb": round(written / 1e6, 1),
        "parquet_mb": round(parquet / 1e6, 1),
        "written_per_parquet_byte": round(written / parquet, 2) if parquet else None,
        "reader_reads": reader.reads if reader else 0,
        "reader_failures": reader.failures[:5] if reader else [],
        "reader_failure_count": len(reader.failures) if reader else 0,
        "reader_saw_fewer_rows": reader.shrunk[:5] if reader else [],
    }
    rows = [(k, v) for k, v in result.items() if not isinstance(v, (list, dict))]
    report("big_day", rows, result)
