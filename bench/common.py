"""Shared helpers of the benchmarks: data generation, RSS, table + JSON output."""

from __future__ import annotations

import json
import os
import platform
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from argo_engine.providers.synthetic import SyntheticFeed

START = datetime(2025, 10, 1, tzinfo=UTC)


def rss_mb() -> float:
    """Resident set size of this process in MB."""
    return psutil.Process().memory_info().rss / 1e6


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (Linux ru_maxrss is in KB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def symbols(n: int) -> list[str]:
    """``n`` synthetic symbol names."""
    return [f"SYM{i:02d}USDT" for i in range(n)]


def replay_file(
    folder: Path, n_symbols: int, bars_per_symbol: int, seed: int = 42, interval: str = "1m"
) -> Path:
    """A market_data parquet file of synthetic bars (cached by shape)."""
    suffix = "" if interval == "1m" else f"-{interval}"
    path = folder / f"replay-{n_symbols}x{bars_per_symbol}-{seed}{suffix}.parquet"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    feed = SyntheticFeed(
        symbols=symbols(n_symbols), interval=interval, start=START, bars=bars_per_symbol, seed=seed
    )
    cols: dict[str, list[Any]] = {k: [] for k in ("time", "symbol", "open", "high", "low",
                                                  "close", "volume")}  # fmt: skip
    for b in feed.stream(threading.Event()):
        cols["time"].append(b.time.replace(tzinfo=None))
        cols["symbol"].append(b.symbol)
        cols["open"].append(b.open)
        cols["high"].append(b.high)
        cols["low"].append(b.low)
        cols["close"].append(b.close)
        cols["volume"].append(b.volume)
    table = pa.table({**cols, "time": pa.array(cols["time"], pa.timestamp("us"))})
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }


def report(title: str, rows: list[tuple[str, Any]], figures: dict[str, Any]) -> None:
    """Print a table, then the figures as one JSON object on the last line."""
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, f"{value:,.2f}" if isinstance(value, float) else str(value))
    Console(stderr=False).print(table)
    print(json.dumps({"benchmark": title, **figures, "machine": machine()}))
