"""latency: bar arrival -> persisted (journal) and stats.yaml written (when due), paced.

A live-like session: one bar per symbol per tick, each tick one second of (fake) clock, so
every flush interval (1 s) the journal is fsynced, parquet refreshed (when its spacing allows)
and stats.yaml rewritten (on the background flusher) when due. Each bar's latency is the wall
time of ``process_bar``: journaled (durable per the flush-interval contract for bars) and, so
that the figure covers the strictest mode, with ``ARGO_PERSISTENCE__PAPER_FSYNC=per_order``:
an order and its fill are fsynced before ``process_bar`` returns.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
from datetime import date
from pathlib import Path
from time import perf_counter
from typing import Any

from argo_engine.clock import FakeClock
from argo_engine.providers.synthetic import SyntheticFeed
from argo_engine.session import open_engine, start_session
from argo_engine.settings import load_settings
from bench.common import START, report, symbols


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(n_symbols: int, total_bars: int, window: int) -> dict[str, Any]:
    """Latency percentiles for the first and the last ``window`` bars of ``total_bars``."""
    root = Path(tempfile.mkdtemp(prefix="argo-latency-"))
    syms = symbols(n_symbols)
    settings = load_settings(
        None,
        session={"data_output": str(root / "out"), "symbols": syms, "initial_capital": 1e9},
        persistence={"paper_fsync": "per_order"},
    )
    clock = FakeClock(START)
    per_symbol = total_bars // n_symbols
    feed = SyntheticFeed(symbols=syms, interval="1s", start=START, bars=per_symbol)
    plan = start_session(settings, clock=clock, first_date=date(2025, 10, 1))
    engine = open_engine(settings, plan, plan.first_date, clock=clock, feed=feed)
    engine.start()
    writers = engine.writers
    assert writers is not None
    latencies: list[float] = []
    for i, bar in enumerate(feed.stream(threading.Event())):
        if i % n_symbols == 0:
            clock.advance(1.0)
        t0 = perf_counter()
        engine.process_bar(bar)
        latencies.append((perf_counter() - t0) * 1e3)
    engine.stop()
    first, last = latencies[:window], latencies[-window:]
    return {
        "bars": len(latencies),
        "p50_ms_start": round(_pct(first, 0.50), 3),
        "p99_ms_start": round(_pct(first, 0.99), 3),
        "p50_ms_end": round(_pct(last, 0.50), 3),
        "p99_ms_end": round(_pct(last, 0.99), 3),
        "max_ms": round(max(latencies), 3),
    }


def main(argv: list[str]) -> None:
    """CLI of the benchmark."""
    parser = argparse.ArgumentParser(prog="python -m bench latency")
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--bars", type=int, default=500_000)
    parser.add_argument("--window", type=int, default=20_000)
    args = parser.parse_args(argv)
    figures = run(args.symbols, args.bars, args.window)
    report("latency", list(figures.items()), {**figures, "target_p99_ms": 5.0})
