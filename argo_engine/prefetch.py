"""Prefetch: warm-up history before streaming, downloading only what is not stored yet.

Bars already stored by earlier runs and days of the same data output
(``*/run_*/market_data.parquet``) and by earlier prefetches (``.prefetch/``) are used first;
only the missing stretches are requested from the feed. Downloads are merged into
``{data_output}/.prefetch/{symbol}-{interval}.parquet`` atomically: a failed download never
touches what is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from argo_engine.domain.intervals import next_open, open_of
from argo_engine.domain.market import Bar
from argo_engine.persistence.files import atomic_write_with
from argo_engine.ports import MarketDataFeed

log = logging.getLogger(__name__)

PREFETCH_DIR = ".prefetch"


def stored_files(data_output: Path) -> list[str]:
    """Every market-data file of the data output: run folders and the prefetch cache."""
    files = sorted(str(p) for p in data_output.glob("*/run_*/market_data.parquet"))
    files += sorted(str(p) for p in (data_output / PREFETCH_DIR).glob("*.parquet"))
    return files


def _stored_times(data_output: Path, symbol: str, start: datetime, end: datetime) -> set[datetime]:
    files = stored_files(data_output)
    if not files:
        return set()
    con = duckdb.connect()
    try:
        rows = con.execute(
            "SELECT DISTINCT time FROM read_parquet(?, union_by_name = true) "
            "WHERE symbol = ? AND time >= ? AND time < ?",
            [files, symbol, _naive(start), _naive(end)],
        ).fetchall()
    except duckdb.Error as exc:
        log.warning("stored market data unreadable for prefetch: %s", exc)
        return set()
    finally:
        con.close()
    return {t.replace(tzinfo=UTC) for (t,) in rows}


def _naive(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None)


def _count_opens(start: datetime, end: datetime, interval: str) -> int:
    count, t = 0, start
    while t < end:
        count += 1
        t = next_open(t, interval)
    return count


def missing_ranges(
    have: set[datetime], start: datetime, end: datetime, interval: str
) -> list[tuple[datetime, datetime]]:
    """Contiguous [lo, hi) stretches of bar times in [start, end) that are not in ``have``.

    ``start`` is a kline open of ``interval``; the following opens are stepped as Binance
    does (calendar months for ``1M``).
    """
    ranges: list[tuple[datetime, datetime]] = []
    t = start
    lo: datetime | None = None
    while t < end:
        if t in have:
            if lo is not None:
                ranges.append((lo, t))
                lo = None
        elif lo is None:
            lo = t
        t = next_open(t, interval)
    if lo is not None:
        ranges.append((lo, end))
    return ranges


def _merge_into_cache(data_output: Path, symbol: str, interval: str, bars: list[Bar]) -> None:
    folder = data_output / PREFETCH_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{symbol}-{interval}.parquet"
    new = pa.table(
        {
            "time": pa.array([_naive(b.time) for b in bars], pa.timestamp("us")),
            "symbol": [b.symbol for b in bars],
            "open": [b.open for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
            "close": [b.close for b in bars],
            "volume": [b.volume for b in bars],
        }
    )
    con = duckdb.connect()
    try:
        con.register("new_bars", new)
        source = "SELECT * FROM new_bars"
        if path.exists():
            source += f" UNION ALL SELECT * FROM read_parquet('{path}')"

        def produce(tmp: Path) -> None:
            con.execute(
                f"COPY (SELECT DISTINCT ON (symbol, time) * FROM ({source}) ORDER BY time) "
                f"TO '{tmp}' (FORMAT PARQUET)"
            )

        atomic_write_with(path, produce)
    finally:
        con.close()


def prefetch(
    data_output: Path,
    feed: MarketDataFeed,
    symbols: Sequence[str],
    interval: str,
    until: datetime,
    days: int,
    on_progress: Callable[[str, int, int], object] | None = None,
) -> dict[str, int]:
    """Make ``days`` of bars before ``until`` available locally; download only the gaps.

    Returns:
        Bars downloaded per symbol.
    """
    # The still-open kline (the one containing ``until``) is never downloaded.
    end = open_of(until, interval)
    start = open_of(end - timedelta(days=days), interval)
    expected = _count_opens(start, end, interval)
    downloaded: dict[str, int] = {}
    for symbol in symbols:
        have = _stored_times(data_output, symbol, start, end)
        got: list[Bar] = []
        if on_progress is not None:
            on_progress(symbol, len(have), expected)
        for lo, hi in missing_ranges(have, start, end, interval):
            got.extend(feed.history(symbol, lo, hi))
            if on_progress is not None:
                on_progress(symbol, min(expected, len(have) + len(got)), expected)
        if got:
            _merge_into_cache(data_output, symbol, interval, got)
        downloaded[symbol] = len(got)
    return downloaded
