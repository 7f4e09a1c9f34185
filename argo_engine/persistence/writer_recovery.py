"""What reopening a run folder needs besides the writer itself: loading, clearing, keys.

Reopening a folder (a retry) loads the parquet files, replays the journals over them (later rows
win by key, so a crash between a parquet replace and the journal truncation duplicates
nothing), rewrites the files that changed and empties the journals
(:meth:`RunWriters._recover <argo_engine.persistence.writers.RunWriters>`). Ids of marks and
logs continue after the highest stored id (:func:`stored_keys`).

An unreadable parquet file, or one whose columns differ from the schema, is moved aside to
``<name>.corrupt-<timestamp>`` (never overwritten) and listed in ``RunWriters.corrupt_files``
(:func:`load_parquet`); a journal with corrupt lines is moved aside the same way once its good
rows are in parquet. Temp files a crashed writer left are removed first
(:func:`remove_stale_temps`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import duckdb

from argo_engine.persistence.files import persistence_error
from argo_engine.persistence.parquet_append import ParquetAppendError, check_file
from argo_engine.persistence.schema import LOGS, MARKS
from argo_engine.persistence.table_encoding import _quote, _Table


def remove_stale_temps(folder: Path) -> list[Path]:
    """Remove the temp files a crashed writer left in a run folder.

    Temp files of a crashed writer (parquet versions, stats.yaml, state) never hold the only
    copy of anything (the journal is truncated only after the replace, and stats.yaml and the
    state are rebuilt by recovery), so they are litter, not data. Our own pid's temps belong
    to a write in flight in this process and are kept.

    Returns:
        The files removed.

    Raises:
        PersistenceError: If one cannot be removed.
    """
    own = f".{os.getpid()}.tmp"
    removed: list[Path] = []
    for pattern in (".*.tmp", "tmp_.*.tmp"):
        for path in folder.glob(pattern):
            if path.is_file() and not path.name.endswith(own):
                try:
                    path.unlink(missing_ok=True)
                except OSError as exc:
                    raise persistence_error(exc, path) from exc
                removed.append(path)
    return removed


def load_parquet(
    con: duckdb.DuckDBPyConnection, table: _Table, move_aside: Callable[[Path], None]
) -> tuple[bool, bool]:
    """Load an existing parquet file into the (empty) DuckDB table.

    Args:
        con: The writer's database.
        table: The table whose file to load.
        move_aside: Called with the file's path when it is unreadable, damaged or of
            other columns than the schema.

    Returns:
        Whether a file was loaded (False if there is none, or it was bad), and whether it
        lacks columns added since it was written (it must then be written again).
    """
    path = table.path
    if not path.exists():
        return False, False
    try:
        # A permission problem is an unusable output path, not a corrupt file.
        with path.open("rb"):
            pass
    except OSError as exc:
        raise persistence_error(exc, path) from exc
    schema = table.schema
    keys = ", ".join(_quote(k) for k in schema.key)
    try:
        # Damaged bytes can still decode, as wrong rows: the file's own checksums decide.
        if check_file(path) is not None:
            raise _ChecksumMismatch
        described = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
        got = [(r[0], r[1]) for r in described]
        # A file of an earlier version ends before the columns added since.
        if not schema.written_by_a_version(got):
            raise _SchemaMismatch
        missing = len(schema.columns) - len(got)
        absent = schema.added[len(schema.added) - missing :] if missing else ()
        fill_in = "".join(
            f", CAST(? AS {dict(schema.columns)[name]}) AS {_quote(name)}" for name, _ in absent
        )
        present = ", ".join(_quote(c) for c, _ in got)
        # Later rows win if a file ever held a key twice.
        table.loaded = True
        con.execute(
            f"INSERT INTO {table.name} SELECT {present}{fill_in} "
            f"FROM read_parquet(?, file_row_number = true) "
            f"QUALIFY row_number() OVER (PARTITION BY {keys} "
            f"ORDER BY file_row_number DESC) = 1",
            [*(value for _, value in absent), str(path)],
        )
    except (duckdb.Error, _SchemaMismatch, _ChecksumMismatch, ParquetAppendError):
        move_aside(path)
        return False, False
    return True, bool(absent)


class StoredKeys(NamedTuple):
    """The keys a reopened folder's tables hold, which appends compare new rows against."""

    bar_last: dict[str, int]
    """The time (microseconds since the epoch) of each symbol's last bar."""
    order_ids: set[str]
    trade_ids: set[str]
    max_id: dict[str, int]
    """The highest id of ``marks`` and of ``logs`` (0 when empty)."""


def stored_keys(con: duckdb.DuckDBPyConnection) -> StoredKeys:
    """The keys the DuckDB tables of a reopened folder hold."""
    bar_last: dict[str, int] = {}
    for symbol, last in con.execute(
        "SELECT symbol, epoch_us(max(time)) FROM market_data GROUP BY symbol"
    ).fetchall():
        bar_last[symbol] = int(last)
    order_ids = {r[0] for r in con.execute("SELECT order_id FROM orders").fetchall()}
    trade_ids = {r[0] for r in con.execute("SELECT trade_id FROM trades").fetchall()}
    max_id: dict[str, int] = {}
    for name in (MARKS.name, LOGS.name):
        # fetchall, not fetchone: DuckDB refuses new work while a result is unfinished.
        ((top,),) = con.execute(f"SELECT coalesce(max(id), 0) FROM {name}").fetchall()
        max_id[name] = int(top)
    return StoredKeys(bar_last, order_ids, trade_ids, max_id)


class _SchemaMismatch(Exception):
    """A parquet file whose columns differ from the schema (treated as unreadable)."""


class _ChecksumMismatch(Exception):
    """A parquet file whose bytes differ from the checksums its footer records."""
