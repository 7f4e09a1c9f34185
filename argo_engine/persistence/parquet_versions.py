"""How a new version of a table's parquet file is written: plain, appended, superseding.

Every version of a file is written to a temp file, fsynced and renamed onto the file
(``write``, the writer's ``files.atomic_write_with``). Every new version starts with the old
version's bytes (:mod:`argo_engine.persistence.parquet_append`): when the rows loaded since the
last write are all new keys that sort after the stored rows they are appended as a row group
(:func:`append_version`); otherwise the whole table, sorted, follows the old bytes and the
footer lists only its row groups (superseding). Only when those old bytes would outgrow a
bound is the file rewritten from scratch (:func:`write_sorted`, a DuckDB ``COPY``).
:class:`~argo_engine.persistence.writers.RunWriters` decides when a table gets a version and
passes the bounds in.

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
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from argo_engine.persistence.files import persistence_error
from argo_engine.persistence.parquet_append import (
    MAGIC,
    Footer,
    ParquetAppendError,
    append_file,
    data_bytes,
    read_footer,
    seal_file,
)
from argo_engine.persistence.table_encoding import Row, _quote, _sort_key, _sorted_by, _Table

_FRESH = "_argo_fresh"

# The bytes of each table's file when it holds no rows (see write_known_empty).
_EMPTY_FILES: dict[str, bytes] = {}


class AtomicWrite(Protocol):
    """The signature of :func:`argo_engine.persistence.files.atomic_write_with` used here."""

    def __call__(
        self, path: Path, writer: Callable[[Path], object], *, sync_folder: bool = True
    ) -> None:
        """Let ``writer`` produce a temp file, then fsync it and rename it onto ``path``."""


def write_sorted(con: duckdb.DuckDBPyConnection, table: _Table, write: AtomicWrite) -> None:
    """Rewrite the whole file from the DuckDB table (sorted)."""

    def produce(tmp: Path) -> None:
        target = str(tmp).replace("'", "''")
        try:
            con.execute(
                f"COPY (SELECT {table.export_sql} FROM {table.name} "
                f"ORDER BY {table.order_sql}) "
                f"TO '{target}' (FORMAT PARQUET)"
            )
        except duckdb.IOException as exc:
            raise _os_error(exc, tmp) from exc
        _seal(tmp)

    write(table.path, produce)


def write_known_empty(table: _Table, write: AtomicWrite, *, sync_folder: bool) -> bool:
    """Create the file of an empty table from the bytes :func:`remember_empty` kept.

    Returns:
        Whether it was written; False when this process has not kept them yet.
    """
    data = _EMPTY_FILES.get(table.schema.name)
    if data is None:
        return False
    write(table.path, lambda tmp: tmp.write_bytes(data), sync_folder=sync_folder)
    return True


def remember_empty(table: _Table) -> None:
    """Keep the bytes of the table's file, just written empty, for :func:`write_known_empty`."""
    try:
        data = table.path.read_bytes()
    except OSError as exc:
        raise persistence_error(exc, table.path) from exc
    _EMPTY_FILES[table.schema.name] = data


def write_rows(table: _Table, rows: list[Row], write: AtomicWrite) -> None:
    """Write the file from ``rows`` alone: new keys, and all the table holds (sorted).

    Written by pyarrow, not DuckDB: for one date's rows it costs a half (market data) to
    a quarter (the small tables) of the CPU of a ``COPY``, and a date closing in the
    background competes with the engine thread for it. The file has the same columns,
    types and sort order; nothing appends to it afterwards (a reopened folder whose file
    differs in encoding is rewritten rather than appended to, see ``append_file``).
    """
    batch = pa.Table.from_struct_array(pa.array(rows, type=table.arrow_type))
    if not _sorted_by(batch, table.schema.order_by):
        batch = batch.sort_by([(c, "ascending") for c in table.schema.order_by])

    def produce(tmp: Path) -> None:
        pq.write_table(batch, tmp, use_dictionary=table.text_columns, store_schema=False)
        _seal(tmp)

    write(table.path, produce)


def note_file(con: duckdb.DuckDBPyConnection, table: _Table, *, final: bool) -> None:
    """Remember that the file now holds exactly the DuckDB table.

    Args:
        con: The writer's database.
        table: The table just written.
        final: Whether this is the final job of ``finalize_in_background``.
    """
    table.fresh = []
    table.fresh_replace = False
    table.unwritten = False
    if final:
        return  # the final job of finalize_in_background: nothing will append to it
    ((rows,),) = con.execute(f"SELECT count(*) FROM {table.name}").fetchall()
    last = con.execute(
        f"SELECT {table.order_sql} FROM {table.name} ORDER BY {table.desc_sql} LIMIT 1"
    ).fetchall()
    table.file_rows = int(rows)
    table.file_last = tuple(last[0]) if last else None


def append_version(
    con: duckdb.DuckDBPyConnection,
    table: _Table,
    write: AtomicWrite,
    *,
    max_row_groups: int,
    dead_bytes_min: int,
) -> tuple[bool, Footer] | None:
    """Write the new version of the file so that the previous one is a byte prefix of it.

    Appending keeps the previous version of the file as a byte prefix of the new one (see
    :mod:`argo_engine.persistence.parquet_append`), so readers that open the path several
    times per query never mix two versions. When the rows loaded since the last write are
    new keys that sort after the stored ones, they are appended as row groups. Otherwise
    (a stored order changed status, a late bar, a fragmented file) the whole sorted table
    is appended as new row groups and the footer points at those only: the old row groups
    stay behind as unreferenced bytes.

    Args:
        con: The writer's database, holding the table.
        table: The table; a pure append updates its file state here (after a superseding
            write the caller notes the file as holding the whole table).
        write: The atomic write (``files.atomic_write_with``, as the writer module holds it).
        max_row_groups: Row groups from which the whole table supersedes the old ones.
        dead_bytes_min: The floor of the unreferenced bytes that make a compaction.

    Returns:
        Whether the whole table was appended (superseding the old row groups), and the new
        footer; None when the file was not written, which leaves it to a plain rewrite: when
        this writer has not read the file yet, or when the unreferenced bytes would exceed
        ``max(dead_bytes_min, size of the table)`` (a compaction).
    """
    if not table.fresh or table.file_rows == 0 or not table.path.exists():
        return None
    keys = ", ".join(_quote(k) for k in table.schema.key)
    # The current version of every row keyed like a fresh one (a row replaced twice since
    # the last write is one row here).
    source = (
        f"(SELECT {table.cols_sql} FROM {table.name} "
        f"SEMI JOIN (SELECT DISTINCT {keys} FROM {_FRESH}) USING ({keys}))"
        if table.fresh_replace
        else _FRESH
    )
    order = table.order_sql
    written: list[Footer] = []
    con.register(_FRESH, pa.concat_tables(table.fresh))
    try:
        try:
            footer = table.footer or read_footer(table.path)
        except (ParquetAppendError, OSError):
            return None
        firsts = con.execute(
            f"(SELECT {order} FROM {source} ORDER BY {order} LIMIT 1) UNION ALL "
            f"(SELECT {order} FROM {source} ORDER BY {table.desc_sql} LIMIT 1)"
        ).fetchall()
        if table.fresh_replace:
            ((total,),) = con.execute(f"SELECT count(*) FROM {table.name}").fetchall()
            ((new,),) = con.execute(f"SELECT count(*) FROM {source}").fetchall()
        else:
            # Every fresh row had a new key: nothing in the file was replaced.
            new = sum(batch.num_rows for batch in table.fresh)
            total = table.file_rows + new
        supersede = (
            not firsts
            # a row already in the file was replaced
            or total != table.file_rows + new
            # the file must stay sorted
            or (
                table.file_last is not None
                and _sort_key(tuple(firsts[0])) <= _sort_key(table.file_last)
            )
            or len(footer.row_groups) >= max_row_groups
        )
        part = table.path.with_name(f".{table.schema.file_name}.{os.getpid()}.part.tmp")
        target = str(part).replace("'", "''")
        rows_sql = table.name if supersede else source
        try:
            con.execute(
                f"COPY (SELECT {table.export_sql} FROM {rows_sql} ORDER BY {order}) "
                f"TO '{target}' (FORMAT PARQUET)"
            )
            # After superseding, every old data byte is unreferenced.
            dead = footer.data_end - len(MAGIC)
            if supersede and dead > max(dead_bytes_min, data_bytes(part)):
                return None  # compaction: too much unreferenced space

            def produce(tmp: Path) -> None:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    written.append(append_file(table.path, footer, part, fd, supersede=supersede))
                finally:
                    os.close(fd)

            write(table.path, produce)
        except OSError as exc:
            raise persistence_error(exc, part) from exc
        except duckdb.IOException as exc:
            raise persistence_error(_os_error(exc, part), part) from exc
        except ParquetAppendError:
            return None
        finally:
            part.unlink(missing_ok=True)
    finally:
        con.unregister(_FRESH)
    if not supersede:
        table.file_rows += int(new)
        table.file_last = tuple(firsts[-1])
        table.fresh = []
        table.fresh_replace = False
    return supersede, written[0]


def _os_error(exc: duckdb.Error, path: Path) -> OSError:
    """Turn a DuckDB I/O failure into the OSError that files.persistence_error classifies."""
    text = str(exc)
    for needle, code in (
        ("No space left", errno.ENOSPC),
        ("quota", errno.EDQUOT),
        ("Permission denied", errno.EACCES),
        ("Read-only file system", errno.EROFS),
        ("No such file", errno.ENOENT),
    ):
        if needle in text:
            return OSError(code, os.strerror(code), str(path))
    return OSError(errno.EIO, text, str(path))


def _seal(tmp: Path) -> None:
    """Record the checksums of a file just written by DuckDB or pyarrow in its footer."""
    try:
        seal_file(tmp)
    except ParquetAppendError as exc:  # we just wrote it: not a parquet file is a bug
        raise OSError(errno.EIO, f"cannot seal {tmp}: {exc}", str(tmp)) from exc
