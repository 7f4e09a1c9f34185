"""How the rows of each table are encoded, and the state the writers keep per table.

Rows are tuples in schema column order, times as microseconds since the epoch (``_us``).
``_derived`` builds what follows from a schema alone (the arrow type of a batch, the key
getter, the SQL fragments) once per process; ``_Table`` holds one table's buffers, journal
and file state for :class:`~argo_engine.persistence.writers.RunWriters`.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from argo_engine.errors import DataError
from argo_engine.persistence.journal import Journal, encode_batch_line, encode_rows
from argo_engine.persistence.parquet_append import Footer
from argo_engine.persistence.schema import TableSchema

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)

_ARROW_TYPES: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "DOUBLE": pa.float64(),
    "BIGINT": pa.int64(),
    "TIMESTAMP": pa.timestamp("us"),
}

Row = tuple[object, ...]


def _us(value: datetime) -> int:
    """Microseconds since the epoch of a timezone-aware datetime."""
    try:
        return (value - _EPOCH) // _ONE_US
    except TypeError as exc:
        raise DataError(f"timestamp {value!r} must be timezone-aware (UTC)") from exc


def _opt_us(value: datetime | None) -> int | None:
    return None if value is None else _us(value)


def _sort_key(values: tuple[object, ...]) -> tuple[tuple[bool, object], ...]:
    # NULLs sort last (DuckDB's default for ascending order).
    return tuple((v is None, v) for v in values)


def _sorted_by(batch: pa.Table, columns: tuple[str, ...]) -> bool:
    """Whether ``batch`` is in ascending lexicographic order of ``columns`` (no NULLs).

    Rows arrive in order almost always; checking costs far less than sorting.
    """
    n = batch.num_rows
    if n < 2:
        return True
    ordered: Any = None  # the rows (i, i + 1) already ordered by the earlier columns
    for name in reversed(columns):
        column = batch.column(name)
        before, after = column.slice(0, n - 1), column.slice(1)
        if ordered is None:
            ordered = pc.less_equal(before, after)
        else:
            ordered = pc.or_(pc.less(before, after), pc.and_(pc.equal(before, after), ordered))
    return bool(pc.all(pc.fill_null(ordered, False)).as_py())


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_Derived = tuple[pa.DataType, list[str], Callable[[Row], object], str, str, str, str, str]


@functools.cache
def _derived(schema: TableSchema) -> _Derived:
    """The arrow type, text columns, key getter and SQL fragments of a table."""
    arrow_type = pa.struct([(c, _ARROW_TYPES[t]) for c, t in schema.columns])
    # Dictionary encoding pays for text (symbols, statuses), not for times and prices.
    text_columns = [c for c, t in schema.columns if t == "VARCHAR"]
    key_idx = [schema.column_names.index(k) for k in schema.key]
    key_of: Callable[[Row], object] = operator.itemgetter(*key_idx)
    cols_sql = ", ".join(_quote(c) for c in schema.column_names)
    order_sql = ", ".join(_quote(c) for c in schema.order_by)
    desc_sql = ", ".join(f"{_quote(c)} DESC" for c in schema.order_by)
    # DuckDB marks a parquet column REQUIRED when its statistics show no NULL yet, so the
    # same table would get another schema once a NULL arrives, and a file could not take
    # appends written from a batch. The no-op CASE keeps every column OPTIONAL.
    export_sql = ", ".join(
        f"CASE WHEN {_quote(c)} IS NULL THEN NULL ELSE {_quote(c)} END AS {_quote(c)}"
        for c in schema.column_names
    )
    match_sql = " AND ".join(f"t.{_quote(k)} = b.{_quote(k)}" for k in schema.key)
    return (arrow_type, text_columns, key_of, cols_sql, order_sql, desc_sql, export_sql,
            match_sql)  # fmt: skip


class _Table:
    """Buffers, journal and materialization state of one table."""

    __slots__ = (
        "arrow_type",
        "changed",
        "cols_sql",
        "desc_sql",
        "export_sql",
        "file_bytes",
        "file_last",
        "file_rows",
        "footer",
        "fresh",
        "fresh_replace",
        "journal",
        "key_of",
        "loaded",
        "match_sql",
        "name",
        "next_at",
        "order_sql",
        "path",
        "pending",
        "replace",
        "schema",
        "tag",
        "text_columns",
        "unjournaled",
        "unwritten",
    )

    def __init__(
        self, schema: TableSchema, folder: Path, journal_dir: Path, shared: Journal | None
    ) -> None:
        self.schema = schema
        self.name = _quote(schema.name)
        self.path = folder / schema.file_name
        # Market data, orders and trades share one journal (lines tagged with the table), so
        # that an order and the bars it was decided on are durable with a single fsync.
        self.journal = shared or Journal(journal_dir / f"{schema.name}.jsonl")
        self.tag = orjson.dumps(schema.name) + b"," if shared is not None else None
        # Rows not yet inserted into DuckDB, and rows not yet written to the journal file.
        self.pending: list[Row] = []
        self.unjournaled: list[Row] = []
        # True when pending may repeat a key already stored (or repeat one within itself).
        self.replace = False
        # True when rows arrived since the last flush took them (owned by the engine thread).
        self.changed = False
        # True when DuckDB holds rows the parquet file lacks (owned by whoever flushes).
        self.unwritten = False
        # True once rows may have been inserted into the DuckDB table (it is emptied before
        # its database serves another writer).
        self.loaded = False
        # Monotonic time before which no non-forced materialization of this table runs.
        self.next_at = 0.0
        # Batches loaded into DuckDB since the file was last written, and whether one of them
        # replaced rows by key: what decides between appending to the file and rewriting it.
        self.fresh: list[pa.Table] = []
        self.fresh_replace = False
        # Rows in the file, its greatest sort key, and its footer when this writer wrote it.
        self.file_rows = 0
        self.file_bytes = 0
        self.file_last: tuple[object, ...] | None = None
        self.footer: Footer | None = None
        # What follows from the schema alone is built once per process (a date opens five
        # tables on the engine thread).
        (
            self.arrow_type,
            self.text_columns,
            self.key_of,
            self.cols_sql,
            self.order_sql,
            self.desc_sql,
            self.export_sql,
            self.match_sql,
        ) = _derived(schema)

    def encode(self, rows: list[Row]) -> bytes:
        """Journal lines of ``rows`` (tagged when the journal is shared)."""
        if self.tag is None:
            return encode_rows(rows)
        return encode_batch_line(rows, self.tag)
