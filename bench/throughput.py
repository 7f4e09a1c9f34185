"""throughput: a replay through the full engine (RSI, paper broker, persistence, stats.yaml)."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import yaml

from argo_engine.clock import LiveClock
from argo_engine.session import run_session
from argo_engine.settings import load_settings
from bench.common import peak_rss_mb, replay_file, report, symbols


def run(
    n_symbols: int,
    bars_per_symbol: int,
    workdir: Path | None = None,
    paper_fsync: str | None = None,
) -> dict[str, Any]:
    """Replay ``n_symbols x bars_per_symbol`` bars as fast as possible; check the files.

    ``paper_fsync`` overrides ``ARGO_PERSISTENCE__PAPER_FSYNC`` (the engine default when None).
    """
    root = workdir or Path(tempfile.mkdtemp(prefix="argo-bench-"))
    replay = replay_file(root / "data", n_symbols, bars_per_symbol)
    out = root / f"out-{time.time_ns()}"
    settings = load_settings(
        None,
        session={"data_output": str(out), "symbols": symbols(n_symbols), "initial_capital": 1e9},
        feed={"kind": "replay", "replay_file": str(replay)},
        persistence={"paper_fsync": paper_fsync} if paper_fsync else {},
    )
    cpu0, engine0, t0 = os.times(), time.thread_time(), time.perf_counter()
    run_session(settings, clock=LiveClock())
    wall = time.perf_counter() - t0
    engine_cpu = time.thread_time() - engine0
    cpu1 = os.times()
    # CPU of every thread (engine, flushers, DuckDB): what one core would have to do alone.
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    bars = n_symbols * bars_per_symbol
    con = duckdb.connect()
    counts = {}
    for table in ("market_data", "orders", "trades", "marks", "logs"):
        (counts[table],) = con.execute(
            f"SELECT count(*) FROM read_parquet('{out}/*/run_*/{table}.parquet')"
        ).fetchone()  # type: ignore[misc]
    con.close()
    stats_trades = sum(
        yaml.safe_load(p.read_text())["daily"]["trade_result"]["number_of_trades"]
        for p in out.glob("*/run_*/stats.yaml")
    )
    checks = {
        "market_data_rows_ok": counts["market_data"] == bars,
        "trades_match_stats_ok": counts["trades"] == stats_trades,
    }
    return {
        "paper_fsync": settings.persistence.paper_fsync,
        "bars": bars,
        "wall_s": round(wall, 3),
        "bars_per_s": round(bars / wall, 1),
        "cpu_s": round(cpu, 3),
        "engine_thread_cpu_s": round(engine_cpu, 3),
        "bars_per_cpu_s": round(bars / cpu, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rows": counts,
        **checks,
    }


def main(argv: list[str]) -> None:
    """CLI of the benchmark."""
    parser = argparse.ArgumentParser(prog="python -m bench throughput")
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--bars-per-symbol", type=int, default=100_000)
    parser.add_argument(
        "--paper-fsync", choices=["batched", "per_order"], help="default: the engine default"
    )
    args = parser.parse_args(argv)
    figures = run(args.symbols, args.bars_per_symbol, paper_fsync=args.paper_fsync)
    rows = [(k, v) for k, v in figures.items() if k != "rows"]
    rows += [(f"rows.{k}", v) for k, v in figures["rows"].items()]
    report("throughput", rows, {**figures, "target_bars_per_s": 100_000})
