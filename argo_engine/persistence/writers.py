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
   ``max(version_interval_s, w / max_write_share, flush_interval_s * (S / _VISIBLE_BYTES)**2)``
   (a file up to 1 MiB: one version interval, by default the flush interval), unless the
   rows not yet in the file reach ``_VERSION_GROWTH`` (half) of those in it first (and at
   least ``_GROWTH_MIN_ROWS``).
   Durability never waits for them; the journal holds every row the file lacks meanwhile.

Background flushing (``background=True``, :mod:`~argo_engine.persistence.flusher`) runs the
fsyncs, the loading into DuckDB and the parquet writes on one flusher thread while the engine
goes on. Reopening a folder (:meth:`RunWriters._recover`) replays the journals over the parquet
files, and moves unreadable files aside (:mod:`~argo_engine.persistence.writer_recovery`).

Where the parts of a writer live: this module holds :class:`RunWriters` (opening a folder,
when a table gets a new parquet version and the bounds of that schedule, recovery, reads). It
derives from ``flusher._Flushing`` (the flush cycle, the flusher thread, closing), which
derives from ``row_buffers._RowBuffers`` (the appends and their journal lines, loading rows
into DuckDB): one class in three modules, so that the per-row appends stay plain methods.
Beside them: ``parquet_versions`` (how a version is written; what concurrent readers can rely
on), ``writer_recovery`` (loading files at reopen, stored keys, stale temps),
``writer_queries`` (the SQL of the reads), ``table_encoding`` (rows, arrow types, the state of
one table) and ``connection_pool`` (pooled DuckDB databases).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import duckdb

from argo_engine.clock import Clock
from argo_engine.errors import ConfigurationError
from argo_engine.persistence.connection_pool import _CLOSED, _connections
from argo_engine.persistence.files import (
    atomic_write_with,
    fsync_dir,
    move_aside,
    persistence_error,
)
from argo_engine.persistence.flusher import _Flush, _Flushing
from argo_engine.persistence.journal import Journal, read_journal, read_tagged_journal
from argo_engine.persistence.parquet_versions import (
    append_version,
    note_file,
    remember_empty,
    write_known_empty,
    write_rows,
    write_sorted,
)
from argo_engine.persistence.row_buffers import _NO_TIME, _NO_TIME_US

# Re-exported: tests size a bulk load by it through this module (row_buffers reads it).
from argo_engine.persistence.row_buffers import _SPILL_ROWS as _SPILL_ROWS
from argo_engine.persistence.schema import (
    JOURNAL_DIR,
    LOGS,
    MARKET_DATA,
    MARKS,
    ORDERS,
    TABLES,
    TRADES,
)
from argo_engine.persistence.table_encoding import Row, _quote, _Table
from argo_engine.persistence.writer_queries import check_select, count_rows, read_rows, run_select
from argo_engine.persistence.writer_recovery import load_parquet, stored_keys
from argo_engine.persistence.writer_recovery import remove_stale_temps as remove_stale_temps

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


class RunWriters(_Flushing):
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
        version_interval_s: Minimum spacing of two versions of one table's parquet file, when
            longer than ``flush_interval_s``: how late readers may see new rows, traded for
            fewer copies of the file when rows trickle in (None: the flush interval).
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
        version_interval_s: float | None = None,
    ) -> None:
        if flush_interval_s < 0:
            raise ConfigurationError(
                f"flush_interval_s must be >= 0, got {flush_interval_s}", field="flush_interval_s"
            )
        if version_interval_s is not None and version_interval_s < 0:
            raise ConfigurationError(
                f"version_interval_s must be >= 0, got {version_interval_s}",
                field="version_interval_s",
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
        self._version_interval = max(flush_interval_s, version_interval_s or 0.0)
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
            table.next_at = clock.monotonic() + self._version_interval

    # -- opening -------------------------------------------------------------------------------

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
        # A process killed while it created this folder's files leaves their temp files and
        # no file: the folder still counts as new, and its litter goes here.
        remove_stale_temps(self.folder)
        self._acquire_connection()
        for table in self._tables.values():
            self._write_empty(table, sync_folder=False)
        try:
            fsync_dir(self.folder)
        except OSError as exc:
            raise persistence_error(exc, self.folder) from exc

    # -- parquet versions ----------------------------------------------------------------------

    def _write_versions(self, job: _Flush, direct: list[tuple[_Table, list[Row]]]) -> None:
        """Flusher, a full flush: write the files of ``direct`` and of the tables that are due."""
        for table, rows in direct:
            self._write_rows_parquet(table, rows)
        for table in self._tables.values():
            if table.unwritten and (job.force or job.now >= table.next_at or _grown(table)):
                self._materialize(table, job.now)

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
            self._version_interval,
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
        remove_stale_temps(self.folder)
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
