"""memory: RSS after 100k and after 2M bars through the full engine (fast replay)."""

from __future__ import annotations

import argparse
import gc
import tempfile
import threading
from datetime import date
from pathlib import Path
from typing import Any

from argo_engine.clock import LiveClock
from argo_engine.providers.synthetic import SyntheticFeed
from argo_engine.session import open_engine, start_session
from argo_engine.settings import load_settings
from bench.common import START, report, rss_mb, symbols


def run(n_symbols: int, early: int, total: int) -> dict[str, Any]:
    """RSS after ``early`` and after ``total`` bars."""
    root = Path(tempfile.mkdtemp(prefix="argo-memory-"))
    syms = symbols(n_symbols)
    settings = load_settings(
        None,
        session={"data_output": str(root / "out"), "symbols": syms, "initial_capital": 1e12},
    )
    feed = SyntheticFeed(symbols=syms, interval="1m", start=START, bars=total // n_symbols)
    plan = start_session(settings, clock=LiveClock(), first_date=date(2025, 10, 1))
    engine = open_engine(settings, plan, plan.first_date, feed=feed)
    engine.start()
    rss_early = 0.0
    for i, bar in enumerate(feed.stream(threading.Event()), start=1):
        engine.process_bar(bar)
        if i == early:
            gc.collect()
            rss_early = rss_mb()
    gc.collect()
    rss_end = rss_mb()
    engine.stop()
    return {
        "bars": total,
        "rss_mb_after_early": round(rss_early, 1),
        "rss_mb_after_total": round(rss_end, 1),
        "growth_mb": round(rss_end - rss_early, 1),
    }


def main(argv: list[str]) -> None:
    """CLI of the benchmark."""
    parser = argparse.ArgumentParser(prog="python -m bench memory")
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--early", type=int, default=100_000)
    parser.add_argument("--total", type=int, default=2_000_000)
    args = parser.parse_args(argv)
    figures = run(args.symbols, args.early, args.total)
    report("memory", list(figures.items()), {**figures, "target_growth_mb": 50})
