"""Builders shared by the engine tests."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from argo_engine.domain.market import Bar


def wave_bars(
    symbols: Sequence[str],
    start: datetime,
    n: int,
    step: timedelta = timedelta(minutes=1),
    period: int = 60,
    amplitude: float = 0.05,
) -> list[Bar]:
    """Deterministic oscillating closes (O=H=L=C) that make RSI(14) cross 30 and 70."""
    bars = []
    for i in range(n):
        for k, symbol in enumerate(symbols):
            base = 100.0 * (k + 1)
            close = base * (1 + amplitude * math.sin(2 * math.pi * (i + 7 * k) / period))
            close = round(close + 0.01 * ((i * 7919 + k * 31) % 13 - 6), 6)
            bars.append(Bar(symbol, start + i * step, close, close, close, close, 1.0 + i % 5))
    return bars


def write_replay(path: Path, bars: Sequence[Bar]) -> Path:
    """Write bars as a market_data-shaped parquet file for the replay feed."""
    table = pa.table(
        {
            "time": pa.array([b.time.replace(tzinfo=None) for b in bars], pa.timestamp("us")),
            "symbol": [b.symbol for b in bars],
            "open": [b.open for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
            "close": [b.close for b in bars],
            "volume": [b.volume for b in bars],
        }
    )
    pq.write_table(table, path)
    return path


def rows(path: Path, sql: str = "SELECT * FROM t") -> list[dict[str, Any]]:
    """Rows of a parquet file through DuckDB (as an external reader would)."""
    con = duckdb.connect()
    try:
        rel = con.execute(sql.replace("FROM t", f"FROM read_parquet('{path}')"))
        cols = [d[0] for d in rel.description]
        return [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]
    finally:
        con.close()


def session_rows(out: Path, table: str) -> list[tuple[Any, ...]]:
    """Every row of one table across all dates and runs of a data output path, sorted."""
    con = duckdb.connect()
    try:
        return con.execute(
            f"SELECT * FROM read_parquet('{out}/*/run_*/{table}.parquet') ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]
