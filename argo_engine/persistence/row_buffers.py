"""Appending rows: the writers' per-table buffers and their journal lines (the hot path).

``append_*`` builds a tuple in schema column order and buffers it in Python (O(1)). Orders and
fills are by default also written to the journal and fsynced before the call returns; bars,
marks and logs reach the journal in batches (``_journal_buffered``, at the next flush). Bars,
orders and fills share ``.journal/durable.jsonl``: their lines are encoded in append order
(``_wal_chunks``), so any prefix of the file is a state the engine went through. Buffered rows
enter DuckDB in one batch per table (``_load_rows``) when a flush or a query takes them, or
early when a table holds ``_SPILL_ROWS`` (``_spill``).

``_RowBuffers`` is the part of :class:`~argo_engine.persistence.writers.RunWriters` that does
this (RunWriters derives from it; the state is the writer's, set by its constructor).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa

from argo_engine.domain import Bar, Fill, LogEntry, Mark, Order
from argo_engine.errors import ConfigurationError, DataError
from argo_engine.persistence.journal import Journal
from argo_engine.persistence.table_encoding import _EPOCH, _ONE_US, Row, _opt_us, _Table, _us

# Stands for "no bar yet" in RunWriters._bar_time (compared by identity; never a bar's time).
_NO_TIME = datetime(1, 1, 1, tzinfo=UTC)
_NO_TIME_US = (_NO_TIME - _EPOCH) // _ONE_US

# Rows buffered in Python before they are pushed into DuckDB and the journal's OS buffer even
# though no flush is due (e.g. a bulk load between two maybe_flush calls): bounds memory.
_SPILL_ROWS = 50_000
# Buffered bars that make a flush due before its interval (a fast replay within one date).
_EARLY_FLUSH_ROWS = 20_000

_BATCH = "_argo_batch"


class _RowBuffers(ABC):
    """Appends, journal buffering and loading rows into DuckDB of :class:`RunWriters`."""

    # The writer's state these methods share (set by RunWriters.__init__).
    folder: Path
    next_flush_at: float
    _closed: bool
    _tables: dict[str, _Table]
    _md: _Table
    _orders: _Table
    _trades: _Table
    _marks: _Table
    _logs: _Table
    _bar_last: dict[str, int]
    _bar_time: datetime
    _bar_us: int
    _order_ids: set[str]
    _trade_ids: set[str]
    _max_id: dict[str, int]
    _next_id: dict[str, int]
    _wal: Journal
    _wal_chunks: list[bytes]
    _con: duckdb.DuckDBPyConnection
    _stranded: list[tuple[_Table, list[Row], bool]]

    @abstractmethod
    def wait(self) -> None:
        """Block until the background flush (if any) has finished."""

    def append_bar(self, bar: Bar) -> None:
        """Buffer one bar; it is durable after the next due :meth:`maybe_flush`.

        A bar with a (symbol, time) already stored replaces the stored one.

        Raises:
            DataError: If ``bar.time`` is not timezone-aware.
            RuntimeError: After :meth:`close`.
        """
        if self._closed:
            raise RuntimeError(f"the writers of {self.folder} are closed")
        symbol, when, o, h, lo, c, v = bar
        if when is self._bar_time:
            t = self._bar_us  # the bars of one time (one per symbol) often share the object
        else:
            try:
                t = (when - _EPOCH) // _ONE_US
            except TypeError as exc:
                raise DataError(f"bar time {when!r} must be timezone-aware (UTC)") from exc
            self._bar_time, self._bar_us = when, t
        table = self._md
        last = self._bar_last.get(symbol)
        if last is None or t > last:
            self._bar_last[symbol] = t
        else:
            table.replace = True
        row = (t, symbol, o, h, lo, c, v)
        pending = table.pending
        pending.append(row)
        table.unjournaled.append(row)
        table.changed = True
        if len(pending) >= _EARLY_FLUSH_ROWS:
            # Hand many rows to the flusher before they would have to spill inline.
            self.next_flush_at = -math.inf
            if len(pending) >= _SPILL_ROWS:
                self._spill(table)

    def append_order(self, order: Order, *, durable: bool = True, sync: bool = True) -> None:
        """Record an order's latest state (one row per order_id); durable when this returns.

        Args:
            order: The order snapshot.
            durable: False to buffer the row like a bar: it is journaled (in order) and
                fsynced with the next flush or sync instead of costing an fsync of its own.
                For status changes that other durable rows already imply (an order FILLED by
                a journaled fill), and for orders nothing outside this process knows of (a
                paper broker's).
            sync: False to write the row to the journal now (it survives the process) but
                leave the fsync to the next durable row or :meth:`sync_durable` (one fsync for
                an order and its outcome).

        Raises:
            PersistenceError: If the journal cannot be written.
        """
        self._check_open()
        when = order.timestamp
        row: Row = (
            str(order.order_id),
            str(order.symbol),
            str(order.side),
            str(order.order_type),
            float(order.quantity),
            float(order.price),
            self._bar_us if when is self._bar_time else _us(when),  # mostly the bar's time
            str(order.status),
            str(order.strategy_name),
            str(order.position_type),
            str(order.reason),
            str(order.message),
        )
        if order.order_id in self._order_ids:
            self._orders.replace = True
        else:
            self._order_ids.add(order.order_id)
        if durable:
            self._append_durable(self._orders, row, sync=sync)
        else:
            self._buffer(self._orders, row)

    def append_fill(self, fill: Fill, *, durable: bool = True) -> None:
        """Record one fill (one row per trade_id); durable when this returns.

        Args:
            fill: The fill.
            durable: False to buffer the row like a bar instead: it is journaled (in order,
                after the bars and orders before it) and fsynced by the next flush or
                :meth:`sync_durable`. For fills that nothing outside this process knows of
                (a paper broker's), whose loss with the bars before them is a clean prefix.

        Raises:
            PersistenceError: If the journal cannot be written.
        """
        self._check_open()
        placed, executed, bar_time = fill.timestamp, fill.executed_at, self._bar_time
        row: Row = (
            str(fill.order_id),
            str(fill.symbol),
            str(fill.side),
            float(fill.quantity),
            float(fill.price),
            self._bar_us if placed is bar_time else _us(placed),  # mostly the bar's time
            self._bar_us if executed is bar_time else _us(executed),
            float(fill.executed_qty),
            float(fill.executed_price),
            float(fill.commission),
            float(fill.pnl),
            str(fill.position_type),
            str(fill.trade_id),
            str(fill.commission_asset),
            float(fill.base_commission),
        )
        if fill.trade_id in self._trade_ids:
            self._trades.replace = True
        else:
            self._trade_ids.add(fill.trade_id)
        if durable:
            self._append_durable(self._trades, row)
        else:
            self._buffer(self._trades, row)

    def append_mark(self, mark: Mark) -> None:
        """Buffer one chart mark (id from :meth:`next_id`); durable after the next due flush."""
        self._check_open()
        row: Row = (
            int(mark.id),
            str(mark.market_data_id),
            mark.signal_type,
            mark.signal_name,
            self._bar_us if mark.signal_time is self._bar_time else _opt_us(mark.signal_time),
            mark.signal_symbol,
            str(mark.color),
            str(mark.shape),
            str(mark.level),
            str(mark.title),
            str(mark.message),
            str(mark.category),
        )
        self._append_with_id(self._marks, row)

    def append_log(self, entry: LogEntry) -> None:
        """Buffer one log entry (id from :meth:`next_id`); durable after the next due flush.

        ``fields`` is stored as a JSON object text, or ``""`` when there are no fields (as the
        argo original writes it).
        """
        self._check_open()
        fields = orjson.dumps(entry.fields).decode() if entry.fields else ""
        row: Row = (
            int(entry.id),
            self._bar_us if entry.timestamp is self._bar_time else _us(entry.timestamp),
            str(entry.symbol),
            str(entry.level),
            str(entry.message),
            fields,
        )
        self._append_with_id(self._logs, row)

    def next_id(self, table: str) -> int:
        """Reserve the next id of ``marks`` or ``logs``.

        Ids start at 1, are never handed out twice by one writer, and continue after the
        highest stored id when a folder is reopened.

        Raises:
            ConfigurationError: For any other table.
        """
        if table not in self._next_id:
            raise ConfigurationError(
                f"next_id is only defined for marks and logs, not {table!r}", table=table
            )
        value = max(self._next_id[table], self._max_id[table] + 1)
        self._next_id[table] = value + 1
        return value

    @property
    def awaiting_fsync(self) -> bool:
        """Whether bars, orders or fills were written to the journal without an fsync yet."""
        return self._wal.unsynced

    def sync_durable(self) -> None:
        """Make every appended bar, order and fill durable now (one fsync).

        Raises:
            PersistenceError: If the journal cannot be written.
        """
        self._check_open()
        self._write_shared(b"")
        self._wal.sync()

    def _encode_unjournaled(self) -> bytes:
        # Rows of the shared tables waiting in ``unjournaled`` (since the last chunk: bars, and
        # orders and fills appended before this writer buffered chunks).
        data = b""
        for table in (self._md, self._orders, self._trades):
            if table.unjournaled:
                data += table.encode(table.unjournaled)
                table.unjournaled = []
        return data

    def _encode_shared(self) -> bytes:
        # Buffered rows of the shared tables in append order: the chunks of _buffer, then
        # what was appended after the last of them.
        data = b"".join(self._wal_chunks) + self._encode_unjournaled()
        self._wal_chunks = []
        return data

    def _write_shared(self, tail: bytes) -> None:
        # Everything buffered, then ``tail``: one write, in append order, so that any prefix
        # of the file (a torn write) is a state the engine actually went through.
        data = self._encode_shared() + tail
        if data:
            self._wal.write(data)

    def _journal_buffered(self) -> None:
        """Write every buffered row to its journal (no fsync)."""
        self._write_shared(b"")
        for table in (self._marks, self._logs):
            if table.unjournaled:
                table.journal.write(table.encode(table.unjournaled))
                table.unjournaled = []

    def _append_durable(self, table: _Table, row: Row, *, sync: bool = True) -> None:
        # Orders and fills never wait in ``unjournaled``: each is fsynced before returning, and
        # the bars they were decided on are made durable first (a restart must never re-run a
        # bar that already produced an order).
        # One write and one fsync of the shared journal.
        self._write_shared(table.encode([row]))
        if sync:
            self._wal.sync()
        table.pending.append(row)
        table.changed = True

    def _buffer(self, table: _Table, row: Row) -> None:
        # An order or fill that waits for the next flush, like a bar: encoded now behind the
        # bars before it, so the journal keeps the order in which things happened.
        self._wal_chunks.append(self._encode_unjournaled() + table.encode([row]))
        table.pending.append(row)
        table.changed = True

    def _append_with_id(self, table: _Table, row: Row) -> None:
        name = table.schema.name
        row_id = row[0]
        assert isinstance(row_id, int)
        if row_id > self._max_id[name]:
            self._max_id[name] = row_id
        else:
            table.replace = True
        table.pending.append(row)
        table.unjournaled.append(row)
        table.changed = True
        if len(table.pending) >= _SPILL_ROWS:
            self._spill(table)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the writers of {self.folder} are closed")

    def _spill(self, table: _Table) -> None:
        # Engine thread, between flushes: bound the rows held in Python.
        self.wait()
        self._journal_buffered()
        self._load(table)

    def _load(self, table: _Table) -> None:
        """Engine thread, flusher idle: insert the buffered rows of ``table`` into DuckDB."""
        rows, replace = table.pending, table.replace
        table.pending = []
        table.replace = False
        if table.changed:
            table.changed = False
            table.unwritten = True
        try:
            self._load_rows(table, rows, replace)
        except BaseException:
            self._stranded = [(table, rows, replace)]
            self._restore_stranded()
            raise

    def _load_rows(self, table: _Table, rows: list[Row], replace: bool) -> None:
        """Insert ``rows`` into the DuckDB table in one batch (later rows win by key)."""
        if not rows:
            return
        if replace:
            # Later rows win within the batch; DuckDB then swaps out the stored ones.
            rows = list({table.key_of(r): r for r in rows}.values())
        batch = pa.Table.from_struct_array(pa.array(rows, type=table.arrow_type))
        con = self._con
        table.loaded = True
        con.register(_BATCH, batch)
        try:
            if replace:
                con.execute("BEGIN TRANSACTION")
                try:
                    con.execute(
                        f"DELETE FROM {table.name} t USING {_BATCH} b WHERE {table.match_sql}"
                    )
                    con.execute(f"INSERT INTO {table.name} SELECT * FROM {_BATCH}")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
            else:
                con.execute(f"INSERT INTO {table.name} SELECT * FROM {_BATCH}")
        finally:
            con.unregister(_BATCH)
        table.unwritten = True
        table.fresh.append(batch)
        table.fresh_replace = table.fresh_replace or replace

    def _restore_stranded(self) -> None:
        """Engine thread, flush failed: buffer again the rows it took but did not load."""
        stranded, self._stranded = self._stranded, []
        for table, rows, _ in stranded:
            # Before what was appended since; a part may have reached DuckDB: by key, once.
            table.pending = rows + table.pending
            table.replace = True
            table.changed = True
