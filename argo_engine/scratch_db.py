"""One in-memory DuckDB database per process for short read-only queries over parquet files.

Each ``duckdb.connect()`` creates a new database and registers every built-in function and
extension again: ~30-45 ms of CPU here. The replay feed and the session's start-up read
parquet files several times per run; a cursor on one shared database costs under a
millisecond. Cursors are independent connections (safe to use on different threads); the
database only ever reads files, so nothing is shared between queries but the catalog of
built-in functions.
"""

from __future__ import annotations

import threading

import duckdb

_lock = threading.Lock()
_database: duckdb.DuckDBPyConnection | None = None


def query_connection() -> duckdb.DuckDBPyConnection:
    """A new connection (cursor) to the process's scratch database; close it when done."""
    global _database
    with _lock:
        if _database is None:
            _database = duckdb.connect()
        return _database.cursor()
