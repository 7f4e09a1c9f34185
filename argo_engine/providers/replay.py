"""Replay feed: bars from a parquet file with the market_data columns, streamed in batches."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import duckdb

from argo_engine.clock import Clock, LiveClock
from argo_engine.domain.intervals import parse_interval
from argo_engine.domain.market import Bar
from argo_engine.errors import ConfigurationError

REQUIRED = ("time", "symbol", "open", "high", "low", "close", "volume")
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
    ) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise ConfigurationError(f"replay file {self.path} does not exist", field="replay_file")
        self.symbols = list(symbols) if symbols else None
        self.start = start
        self.end = end
        self.pace = pace
        self.step_s = parse_interval(interval).total_seconds() if interval else None
        self.clock = clock or LiveClock()
        con = duckdb.connect()
        try:
            cols = [r[0] for r in con.execute(
                "DESCRIBE SELECT * FROM read_parquet(?)", [str(self.path)]
            ).fetchall()]  # fmt: skip
        except duckdb.Error as exc:
            raise ConfigurationError(
                f"replay file {self.path} is not readable parquet: {exc}", field="replay_file"
            ) from exc
        finally:
            con.close()
        missing = [c for c in REQUIRED if c not in cols]
        if missing:
            raise ConfigurationError(
                f"replay file {self.path} lacks column(s) {', '.join(missing)}",
                field="replay_file",
            )

    def _query(self, symbol: str | None = None) -> tuple[str, list[object]]:
        where = []
        params: list[object] = [str(self.path)]
        symbols = [symbol] if symbol else self.symbols
        if symbols:
            where.append("symbol IN (SELECT unnest(?))")
            params.append(symbols)
        if self.start is not None:
            where.append("time >= ?")
            params.append(self.start.astimezone(UTC).replace(tzinfo=None))
        if self.end is not None:
            where.append("time < ?")
            params.append(self.end.astimezone(UTC).replace(tzinfo=None))
        sql = (
            # Epoch microseconds: one datetime per distinct time (shared by every symbol's bar)
            # instead of one converted per row.
            "SELECT epoch_us(CAST(time AS TIMESTAMP)) AS time, symbol, "
            + ", ".join(f"CAST({c} AS DOUBLE) AS {c}" for c in REQUIRED[2:])
            + " FROM read_parquet(?)"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY time, symbol"
        )
        return sql, params

    def _rows(
        self, sql: str, params: list[object], stop: threading.Event | None = None
    ) -> Iterator[Bar]:
        con = duckdb.connect()
        try:
            reader = con.sql(sql, params=params).to_arrow_reader(_BATCH)
            assert reader is not None  # a SELECT always has a result
            last_us: int | None = None
            time: datetime | None = None
            new = tuple.__new__  # Bar is a named tuple: build it without its Python __new__
            for batch in reader:
                if stop is not None and stop.is_set():
                    return
                columns = [column.to_pylist() for column in batch.columns]
                for us, s, o, h, lo, c, v in zip(*columns, strict=True):
                    if us != last_us:
                        # One datetime per distinct time, shared by the bars of every symbol.
                        last_us = us
                        time = None if us is None else _EPOCH + timedelta(microseconds=us)
                    yield new(Bar, (s, time, o, h, lo, c, v))
        finally:
            con.close()

    def stream(self, stop: threading.Event) -> Iterator[Bar]:
        """Yield the file's bars in time order."""
        sql, params = self._query()
        if self.pace == "fast":
            # No per-bar work here: the consumer checks ``stop`` before each bar it takes,
            # and this feed checks it before each batch it decodes.
            yield from self._rows(sql, params, stop)
            return
        previous: datetime | None = None
        for bar in self._rows(sql, params):
            if stop.is_set():
                return
            if previous is not None and bar.time != previous:
                gap = self.step_s or (bar.time - previous).total_seconds()
                if self.clock.wait(gap, stop):
                    return
            previous = bar.time
            yield bar

    def history(self, symbol: str, start: datetime, end: datetime) -> list[Bar]:
        """Bars of ``symbol`` within [start, end)."""
        sql, params = self._query(symbol)
        return [b for b in self._rows(sql, params) if start <= b.time < end]

    def close(self) -> None:
        """Nothing to release."""
