"""Crash-safe writers of one run folder: five parquet files behind a write-ahead journal.

Write path of a row (DESIGN.md "Folder layout"):

1. ``append_*`` builds a tuple in schema column order and buffers it in Python (O(1)).
   Orders and fills are by default also written to the journal and fsynced before the call
   returns (``durable=False`` buffers them like bars, for a paper broker's); bars, marks and
   logs reach the journal in batches, fsynced by :meth:`maybe_flush` once per flush interval.
   Bars, orders and fills share ``.journal/durable.jsonl`` (lines tagged with their table, in
   the order they were appended), so an order and the bars before it cost one write and one
   fsync, and any prefix of the file is a state the engine went through; marks and logs have
   ``.journal/<table>.jsonl``.
2. At flush (or query) time the buffered rows enter an in-memory DuckDB table in one batch
   (via a pyarrow table); a key seen before turns the batch into delete-then-insert, so each
   table keeps one row per :attr:`TableSchema.key`, the later row winning.
3. Materializing a table writes a new version of ``<table>.parquet`` to a temp file, fsyncs it
   and ``os.replace``s it onto the file; only then is the table's journal truncated. Every new
   version starts with the old version's bytes (:mod:`argo_engine.persistence.parquet_append`):
   when the rows loaded since the last write are all new keys that sort after the stored rows
   (the common case: bars, fills, marks and logs arrive in order) they are appended as a row
   group, which costs the new rows plus an in-kernel copy; otherwise (an order changed status,
   a late bar, more than ``_MAX_ROW_GROUPS`` row groups) the whole table, sorted by
   :attr:`TableSchema.order_by`, follows the old bytes and the footer lists only its row
   groups (the old ones stay as unreferenced bytes). Only when those would outgrow
   ``max(_DEAD_BYTES_MIN, table size)`` is the file rewritten from scratch (DuckDB
   ``COPY ... (FORMAT PARQUET)``). Since every version copies the whole file, versions are
   scheduled so that the copies grow no faster than the data: after one that took ``w``
   seconds and left a file of ``S`` bytes, the next non-forced one of that table waits
   ``max(flush_interval_s, w / max_write_share, flush_interval_s * (S / _VISIBLE_BYTES)**2)``
   (a file up to 1 MiB: one flush interval), unless the rows not yet in the file reach
   ``_VERSION_GROWTH`` (half) of those in it first (and at least ``_GROWTH_MIN_ROWS``).
   Durability never waits for them; the journal holds every row the file lacks meanwhile.

Background flushing (``background=True``): :meth:`RunWriters.submit` takes the buffered rows
and writes them to the journals on the engine thread (no fsync), then a single flusher thread
fsyncs the journals, runs the caller's ``after_sync`` (the engine state and stats.yaml, which
must never claim more than the journals hold), loads DuckDB and writes parquet. A submit with
``full=False`` (a stats.yaml update between flush intervals) stops after ``after_sync`` and
leaves the rows buffered for the next full flush, which loads them in one batch. The engine
thread touches DuckDB only after waiting for the flusher; journal lines written while a flush
runs (an order's) make that flush skip the journal truncation, so they are never lost.
:meth:`RunWriters.finalize_in_background` closes a folder the same way while the engine opens
the next date; the DuckDB in-memory databases are pooled across writers (a connect costs
~13 ms) and run one thread each, so the flusher leaves the other core to the engine.

Reopening a folder (a retry) loads the parquet files, replays the journals over them (later rows
win by key, so a crash between a parquet replace and the journal truncation duplicates
nothing), rewrites the files that changed and empties the journals. Ids of marks and logs
continue after the highest stored id.

An unreadable parquet file, or one whose columns differ from the schema, is moved aside to
``<name>.corrupt-<timestamp>`` (never overwritten) and listed in :attr:`RunWriters.corrupt_files`;
a journal with corrupt lines is moved aside the same way once its good rows are in parquet.

Concurrent readers: every version of a file is complete. DuckDB ``read_parquet(path)`` reads
the footer through one open of the path and the data through later opens; since each version
is a byte prefix of the next, such a read never mixes two versions. Only a compaction (a plain
rewrite, rare by the bound above) has no such prefix: a read that spans it can fail with a
decoding error and may simply be retried; a reader that opens the file once and reads that
version (``pyarrow.parquet.ParquetFile`` on an open file, or DuckDB on
``/proc/self/fd/<fd>``) never fails.
"""

from __future__ import annotations

import errno
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa

from argo_engine.clock import Clock
from argo_engine.domain import Bar, Fill, LogEntry, Mark, Order
from argo_engine.errors import ConfigurationError, DataError, PersistenceError
from argo_engine.persistence.connection_pool import _CLOSED, _connections
from argo_engine.persistence.files import (
    atomic_write_with,
    fsync_dir,
    move_aside,
    persistence_error,
)
from argo_engine.persistence.journal import (
    Journal,
    read_journal,
    read_tagged_journal,
)
from argo_engine.persistence.parquet_versions import (
    append_version,
    note_file,
    remember_empty,
    write_known_empty,
    write_rows,
    write_sorted,
)
from argo_engine.persistence.schema import (
    JOURNAL_DIR,
    LOGS,
    MARKET_DATA,
    MARKS,
    ORDERS,
    TABLES,
    TRADES,
)
from argo_engine.persistence.table_encoding import (
    _EPOCH,
    _ONE_US,
    Row,
    _opt_us,
    _quote,
    _Table,
    _us,
)
from argo_engine.persistence.writer_queries import (
    check_select,
    count_rows,
    read_rows,
    run_select,
)
from argo_engine.persistence.writer_recovery import (
    load_parquet,
    stored_keys,
)
from argo_engine.persistence.writer_recovery import (
    remove_stale_temps as remove_stale_temps,
)

# Stands for "no bar yet" in RunWriters._bar_time (compared by identity; never a bar's time).
_NO_TIME = datetime(1, 1, 1, tzinfo=UTC)
_NO_TIME_US = (_NO_TIME - _EPOCH) // _ONE_US

# Rows buffered in Python before they are pushed into DuckDB and the journal's OS buffer even
# though no flush is due (e.g. a bulk load between two maybe_flush calls): bounds memory.
_SPILL_ROWS = 50_000
# Buffered bars that make a flush due before its interval (a fast replay within one date).
_EARLY_FLUSH_ROWS = 20_000

_BATCH = "_argo_batch"


class _ExecutorPool:
    """Flusher threads kept for the next writer.

    Starting a thread costs ~0.3 ms of CPU on the thread that opens a date. Each writer has
    one at a time, so its jobs stay serial; an idle one ends with the interpreter like any
    executor's.
    """

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._idle: list[ThreadPoolExecutor] = []
        self._lock = threading.Lock()

    def acquire(self) -> ThreadPoolExecutor:
        """An executor of one thread, idle."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="argo-flush")

    def release(self, executor: ThreadPoolExecutor) -> None:
        """Keep ``executor`` once the job that calls this (its last) ends, or let it go."""
        with self._lock:
            if len(self._idle) < self._keep:
                self._idle.append(executor)
                return
        executor.shutdown(wait=False)


_executors = _ExecutorPool(keep=6)


# Tables whose rows go to the shared journal (see _Table), and its file name.
_SHARED_TABLES = (MARKET_DATA.name, ORDERS.name, TRADES.name)
DURABLE_JOURNAL = "durable.jsonl"

# A file appended to this many times is rewritten in one piece (compacted) at its next write:
# many small row groups make the footer, and every read of it, slower.
_MAX_ROW_GROUPS = 512

# A superseding write leaves the old row groups behind as unreferenced bytes; once they would
# exceed this (or the table's own size, whichever is larger) the file is rewritten instead.
_DEAD_BYTES_MIN = 4 << 20

# Version schedule of a table's file (every new version copies the whole file, so its cost
# grows with the file; the schedule makes the copies grow no faster than the data):
# - a file up to _VISIBLE_BYTES gets a new version every flush interval while rows arrive
#   (readers see new rows within one interval);
# - a larger one waits interval * (size / _VISIBLE_BYTES) ** 2 after its last version: what
#   the time rule copies per interval, _VISIBLE_BYTES ** 2 / size, shrinks as the file grows,
#   so the cost per row of a slow stream stays that of a small file (a 41 MB file: 26 min).
#   1 MiB, not more: the most a trickle pays per interval is one copy of a 1 MiB file, about
#   the fixed cost of a version (at 4 MiB a file just above it cost 1.6-2.2x a small one's
#   per row; bench persist_scaling). Readers of rows that arrive in bursts still see them
#   within one interval while the wait is shorter than the bursts' spacing: the seed's 1m
#   bars of 50 symbols (~3 MB a day) wait at most ~9 s, well within their minute; or
# - sooner, once the rows not yet in the file reach _VERSION_GROWTH of the rows in it: the
#   copies of a growing file then add up to (1 + g) / g of its final size (3x at 0.5), and
#   at least _GROWTH_MIN_ROWS (a small file follows the time alone, max_write_share included).
_VISIBLE_BYTES = 1 << 20
_VERSION_GROWTH = 0.5
_GROWTH_MIN_ROWS = 20_000


def _grown(table: _Table) -> bool:
    """Whether the rows loaded since the file's last version reach _VERSION_GROWTH of it."""
    if table.file_rows == 0:
        return False  # the first version waits for its time (next_at)
    fresh: int = sum(batch.num_rows for batch in table.fresh)
    return fresh >= max(_GROWTH_MIN_ROWS, _VERSION_GROWTH * table.file_rows)


@dataclass(slots=True)
class _Flush:
    """What one flush takes from the engine thread: the rows to load and where journals were.

    Built on the engine thread (cheap: list swaps and journal writes), then run on the
    background flusher or inline.
    """

    now: float
    force: bool
    loads: list[tuple[_Table, list[Row], bool]]
    changed: list[_Table]
    generations: dict[str, int]
    after_sync: Callable[[], None] | None
    # False: journals fsynced and after_sync only; the rows stay buffered for the next flush.
    full: bool = True


class RunWriters:
    """All five tables (orders, trades, marks, logs, market_data) of one run folder.

    One engine thread appends, flushes and queries. With ``background=True`` the periodic
    flush (journal fsyncs, loading into DuckDB, parquet writes) runs on one flusher thread
    while the engine goes on; orders and fills stay durable before their append returns, and
    every other call waits for the flusher first. All five parquet files exist from
    construction on (with ``background=True`` in a new folder: from the flusher's first job,
    which the constructor starts and :meth:`wait` waits for) and are always complete (written
    to a temp file, fsynced and atomically renamed), so readers may poll them at any time.

    Args:
        folder: The run folder (``{date}/run_N``); created if missing.
        clock: Clock whose ``monotonic()`` paces flushes and whose ``now()`` stamps files moved
            aside.
        flush_interval_s: Seconds between journal fsyncs of bars, marks and logs (and the
            minimum spacing of materializations of one table).
        max_write_share: Upper bound of the share of time spent materializing one table.
        background: Run periodic flushes (:meth:`submit`) on a flusher thread.
        before_first: Called before anything else that this writer makes durable (on the
            flusher, first, for a new folder with ``background``; inline otherwise): the
            fsync of the rows of a date that rolls (:meth:`sync_later`), which every state
            of the next date counts.

    Attributes:
        folder: The run folder.
        corrupt_files: Where unreadable files found at open were moved aside.
        materializations: Parquet files written since construction (a counter for tests and
            monitoring).
        appended_versions: Of those, versions that appended the new rows to the old bytes.
        superseded_versions: Of those, versions that appended the whole table after the old
            bytes (the old version is still a prefix); the rest were plain rewrites.
        corrupt_journal_lines: Journal lines skipped at open because they were unreadable.
        dropped_journal_lines: What each of those lines held, as far as it can still be read.
        torn_journal_tails: Journals found at open ending with an incomplete line (ignored).

    Raises:
        ConfigurationError: On a negative flush interval or a write share outside (0, 1].
        PersistenceError: If the folder or its files cannot be written.
    """

    def __init__(
        self,
        folder: Path,
        *,
        clock: Clock,
        flush_interval_s: float = 1.0,
        max_write_share: float = 0.1,
        background: bool = False,
        before_first: Callable[[], None] | None = None,
    ) -> None:
        if flush_interval_s < 0:
            raise ConfigurationError(
                f"flush_interval_s must be >= 0, got {flush_interval_s}", field="flush_interval_s"
            )
        if not 0 < max_write_share <= 1:
            raise ConfigurationError(
                f"max_write_share must be in (0, 1], got {max_write_share}",
                field="max_write_share",
            )
        self.folder = folder
        self.corrupt_files: list[Path] = []
        self.materializations = 0
        self.appended_versions = 0
        self.superseded_versions = 0
        self.corrupt_journal_lines = 0
        self.dropped_journal_lines: list[str] = []
        self.torn_journal_tails = 0
        self._clock = clock
        self._flush_interval = flush_interval_s
        self._max_write_share = max_write_share
        self._closed = False
        self.background = background
        self._executor: ThreadPoolExecutor | None = None
        self._pending_flush: Future[None] | None = None
        self._flush_finished = True
        # Set by the last job of finalize_in_background when it starts (see _run).
        self._final = False
        # Rows a failed flush took but could not load (see _load_taken).
        self._stranded: list[tuple[_Table, list[Row], bool]] = []
        self._journal_dir = folder / JOURNAL_DIR
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # A new folder (nothing of ours in it yet) has nothing to recover: with a
            # flusher, its empty files are created there, while the engine streams.
            fresh = background and not any((folder / t.file_name).exists() for t in TABLES.values())
            if fresh and self._journal_dir.exists():
                fresh = not any(self._journal_dir.iterdir())
            self._journal_dir.mkdir(exist_ok=True)
            if not fresh:
                fsync_dir(folder)
        except OSError as exc:
            raise persistence_error(exc, folder) from exc
        # Market data first: every flush makes bars durable before the marks, logs, orders and
        # fills that were produced from them, so a durable row never refers to a lost bar.
        order = [MARKET_DATA.name, *(name for name in TABLES if name != MARKET_DATA.name)]
        self._wal = Journal(self._journal_dir / DURABLE_JOURNAL)
        # Encoded lines of the shared journal waiting for the next write, in append order.
        self._wal_chunks: list[bytes] = []
        self._tables = {
            name: _Table(
                TABLES[name],
                folder,
                self._journal_dir,
                self._wal if name in _SHARED_TABLES else None,
            )
            for name in order
        }
        self._md = self._tables[MARKET_DATA.name]
        self._orders = self._tables[ORDERS.name]
        self._trades = self._tables[TRADES.name]
        self._marks = self._tables[MARKS.name]
        self._logs = self._tables[LOGS.name]
        # Key trackers: they let an append tell "certainly new" from "maybe a repeat" in O(1),
        # so the common append-only case never pays for a delete.
        self._bar_last: dict[str, int] = {}
        # The last bar's time and its microseconds: orders, fills, marks and logs are mostly
        # stamped with the very same datetime object. Starts as a time no caller holds.
        self._bar_time = _NO_TIME
        self._bar_us = _NO_TIME_US
        self._order_ids: set[str] = set()
        self._trade_ids: set[str] = set()
        self._max_id: dict[str, int] = {MARKS.name: 0, LOGS.name: 0}
        self._next_id: dict[str, int] = {MARKS.name: 1, LOGS.name: 1}
        # A new folder's database is taken by its flusher (its first job, which every use of
        # it waits for): a pooled one costs nothing, a new one 15-30 ms of CPU.
        self._con: duckdb.DuckDBPyConnection = _CLOSED
        self._con_ready = False
        # Whether the folder held rows at open (a reopen after a crash or a retry).
        self.restored = False
        try:
            if fresh:
                self._start(self._open_new_folder, before_first)
            else:
                if before_first is not None:
                    before_first()
                self._acquire_connection()
                self._recover()
        except BaseException:
            self._close_resources()
            raise
        # Monotonic time from which a flush is due (flush_due); public so that the engine can
        # compare it on every bar without a call.
        self.next_flush_at = clock.monotonic() + flush_interval_s
        # A new table's first parquet write waits one interval like every later one (the
        # journal holds its rows meanwhile): a date shorter than that (a fast replay) is
        # written once, when it closes.
        for table in self._tables.values():
            table.next_at = self.next_flush_at

    # -- appends -------------------------------------------------------------------------------

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

    # -- flushing ------------------------------------------------------------------------------

    def maybe_flush(self) -> bool:
        """Flush if the flush interval has elapsed; cheap otherwise. Call once per bar.

        A due flush fsyncs every journal and materializes the tables whose adaptive spacing
        allows it. With ``background=True`` it is handed to the flusher thread (see
        :meth:`submit`) and skipped while the previous one still runs.

        Returns:
            Whether a flush ran (or was handed over).

        Raises:
            PersistenceError: If the journal or a parquet file cannot be written (in background
                mode: reported by the call after the failed flush).
        """
        if not self.flush_due():
            return False
        if self.background:
            if not self.idle():
                return False
            self.submit()
            return True
        self._flush(force=False)
        return True

    def flush_due(self, now: float | None = None) -> bool:
        """Whether the flush interval has elapsed since the last flush.

        Args:
            now: The clock's monotonic time, when the caller has just read it.
        """
        return (self._clock.monotonic() if now is None else now) >= self.next_flush_at

    def idle(self) -> bool:
        """Whether no background flush is running; re-raises the error of a failed one.

        Raises:
            PersistenceError: If the last background flush failed.
        """
        if self._pending_flush is None:
            return True
        if not self._flush_finished:
            return False
        self.wait()
        return True

    def _flush_done(self, future: Future[None]) -> None:
        # A future's callbacks may run after wait() has returned its result and the next
        # flush has started: only the running flush's own callback may mark it finished.
        if future is self._pending_flush:
            self._flush_finished = True

    def wait(self) -> None:
        """Block until the background flush (if any) has finished.

        Raises:
            PersistenceError: If it failed (reported once).
        """
        running, self._pending_flush = self._pending_flush, None
        if running is not None:
            try:
                running.result()
            except BaseException:
                self._restore_stranded()
                raise

    def submit(self, after_sync: Callable[[], None] | None = None, *, full: bool = True) -> None:
        """Start a periodic flush on the flusher thread (inline without ``background``).

        The rows appended so far are written to the journals here (cheap, no fsync); the
        flusher then fsyncs the journals, calls ``after_sync`` (files that must never claim
        more than the journals hold, such as the engine state), loads the rows into DuckDB and
        materializes the tables that are due.

        Args:
            after_sync: Called once the journals are durable, on the flusher thread.
            full: False to stop after ``after_sync`` (a stats.yaml update between flush
                intervals): the rows stay buffered, and the next full flush loads them in one
                batch.

        Raises:
            PersistenceError: If a journal cannot be written, or the previous flush failed.
        """
        self._check_open()
        # Waiting here (not behind it on the flusher) reports a failed flush before any rows
        # are taken, and gives the rows it took but could not load back to the buffers first.
        self.wait()
        job = self._take(force=False, after_sync=after_sync, full=full)
        if not self.background:
            self._run_inline(job)
            return
        self._start(self._run, job)

    def _start(self, work: Callable[..., None], *args: object) -> None:
        """Run ``work`` on the flusher thread (no job may be pending)."""
        assert self._pending_flush is None
        if self._executor is None:
            self._executor = _executors.acquire()
        self._flush_finished = False
        self._pending_flush = self._executor.submit(work, *args)
        # A plain flag for idle(), which the engine calls on every bar: Future.done() locks.
        self._pending_flush.add_done_callback(self._flush_done)

    def _acquire_connection(self) -> None:
        self._con, self._con_ready = _connections.acquire()
        if not self._con_ready:
            for table in self._tables.values():
                columns = ", ".join(f"{_quote(c)} {t}" for c, t in table.schema.columns)
                self._con.execute(f"CREATE OR REPLACE TABLE {table.name} ({columns})")
            self._con_ready = True

    def _open_new_folder(self, before_first: Callable[[], None] | None) -> None:
        """Flusher, first job of a new folder: ``before_first``, a database, the empty files.

        Each file is written to a temp file and fsynced before its rename, as every version of
        a file is; the folder is fsynced once for all five renames.
        """
        if before_first is not None:
            before_first()
        self._acquire_connection()
        for table in self._tables.values():
            self._write_empty(table, sync_folder=False)
        try:
            fsync_dir(self.folder)
        except OSError as exc:
            raise persistence_error(exc, self.folder) from exc

    def sync(self) -> None:
        """Make every appended row durable in the journal now (no parquet write).

        Raises:
            PersistenceError: If a journal cannot be written.
        """
        self._check_open()
        self._journal_buffered()
        for table in self._tables.values():
            table.journal.sync()

    def sync_later(self) -> Callable[[], None]:
        """Write every appended row to its journal now; return the fsync that makes them durable.

        For a date that rolls: its rows reach the OS here (they survive the process), and the
        next date's writers run the returned call (``before_first``) on their flusher before
        they save anything that counts them, so the engine thread does not wait for the disk.
        This writer's own close may run meanwhile: it fsyncs the journals before anything else,
        and one it has closed holds nothing the call must still make durable.

        Raises:
            PersistenceError: If a journal cannot be written (the returned call: fsynced).
        """
        self._check_open()
        self._journal_buffered()
        journals: list[Journal] = []
        for table in self._tables.values():
            if table.journal.unsynced and table.journal not in journals:
                journals.append(table.journal)

        def fsync() -> None:
            for journal in journals:
                try:
                    journal.sync()
                except PersistenceError as exc:
                    cause = exc.__cause__
                    closed = isinstance(cause, OSError) and cause.errno == errno.EBADF
                    if closed and not journal.unsynced:
                        continue  # closed by the date's close between its check and the fsync
                    raise

        return fsync

    def flush(self) -> None:
        """Fsync every journal and materialize every table that changed.

        Raises:
            PersistenceError: If the journal or a parquet file cannot be written.
        """
        self._flush(force=True)

    def finalize(self) -> None:
        """Close a day or a run: flush, then remove the (now redundant) journal files.

        The writer stays usable, and the folder may be reopened later.

        Raises:
            PersistenceError: If a file cannot be written or removed.
        """
        self._flush(force=True)
        self._remove_journals()

    def finalize_in_background(
        self,
        after_sync: Callable[[], None] | None = None,
        after_final: Callable[[], None] | None = None,
    ) -> Future[None]:
        """Finalize and close on the flusher thread, so that the caller goes on meanwhile.

        The buffered rows are taken now (the writer refuses appends from here on); the
        flusher fsyncs the journals, calls ``after_sync`` (e.g. the final engine state and
        stats.yaml), writes every table that changed, removes the journals, calls
        ``after_final`` and releases the files and the DuckDB connection. A crash before the
        end leaves the journals in place: reopening the folder finishes the job.

        Args:
            after_sync: Called once the journals are durable, on the flusher thread.
            after_final: Called once the parquet files hold everything, on the flusher thread.

        Returns:
            A future that is done when the folder is final; its result raises what failed
            (a PersistenceError, say).

        Raises:
            PersistenceError: If the journals cannot be written, or the last flush failed.
        """
        self._check_open()
        # A flush still running is not waited for: this job queues behind it on the same
        # thread (taking rows meanwhile is safe, see _run's journal generations).
        previous, self._pending_flush = self._pending_flush, None
        job = self._take(force=True, after_sync=after_sync)
        self._closed = True
        executor = self._executor or _executors.acquire()
        self._executor = None

        def work() -> None:
            try:
                if previous is not None:
                    previous.result()
                # Only now (not when queued): a flush still running before this one must
                # keep its bookkeeping, which decides how this job writes each table.
                self._final = True
                self._run(job)
                self._remove_journals()
                if after_final is not None:
                    after_final()
            finally:
                self._release_files()
                # Another writer's jobs may queue behind what is left of this one.
                _executors.release(executor)

        return executor.submit(work)

    def _remove_journals(self) -> None:
        for table in self._tables.values():
            # Only now is every journaled row inside a durable parquet file.
            table.journal.remove()
        try:
            fsync_dir(self._journal_dir)
        except OSError as exc:
            raise persistence_error(exc, self._journal_dir) from exc

    def close(self) -> None:
        """Flush and release the journal files and the DuckDB connection (idempotent).

        Raises:
            PersistenceError: If the final flush fails (resources are released anyway).
        """
        if self._closed:
            return
        try:
            self._flush(force=True)
        finally:
            self._close_resources()

    def _close_resources(self) -> None:
        self._closed = True
        if self._executor is not None:
            # A failed flush was reported (or is moot now): the job must end either way.
            if self._pending_flush is not None:
                wait_futures([self._pending_flush])
            _executors.release(self._executor)
            self._executor = None
            self._pending_flush = None
        self._release_files()

    def _release_files(self) -> None:
        for table in self._tables.values():
            table.journal.close()
        con, self._con = self._con, _CLOSED
        if con is _CLOSED:
            return  # the first job of a new folder failed before it had a database
        loaded = [t.name for t in self._tables.values() if t.loaded]
        _connections.release(con, loaded, ready=self._con_ready)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the writers of {self.folder} are closed")

    def _flush(self, *, force: bool) -> None:
        self._check_open()
        self.wait()
        self._run_inline(self._take(force=force, after_sync=None))

    def _run_inline(self, job: _Flush) -> None:
        """Run a flush on the engine thread; a failure gives back the rows it could not load."""
        try:
            self._run(job)
        except BaseException:
            self._restore_stranded()
            raise

    def _take(
        self, *, force: bool, after_sync: Callable[[], None] | None, full: bool = True
    ) -> _Flush:
        """Engine thread: journal the buffered rows (no fsync) and take them for a flush."""
        now = self._clock.monotonic()
        loads: list[tuple[_Table, list[Row], bool]] = []
        changed: list[_Table] = []
        # Journal first: durability must not depend on the (slower, fallible) parquet write.
        self._journal_buffered()
        if not full:
            return _Flush(now, force, loads, changed, {}, after_sync, full=False)
        for table in self._tables.values():
            if table.pending:
                loads.append((table, table.pending, table.replace))
                table.pending = []
                table.replace = False
            if table.changed:
                changed.append(table)
                table.changed = False
        generations = {name: t.journal.generation for name, t in self._tables.items()}
        self.next_flush_at = now + self._flush_interval
        return _Flush(now, force, loads, changed, generations, after_sync)

    def _run(self, job: _Flush) -> None:
        """Flusher thread (or inline): DuckDB, fsync, ``after_sync``, then parquet."""
        # The taken rows enter DuckDB first: from then on their tables are ``unwritten``, so
        # when the fsync or after_sync (engine state, stats.yaml) fails, the next flush still
        # writes them to parquet, and no journal is emptied before it has.
        direct = self._load_taken(job)
        for table in self._tables.values():
            table.journal.sync()
        if job.after_sync is not None:
            job.after_sync()
        if not job.full:
            return  # buffered rows are in the journals only: nothing may be truncated
        for table, rows in direct:
            self._write_rows_parquet(table, rows)
        for table in self._tables.values():
            if table.unwritten and (job.force or job.now >= table.next_at or _grown(table)):
                self._materialize(table, job.now)
        # A journal whose tables hold nothing unwritten has every line journaled up to the
        # take inside durable parquet files; lines journaled later (an order appended during a
        # background flush) must stay, so then it is left alone.
        done: set[int] = set()
        for name, table in self._tables.items():
            journal = table.journal
            if id(journal) in done:
                continue
            done.add(id(journal))
            sharing = [t for t in self._tables.values() if t.journal is journal]
            if not any(t.unwritten for t in sharing):
                journal.truncate_if_unchanged(job.generations[name])

    def _load_taken(self, job: _Flush) -> list[tuple[_Table, list[Row]]]:
        """Put the rows a flush took into DuckDB; return those to write straight to files.

        The final flush of a writer closing in the background writes a table that holds
        nothing yet (a date shorter than a flush interval) straight from its rows, without
        loading them into DuckDB first. Its rows can only repeat keys among themselves (an
        order's later status), and the later row wins, as in _load_rows. The writer is closed
        by then: if that write fails, its journals stay for recovery.
        """
        final = self._final
        direct: list[tuple[_Table, list[Row]]] = []
        for i, (table, rows, replace) in enumerate(job.loads):
            if final and table.file_rows == 0 and not table.fresh and not table.unwritten:
                if replace:
                    rows = list({table.key_of(r): r for r in rows}.values())
                direct.append((table, rows))
                continue
            try:
                self._load_rows(table, rows, replace)
            except BaseException:
                # These rows are neither buffered nor in DuckDB any more: they go back to the
                # engine thread (see _restore_stranded), or a later flush would empty the
                # journal, their only copy, without them.
                self._stranded = job.loads[i:]
                raise
        written = {id(table) for table, _ in direct}
        for table in job.changed:
            if id(table) not in written:
                table.unwritten = True
        return direct

    def _restore_stranded(self) -> None:
        """Engine thread, flush failed: buffer again the rows it took but did not load."""
        stranded, self._stranded = self._stranded, []
        for table, rows, _ in stranded:
            # Before what was appended since; a part may have reached DuckDB: by key, once.
            table.pending = rows + table.pending
            table.replace = True
            table.changed = True

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

    def _materialize(self, table: _Table, now: float) -> None:
        started = time.perf_counter()
        if not self._append_parquet(table):
            self._write_parquet(table)
        took = time.perf_counter() - started
        try:
            table.file_bytes = table.path.stat().st_size
        except OSError:
            table.file_bytes = 0  # only paces the next version
        interval = self._flush_interval
        table.next_at = now + max(
            interval,
            took / self._max_write_share,
            interval * (table.file_bytes / _VISIBLE_BYTES) ** 2,
        )
        table.unwritten = False

    # Every version is written through this module's atomic_write_with, handed to
    # parquet_versions with the bounds: the crash test (tests/recovery/kill_child.py) replaces
    # it here to die inside the N-th write, and tests change the bounds here.

    def _write_parquet(self, table: _Table) -> None:
        """Rewrite the whole file from the DuckDB table (sorted)."""
        write_sorted(self._con, table, atomic_write_with)
        self.materializations += 1
        self._note_file(table)
        table.footer = None

    def _write_empty(self, table: _Table, *, sync_folder: bool = True) -> None:
        """Create the file of an empty table (a new folder: the common case of every open).

        The bytes are what :meth:`_write_parquet` writes for an empty table, encoded once per
        process: a new date opens five files without five DuckDB exports.
        """
        if not write_known_empty(table, atomic_write_with, sync_folder=sync_folder):
            self._write_parquet(table)
            remember_empty(table)
            return
        self.materializations += 1
        table.file_rows = 0
        table.file_last = None
        table.fresh = []
        table.fresh_replace = False
        table.unwritten = False
        table.footer = None

    def _write_rows_parquet(self, table: _Table, rows: list[Row]) -> None:
        """Write the file from ``rows`` alone (:func:`~.parquet_versions.write_rows`)."""
        write_rows(table, rows, atomic_write_with)
        self.materializations += 1
        table.unwritten = False

    def _note_file(self, table: _Table) -> None:
        note_file(self._con, table, final=self._final)

    def _append_parquet(self, table: _Table) -> bool:
        """Write a version whose previous one is a byte prefix of it (appended or superseding).

        Returns:
            Whether the file was written; False leaves it to a plain rewrite (see
            :func:`~.parquet_versions.append_version`).
        """
        done = append_version(
            self._con,
            table,
            atomic_write_with,
            max_row_groups=_MAX_ROW_GROUPS,
            dead_bytes_min=_DEAD_BYTES_MIN,
        )
        if done is None:
            return False
        superseded, footer = done
        self.materializations += 1
        if superseded:
            self.superseded_versions += 1
            self._note_file(table)
        else:
            self.appended_versions += 1
        table.footer = footer
        return True

    # -- recovery ------------------------------------------------------------------------------

    def _recover(self) -> None:
        shared, shared_corrupt, shared_torn = read_tagged_journal(
            self._wal.path,
            {name: TABLES[name] for name in _SHARED_TABLES},
            self.dropped_journal_lines,
        )
        self.corrupt_journal_lines += shared_corrupt
        self.torn_journal_tails += int(shared_torn)
        # Per-table journals of the shared tables are what earlier versions wrote: older than
        # the shared journal, so replayed first.
        legacy: list[tuple[Path, int]] = []
        self._remove_stale_temps()
        for table in self._tables.values():
            loaded, outdated = load_parquet(self._con, table, self._move_aside)
            own = self._journal_dir / f"{table.schema.name}.jsonl"
            contents = read_journal(own, table.schema)
            self.corrupt_journal_lines += contents.corrupt_lines
            self.dropped_journal_lines.extend(contents.dropped)
            self.torn_journal_tails += int(contents.torn_tail)
            rows = contents.rows
            if table.tag is not None:
                rows = rows + shared[table.schema.name]
                if own.exists():
                    legacy.append((own, contents.corrupt_lines))
            if rows:
                table.pending = [tuple(r) for r in rows]
                table.replace = True
                self._load(table)
            if loaded or rows:
                self.restored = True
            if not loaded and not rows:
                self._write_empty(table)
            elif not loaded or rows or outdated:
                # An outdated file is written again in the current columns at once: rows are
                # only ever appended to a file of the table's own parquet schema.
                self._write_parquet(table)
            else:
                self._note_file(table)
            if table.tag is not None:
                continue
            if contents.corrupt_lines:
                self._move_aside(table.journal.path)
            elif contents.rows or contents.torn_tail:
                table.journal.truncate()
        # Only now is every journaled row of the shared tables inside a durable parquet file.
        for path, corrupt in legacy:
            if corrupt:
                self._move_aside(path)
            else:
                try:
                    path.unlink()
                except OSError as exc:
                    raise persistence_error(exc, path) from exc
        if shared_corrupt:
            self._move_aside(self._wal.path)
        elif self._wal.path.exists():
            self._wal.truncate()
        if self.restored:
            self._track_keys()

    def _remove_stale_temps(self) -> None:
        remove_stale_temps(self.folder)

    def _move_aside(self, path: Path) -> None:
        try:
            self.corrupt_files.append(move_aside(path, self._clock.now()))
        except OSError as exc:
            raise persistence_error(exc, path) from exc

    def _track_keys(self) -> None:
        keys = stored_keys(self._con)
        self._bar_last.update(keys.bar_last)
        self._order_ids = keys.order_ids
        self._trade_ids = keys.trade_ids
        self._max_id.update(keys.max_id)

    # -- reading -------------------------------------------------------------------------------

    def query(self, sql: str, params: list[object] | None = None) -> list[tuple[object, ...]]:
        """Run one read-only SQL statement over every appended row, flushed or not.

        The tables are named ``market_data``, ``orders``, ``trades``, ``marks`` and ``logs``,
        with the parquet columns; TIMESTAMP values come back as naive UTC datetimes.

        Args:
            sql: One SELECT statement (``WITH``, ``FROM``-first and ``VALUES`` forms included).
            params: Values for ``?`` placeholders.

        Returns:
            The result rows.

        Raises:
            ConfigurationError: If ``sql`` is not a single SELECT or fails to run.
        """
        self._check_open()
        self.wait()
        check_select(self._con, sql)
        for table in self._tables.values():
            self._load(table)
        return run_select(self._con, sql, params)

    def row_count(self, table: str) -> int:
        """Number of rows of a table, unflushed rows included.

        Raises:
            ConfigurationError: For an unknown table.
        """
        state = self._table(table)
        self._load(state)
        return count_rows(self._con, state)

    def read_table(self, table: str) -> list[dict[str, object]]:
        """All rows of a table in file order, unflushed rows included.

        Returns:
            One dict per row keyed by column name; timestamps as timezone-aware UTC datetimes.

        Raises:
            ConfigurationError: For an unknown table.
        """
        state = self._table(table)
        self._load(state)
        return read_rows(self._con, state)

    def _table(self, table: str) -> _Table:
        self._check_open()
        self.wait()
        try:
            return self._tables[table]
        except KeyError:
            raise ConfigurationError(
                f"unknown table {table!r}; expected one of {sorted(self._tables)}", table=table
            ) from None
