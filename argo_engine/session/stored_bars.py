"""Reading stored market data back: the last bars before a time, for indicator warm-up."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from argo_engine.domain.market import Bar
from argo_engine.persistence.parquet_append import ParquetAppendError, check_file, read_footer
from argo_engine.scratch_db import query_connection

# The logger keeps the name it had before the session module became a package, so that log
# lines (the CLI prints the logger's name) read as they did.
log = logging.getLogger("argo_engine.session")


def stored_bars(data_output: Path, symbols: list[str], before: datetime, n: int) -> list[Bar]:
    """The last ``n`` stored bars per symbol strictly before ``before``, oldest first.

    Reads every ``*/run_*/market_data.parquet`` under ``data_output`` (all sessions: market data
    is market data) and deduplicates on (symbol, time). A file that cannot be read, or one
    that gave rows but whose bytes differ from the checksums in its footer (damaged bytes can
    decode as wrong bars), is left out and logged; ``argo verify`` names it too.
    """
    from argo_engine.prefetch import stored_files

    everything = stored_files(data_output)
    if not everything or n <= 0:
        return []
    # Read the newest trading dates first and widen only while a symbol lacks bars: a date's
    # bars are all older than the next date's, so the newest dates that give n bars per
    # symbol hold the last n. Reading every date of the data output made each warm-up (one
    # per trading date under Prefect) cost more the longer the session had run.
    dated: dict[str, list[str]] = {}
    undated: list[str] = []
    for f in everything:
        day = Path(f).parent.parent.name
        try:
            # A day of slack above: a trading date can start before midnight UTC.
            keep = date.fromisoformat(day) <= (before + timedelta(days=1)).date()
        except ValueError:
            undated.append(f)  # the prefetch cache: history of any date
            continue
        if keep:
            dated.setdefault(day, []).append(f)
    days = sorted(dated, reverse=True)
    span = 2
    while True:
        files = [f for d in days[:span] for f in dated[d]] + undated
        rows = _checked_last_bars(files, symbols, before, n) if files else []
        counts: dict[str, int] = {}
        for row in rows:
            counts[str(row[1])] = counts.get(str(row[1]), 0) + 1
        if span >= len(days) or all(counts.get(s, 0) >= n for s in symbols):
            break
        span *= 2
    return [
        Bar(sym, t.replace(tzinfo=UTC), float(o), float(h), float(lo), float(c), float(v))
        for t, sym, o, h, lo, c, v, _ in rows
    ]


def _checked_last_bars(
    files: list[str], symbols: list[str], before: datetime, n: int
) -> list[tuple[Any, ...]]:
    """:func:`_last_bars` over ``files``, leaving out unreadable and damaged ones (logged)."""
    checked: set[str] = set()
    while True:
        try:
            rows = _last_bars(files, symbols, before, n)
        except duckdb.Error as exc:
            # One unreadable file fails the whole query: find it (footers only) and retry.
            bad = [f for f in files if f not in checked and _unreadable_footer(Path(f))]
            if not bad:
                log.warning("could not read stored bars for warm-up: %s", exc)
                return []
        else:
            used = sorted({str(r[-1]) for r in rows} - checked)
            bad = [f for f in used if _damaged(Path(f))]
            checked.update(used)
            if not bad:
                break
        for path in bad:
            log.error("stored market data left out of the warm-up: %s is damaged", path)
        files = [f for f in files if f not in bad]
        if not files:
            return []
    return rows


def _last_bars(
    files: list[str], symbols: list[str], before: datetime, n: int
) -> list[tuple[Any, ...]]:
    con = query_connection()
    try:
        return con.execute(
            """
            WITH bars AS (
                SELECT DISTINCT ON (symbol, time)
                    time, symbol, open, high, low, close, volume, filename
                FROM read_parquet(?, union_by_name = true, filename = true)
                WHERE symbol IN (SELECT unnest(?)) AND time < ?
            )
            SELECT * FROM bars
            QUALIFY row_number() OVER (PARTITION BY symbol ORDER BY time DESC) <= ?
            ORDER BY time, symbol
            """,
            [files, symbols, before.astimezone(UTC).replace(tzinfo=None), n],
        ).fetchall()
    finally:
        con.close()


def _unreadable_footer(path: Path) -> bool:
    try:
        read_footer(path)
    except (ParquetAppendError, OSError):
        return True
    return False


def _damaged(path: Path) -> bool:
    try:
        return check_file(path) is not None
    except (ParquetAppendError, OSError):
        return True
