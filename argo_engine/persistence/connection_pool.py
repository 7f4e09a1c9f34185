"""Pooled in-memory DuckDB databases for the writers of run folders.

A connect costs ~13 ms and a session closes dates in the background while the next one
streams, so :class:`~argo_engine.persistence.writers.RunWriters` takes its database from
``_connections`` and gives it back emptied; ``_CLOSED`` stands in for it once released.
"""

from __future__ import annotations

import threading
from typing import Any

import duckdb


class _ConnectionPool:
    """In-memory DuckDB databases kept for the next writer (a connect costs ~13 ms).

    A session closes dates in the background while the next streams, so several are in use
    at a time. A released database keeps its (emptied) tables: dropping and creating the five
    tables again cost ~3 ms of every date, on the engine thread for the creation.
    """

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._idle: list[duckdb.DuckDBPyConnection] = []
        self._lock = threading.Lock()

    def acquire(self) -> tuple[duckdb.DuckDBPyConnection, bool]:
        """A database, and whether it already holds every table of TABLES, empty."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        # One DuckDB thread: the flusher's work must leave the other core(s) to the engine
        # thread, and its batches are small.
        return duckdb.connect(config={"threads": 1}), False

    def release(self, con: duckdb.DuckDBPyConnection, loaded: list[str], *, ready: bool) -> None:
        """Keep ``con`` for the next writer once the tables rows were loaded into are empty.

        Args:
            con: The database.
            loaded: Tables that may hold rows.
            ready: Whether every table of TABLES exists in ``con`` (with its schema).
        """
        if not ready:
            con.close()
            return
        try:
            for name in loaded:
                # An idle database holds no rows (memory), and nothing a next writer reads.
                con.execute(f"TRUNCATE {name}")
        except duckdb.Error:
            con.close()  # not reusable; its memory goes with it
            return
        with self._lock:
            if len(self._idle) < self._keep:
                self._idle.append(con)
                return
        con.close()


# The dates closing in the background (_MAX_CLOSING in engine/trading_day.py) plus the open
# one, and a spare.
_connections = _ConnectionPool(keep=6)


class _ClosedConnection:
    """Stands in for the released connection: any use is a bug, and says so."""

    def __getattr__(self, name: str) -> object:
        raise RuntimeError("the writers are closed (their DuckDB connection was released)")


_CLOSED: Any = _ClosedConnection()
