"""date_change: engine-thread CPU of a trading-date change, over a many-date replay.

A replay of ``--symbols`` symbols of 1m bars over ``--days`` dates (1 symbol, 200 dates by
default: 1,440 bars per date, so the date changes are a large share of the work) through the
full engine. Every call of the engine's roll (closing one date, opening the next) and of the
report of a finished background close is timed with the calling thread's CPU clock
(``time.thread_time``); the figures are per date change.

``--compare``: then the 2-symbol default shape and the throughput benchmark's 10-symbol
shape, the same number of bars each (``--compare-bars``), one after the other ``--repeat``
times; engine-thread CPU per bar and their ratio (target: the 2-symbol replay at least 80% as
fast per bar).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from argo_engine.engine.core import TradingEngine
from bench import throughput
from bench.common import report

BARS_PER_DAY = 1440


class RollTimer:
    """Times the engine's date changes (thread CPU) while installed."""

    def __init__(self) -> None:
        self.rolls: list[float] = []
        self.reaps: list[float] = []
        self._saved: dict[str, Callable[..., Any]] = {}

    def __enter__(self) -> RollTimer:
        for name, sink in (("_roll", self.rolls), ("_reap_closing", self.reaps)):
            original = getattr(TradingEngine, name)
            self._saved[name] = original
            setattr(TradingEngine, name, self._timed(original, sink))
        return self

    def __exit__(self, *exc: object) -> None:
        for name, original in self._saved.items():
            setattr(TradingEngine, name, original)

    @staticmethod
    def _timed(original: Callable[..., Any], sink: list[float]) -> Callable[..., Any]:
        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                sink.append(time.thread_time() - t0)

        return timed


def measure_rolls(n_symbols: int, days: int, workdir: Path) -> dict[str, Any]:
    """One replay of ``days`` dates; the per-date-change CPU of the engine thread."""
    with RollTimer() as timer:
        figures = throughput.run(n_symbols, days * BARS_PER_DAY, workdir)
    rolls = sorted(timer.rolls)
    # A finished close is reported from the bar loop (cheap); those of the last dates are
    # waited for at the end of the stream, which is no date change: only non-waiting reports
    # inside the stream count, spread over the date changes.
    reaps = sum(timer.reaps)
    per_change = [r * 1e3 for r in rolls]
    return {
        "symbols": n_symbols,
        "days": days,
        "date_changes": len(rolls),
        "roll_ms_median": round(statistics.median(per_change), 3) if rolls else None,
        "roll_ms_p90": round(per_change[int(0.9 * (len(per_change) - 1))], 3) if rolls else None,
        "roll_ms_max": round(max(per_change), 3) if rolls else None,
        "roll_ms_mean": round(statistics.fmean(per_change), 3) if rolls else None,
        "reap_ms_total": round(reaps * 1e3, 1),
        "bars_per_s": figures["bars_per_s"],
        "engine_thread_cpu_s": figures["engine_thread_cpu_s"],
        "cpu_s": figures["cpu_s"],
        "rows_ok": figures["market_data_rows_ok"] and figures["trades_match_stats_ok"],
    }


def compare(bars: int, repeat: int, workdir: Path) -> dict[str, Any]:
    """The 2-symbol and 10-symbol shapes, ``bars`` bars each, interleaved."""
    two: list[float] = []
    ten: list[float] = []
    two_cpu: list[float] = []
    ten_cpu: list[float] = []
    for _ in range(repeat):
        for n, sink, cpu in ((2, two, two_cpu), (10, ten, ten_cpu)):
            figures = throughput.run(n, bars // n, workdir)
            sink.append(figures["bars_per_s"])
            cpu.append(figures["engine_thread_cpu_s"] / figures["bars"] * 1e6)
    return {
        "compare_bars": bars,
        "two_symbols_bars_per_s": two,
        "ten_symbols_bars_per_s": ten,
        "two_over_ten_median": round(statistics.median(two) / statistics.median(ten), 3),
        "two_engine_us_per_bar_median": round(statistics.median(two_cpu), 3),
        "ten_engine_us_per_bar_median": round(statistics.median(ten_cpu), 3),
        "ten_over_two_engine_cpu_per_bar": round(
            statistics.median(ten_cpu) / statistics.median(two_cpu), 3
        ),
    }


def main(argv: list[str]) -> None:
    """CLI of the benchmark."""
    parser = argparse.ArgumentParser(prog="python -m bench date_change")
    parser.add_argument("--symbols", type=int, default=1)
    parser.add_argument("--days", type=int, default=200)
    parser.add_argument("--compare", action="store_true")
    parser.add_argument("--compare-bars", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="argo-bench-"))
    throughput.run(args.symbols, 100, workdir)  # warm-up: imports, file-format setup
    figures = measure_rolls(args.symbols, args.days, workdir)
    if args.compare:
        figures.update(compare(args.compare_bars, args.repeat, workdir))
    figures["target_roll_ms"] = 5.0
    figures["roll_within_target"] = (
        figures["roll_ms_mean"] is not None and figures["roll_ms_mean"] <= 5.0
    )
    rows = [(k, v) for k, v in figures.items() if not isinstance(v, list)]
    report("date_change", rows, figures)
