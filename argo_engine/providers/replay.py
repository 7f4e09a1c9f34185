"""Replay feed: bars from a parquet file with the market_data columns, streamed in batches."""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import repeat
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from argo_engine.clock import Clock, LiveClock
from argo_engine.domain.intervals import parse_interval
from argo_engine.domain.market import Bar
from argo_engine.errors import ConfigurationError
from argo_engine.scratch_db import query_connection

REQUIRED = ("time", "symbol", "open", "high", "low", "close", "volume")
# DuckDB types a price or volume column may have (cast to DOUBLE when read).
_NUMERIC = re.compile(
    r"^(DOUBLE|FLOAT|REAL|DECIMAL\(.*\)|(U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?)|UHUGEINT)$"
)
_BATCH = 50_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ReplayFeed:
    """Replays a market_data-shaped parquet file in (time, symbol) order.

    Rows pass through as they are, bad ones included: the engine validates and rejects them.

    Args:
        path: Parquet file (or glob) with columns time, symbol, open, high, low, close, volume.
        symbols: Keep only these symbols (all when None).
        start: Keep bars at or after this time.
        end: Keep bars before this time.
        pace: ``fast`` or ``realtime`` (wait the gap between distinct bar times).
        interval: Used for pacing when given (one interval per distinct time).
        clock: Clock for pacing.
        bars: Keep at most this many bars per symbol (the first ones).

    Raises:
        ConfigurationError: If the file is missing, unreadable or lacks columns.
    """

    def __init__(
        self,
        *,
        path: Path,
        symbols: Sequence[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        pace: Literal["fast", "realtime"] = "fast",
        interval: str | None = None,
        clock: Clock | None = None,
        bars: int | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise ConfigurationError(f"replay file {self.path} does not exist", field="replay_file")
        self.symbols = list(symbols) if symbols else None
        self.start = start
        self.end = end
        self.bars = bars
        self.pace = pace
        self.step_s = parse_interval(interval).total_seconds() if interval else None
        self.clock = clock or LiveClock()
        con = query_connection()
        try:
            types = {r[0]: str(r[1]) for r in con.execute(
                "DESCRIBE SELECT * FROM read_parquet(?)", [str(self.path)]
            ).fetchall()}  # fmt: skip
        except duckdb.Error as exc:
            raise ConfigurationError(
                f"replay file {self.path} is not readable parquet: {exc}", field="replay_file"
            ) from exc
        finally:
            con.close()
        missing = [c for c in REQUIRED if c not in types]
        if missing:
            raise ConfigurationError(
                f"replay file {self.path} lacks column(s) {', '.join(missing)}",
                field="replay_file",
            )
        # Text is never read as a price or a time: "101.5" or "1e3" parsed quietly would
        # trade on numbers nobody checked. Such a file is refused with the column named.
        for name in REQUIRED[2:]:
            if not _NUMERIC.match(types[name]):
                raise ConfigurationError(
                    f"replay file {self.path}: column {name} is {types[name]}, not a number "
                    "(text prices are not converted; store it as DOUBLE)",
                    field="replay_file",
                )
        if not types["time"].startswith(("TIMESTAMP", "DATE")):
            raise ConfigurationError(
                f"replay file {self.path}: column time is {types['time']}, not a timestamp "
                "(store it as TIMESTAMP, UTC)",
                field="replay_file",
            )
        self._in_order = _in_time_symbol_order(self.path)
        # Set by resume_after: the next stream starts after this time (UTC, naive).
        self._after: datetime | None = None

    def resume_after(self, last: Mapping[str, Bar]) -> None:
        """Start the next stream after the stored bars instead of at the file's start.

        The stream then reads only the rows after the earliest of the symbols' last stored
        bars (a filter DuckDB pushes into the file scan): a session resumed on its 140th date
        no longer decodes 139 days of rows for the engine to skip. Rows without a time are
        kept, as in every stream (the engine rejects them). Without a stored bar for each of
        the feed's symbols (or with no symbol list) the stream starts at the beginning.

        Args:
            last: The last stored bar per symbol.
        """
        times = [last[s].time for s in self.symbols or [] if s in last]
        if not self.symbols or len(times) < len(self.symbols) or None in times:
            self._after = None
            return
        self._after = min(times).astimezone(UTC).replace(tzinfo=None)

    def _query(
        self, symbol: str | None = None, *, bounded: bool = True, resumed: bool = False
    ) -> tuple[str, list[object]]:
        where = []
        params: list[object] = [str(self.path)]
        symbols = [symbol] if symbol else self.symbols
        # The stream keeps rows whose symbol or time is null: a filter would drop them
        # unseen, while the engine rejects each one as a bad bar, logged and counted.
        keep_null = "" if symbol else "{} IS NULL OR "
        if symbols:
            # A list test, not ``IN (SELECT unnest(?))``: that plans a semi join whose
            # parallel probe hands a multi-row-group file's rows out of file order, and the
            # unsorted stream of an ordered file relies on file order.
            where.append(f"({keep_null.format('symbol')}list_contains(?::VARCHAR[], symbol))")
            params.append(symbols)
        if self.start is not None:
            where.append(f"({keep_null.format('time')}time >= ?)")
            params.append(self.start.astimezone(UTC).replace(tzinfo=None))
        if self.end is not None:
            where.append(f"({keep_null.format('time')}time < ?)")
            params.append(self.end.astimezone(UTC).replace(tzinfo=None))
        sql = (
            # Epoch microseconds: one datetime per distinct time (shared by every symbol's bar)
            # instead of one converted per row.
            "SELECT epoch_us(CAST(time AS TIMESTAMP)) AS time, symbol, "
            + ", ".join(f"CAST({c} AS DOUBLE) AS {c}" for c in REQUIRED[2:])
            + " FROM read_parquet(?)"
            + (" WHERE " + " AND ".join(where) if where else "")
        )
        after = self._after if resumed else None
        if self.bars is not None and bounded:
            # The first ``bars`` bars of each symbol; the window loses file order. A resumed
            # stream cuts after the window, which counts from the file's start.
            sql += " QUALIFY row_number() OVER (PARTITION BY symbol ORDER BY time) <= ?"
            params.append(self.bars)
            if after is not None:
                sql = f"SELECT * FROM ({sql}) WHERE time IS NULL OR time > ?"
                params.append((after - _EPOCH.replace(tzinfo=None)) // timedelta(microseconds=1))
            return sql + " ORDER BY time, symbol", params
        if after is not None:
            # Pushed into the scan: row groups wholly before it are not read.
            sql += (" AND " if where else " WHERE ") + "(time IS NULL OR time > ?)"
            params.append(after)
        # A file already in (time, symbol) order is streamed in file order (DuckDB keeps
        # insertion order): sorting a million rows costs ~0.4 s before the first bar.
        return sql + ("" if self._in_order else " ORDER BY time, symbol"), params

    def _rows(
        self, sql: str, params: list[object], stop: threading.Event | None = None
    ) -> Iterator[Bar]:
        con = query_connection()
        try:
            reader = con.sql(sql, params=params).to_arrow_reader(_BATCH)
            assert reader is not None  # a SELECT always has a result
            for batch in reader:
                if stop is not None and stop.is_set():
                    return
                columns = batch.columns
                us, *prices = (columns[i].to_pylist() for i in (0, 2, 3, 4, 5, 6))
                symbol = _symbols(columns[1])
                # One datetime per distinct time, shared by the bars of every symbol.
                times = dict.fromkeys(us)
                for key in times:
                    times[key] = None if key is None else _EPOCH + timedelta(microseconds=key)
                # The bars of a batch are built by C loops (map over zip; a Bar is a named
                # tuple, built without its Python __new__): decoding was ~10% of a replay.
                yield from map(
                    tuple.__new__,
                    repeat(Bar),
                    zip(symbol, map(times.__getitem__, us), *prices, strict=True),
                )
        finally:
            con.close()

    def stream(self, stop: threading.Event) -> Iterator[Bar]:
        """Yield the file's bars in time order (after the stored ones: :meth:`resume_after`)."""
        sql, params = self._query(resumed=True)
        if self.pace == "fast":
            # No per-bar work here: the consumer checks ``stop`` before each bar it takes,
            # and this feed checks it before each batch it decodes.
            yield from self._rows(sql, params, stop)
            return
        previous: datetime | None = None
        for bar in self._rows(sql, params):
            if stop.is_set():
                return
            if bar.time is None:
                yield bar  # rejected by the engine; nothing to pace by
                continue
            if previous is not None and bar.time != previous:
                gap = self.step_s or (bar.time - previous).total_seconds()
                if self.clock.wait(gap, stop):
                    return
            previous = bar.time
            yield bar

    def history(self, symbol: str, start: datetime, end: datetime) -> list[Bar]:
        """Bars of ``symbol`` within [start, end)."""
        sql, params = self._query(symbol, bounded=False)
        # A bar without a time belongs to no window (the stream hands it to the engine,
        # which rejects it).
        return [b for b in self._rows(sql, params) if b.time is not None and start <= b.time < end]

    def close(self) -> None:
        """Nothing to release."""


def _is_text(arrow_type: pa.DataType) -> bool:
    return bool(pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type))


def _symbols(column: pa.Array) -> list[str | None] | Iterator[str]:
    """A batch's symbols as Python strings, one (interned) object per distinct symbol.

    Cheaper than a new string per row, and the engine's many per-symbol dict lookups then
    find the very key object (no hashing, no comparison of characters).
    """
    if column.null_count or not _is_text(column.type):
        return column.to_pylist()  # type: ignore[no-any-return]
    encoded = column.dictionary_encode()
    names = [sys.intern(name) for name in encoded.dictionary.to_pylist()]
    return map(names.__getitem__, encoded.indices.to_pylist())


def _in_time_symbol_order(path: Path) -> bool:
    """Whether a parquet file's rows are in strictly increasing (time, symbol) order.

    Checked on the two key columns with vectorized Arrow kernels (tens of milliseconds for a
    million rows). Anything unusual (a glob, nulls, a time column that is not a timestamp,
    equal keys) answers False, and the query sorts as before.
    """
    if not path.is_file():
        return False
    try:
        table = pq.read_table(path, columns=["time", "symbol"])
    except (pa.ArrowException, OSError):
        return False
    time, symbol = table.column("time"), table.column("symbol")
    if not pa.types.is_timestamp(time.type) or not _is_text(symbol.type):
        return False
    if time.null_count or symbol.null_count:
        return False
    n = len(table)
    if n < 2:
        return True
    t = pc.cast(time.combine_chunks(), pa.int64())
    s = symbol.combine_chunks()
    t0, t1, s0, s1 = t.slice(0, n - 1), t.slice(1), s.slice(0, n - 1), s.slice(1)
    ordered = pc.or_(pc.less(t0, t1), pc.and_(pc.equal(t0, t1), pc.less(s0, s1)))
    return bool(pc.all(ordered).as_py())
