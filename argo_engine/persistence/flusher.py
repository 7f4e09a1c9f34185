"""The flush cycle of a run folder's writers: taking rows, the flusher thread, closing.

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

``_Flushing`` is the part of :class:`~argo_engine.persistence.writers.RunWriters` that runs
this cycle (RunWriters derives from it; the state is the writer's, set by its constructor):
the writer supplies the journal writes of its buffered rows (``_journal_buffered``) and the
parquet versions of a full flush (``_write_versions``).
"""

from __future__ import annotations

import errno
import threading
from abc import abstractmethod
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from pathlib import Path

from argo_engine.clock import Clock
from argo_engine.errors import PersistenceError
from argo_engine.persistence.connection_pool import _CLOSED, _connections
from argo_engine.persistence.files import fsync_dir, persistence_error
from argo_engine.persistence.journal import Journal
from argo_engine.persistence.row_buffers import _RowBuffers
from argo_engine.persistence.table_encoding import Row, _Table


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


class _Flushing(_RowBuffers):
    """Flushing, syncing, waiting for the flusher and closing of :class:`RunWriters`."""

    # The writer's state these methods share besides _RowBuffers' (set by RunWriters.__init__).
    background: bool
    _clock: Clock
    _flush_interval: float
    _executor: ThreadPoolExecutor | None
    _pending_flush: Future[None] | None
    _flush_finished: bool
    _final: bool
    _journal_dir: Path
    _con_ready: bool

    @abstractmethod
    def _write_versions(self, job: _Flush, direct: list[tuple[_Table, list[Row]]]) -> None:
        """Flusher, a full flush: write the files of ``direct`` and of the tables that are due."""

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
        self._write_versions(job, direct)
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
