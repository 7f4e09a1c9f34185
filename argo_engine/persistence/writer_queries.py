"""The SQL behind the writers' reads: the one-SELECT check, counts, rows as dicts.

:class:`~argo_engine.persistence.writers.RunWriters` (``query``, ``row_count``,
``read_table``) first loads its buffered rows into DuckDB, then reads through these.
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

from argo_engine.errors import ConfigurationError
from argo_engine.persistence.table_encoding import _Table


def check_select(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse anything but one read-only SELECT statement.

    Raises:
        ConfigurationError: If ``sql`` does not parse or is not a single SELECT.
    """
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise ConfigurationError(f"invalid SQL: {exc}", sql=sql) from exc
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise ConfigurationError("query() accepts exactly one read-only SELECT statement", sql=sql)


def run_select(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None
) -> list[tuple[object, ...]]:
    """The rows of a statement :func:`check_select` accepted.

    Raises:
        ConfigurationError: If it fails to run.
    """
    try:
        return con.execute(sql, params).fetchall()
    except duckdb.Error as exc:
        raise ConfigurationError(f"query failed: {exc}", sql=sql) from exc


def count_rows(con: duckdb.DuckDBPyConnection, table: _Table) -> int:
    """Number of rows of the DuckDB table."""
    ((count,),) = con.execute(f"SELECT count(*) FROM {table.name}").fetchall()
    return int(count)


def read_rows(con: duckdb.DuckDBPyConnection, table: _Table) -> list[dict[str, object]]:
    """All rows of the DuckDB table in file order, timestamps as timezone-aware UTC."""
    names = table.schema.column_names
    stamps = [i for i, (_, t) in enumerate(table.schema.columns) if t == "TIMESTAMP"]
    out: list[dict[str, object]] = []
    for raw in con.execute(
        f"SELECT {table.cols_sql} FROM {table.name} ORDER BY {table.order_sql}"
    ).fetchall():
        values = list(raw)
        for i in stamps:
            value = values[i]
            if isinstance(value, datetime):
                values[i] = value.replace(tzinfo=UTC)
        out.append(dict(zip(names, values, strict=True)))
    return out
