"""throughput: a replay through the full engine (RSI, paper broker, persistence, stats.yaml)."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import yaml

from argo_engine.clock import FakeClock, LiveClock
from argo_engine.session import run_session
from argo_engine.settings import load_settings
from bench.common import peak_rss_mb, replay_file, report, symbols


class CadenceClock(FakeClock):
    """Wall-clock dates, and a monotonic clock that advances a fixed step per reading.

    The engine reads the monotonic clock twice per bar (around the strategy), and flushes,
    state saves and stats.yaml writes are due by it. With this clock they fall on the same
    bars in every run (those of a replay at ``bars_per_s``), so two runs do the same work
    and their CPU times differ by the machine's noise only.
    """

    def __init__(self, bars_per_s: float) -> None:
        super().__init__(datetime.now(UTC))
        self._step = 0.5 / bars_per_s

    def now(self) -> datetime:
        """The wall clock (run.yaml and state timestamps)."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Advance one step and return the time."""
        self._mono += self._step
        return self._mono


def run(
    n_symbols: int,
    bars_per_symbol: int,
    workdir: Path | None = None,
    paper_fsync: str | None = None,
    cadence: float | None = None,
) -> dict[str, Any]:
    """Replay ``n_symbols x bars_per_symbol`` bars as fast as possible; check the files.

    ``paper_fsync`` overrides ``ARGO_PERSISTENCE__PAPER_FSYNC`` (the engine default when None).
    ``cadence`` (bars per second) makes the periodic work fall on fixed bars
    (:class:`CadenceClock`) instead of following the wall clock.
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
    run_session(settings, clock=CadenceClock(cadence) if cadence else LiveClock())
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
        "cpu_us_per_bar": round(1e6 * cpu / bars, 3),
        "cadence_bars_per_s": cadence,
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
    parser.add_argument(
        "--cadence",
        type=float,
        help="flushes and stats.yaml writes fall on the bars of a replay at this many bars/s "
        "(the same work in every run, for comparing CPU times); default: the wall clock",
    )
    args = parser.parse_args(argv)
    figures = run(
        args.symbols, args.bars_per_symbol, paper_fsync=args.paper_fsync, cadence=args.cadence
    )
    rows = [(k, v) for k, v in figures.items() if k != "rows"]
    rows += [(f"rows.{k}", v) for k, v in figures["rows"].items()]
    report("throughput", rows, {**figures, "target_bars_per_s": 100_000})
