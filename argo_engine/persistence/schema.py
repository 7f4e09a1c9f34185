"""The on-disk contract: file names, column names, order and DuckDB types (DESIGN.md).

This module is the single source of truth for every parquet file of a run folder. Seed columns
come first in seed order; extra columns only after them. A column added to a table after files
were written goes last, with the value the rows written before it take (``added``): files and
journal lines of earlier versions, which end before it, stay readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TableSchema:
    """Columns of one parquet file.

    Attributes:
        name: Table name; the file is ``{name}.parquet``.
        columns: Ordered (column, DuckDB type) pairs.
        key: Columns that identify a row; a later row with the same key replaces the earlier.
        order_by: Sort order of the materialized file.
        added: The last columns, in order, that earlier versions did not write, each with the
            value an earlier row takes (a file or journal row may end before any of them).
    """

    name: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]
    order_by: tuple[str, ...]
    added: tuple[tuple[str, object], ...] = ()

    def __post_init__(self) -> None:
        tail = self.column_names[len(self.columns) - len(self.added) :]
        if tail != tuple(c for c, _ in self.added):
            raise ValueError(f"{self.name}: added columns must be the last columns, in order")

    @property
    def column_names(self) -> tuple[str, ...]:
        """Column names in file order."""
        return tuple(c for c, _ in self.columns)

    @property
    def min_width(self) -> int:
        """Columns every file and journal row has (all but the ``added`` ones)."""
        return len(self.columns) - len(self.added)

    def written_by_a_version(self, columns: Sequence[tuple[str, str]]) -> bool:
        """Whether a file's (column, type) pairs are those this or an earlier version wrote.

        That is this table's columns in order, possibly ending before the ``added`` ones.
        """
        return self.min_width <= len(columns) <= len(self.columns) and list(columns) == list(
            self.columns[: len(columns)]
        )

    def complete(self, row: list[object]) -> list[object]:
        """Extend a row written before the last ``added`` columns existed with their values.

        Args:
            row: A journal row of ``min_width`` to ``len(columns)`` values (changed in place).

        Returns:
            ``row``, now one value per column.
        """
        missing = len(self.columns) - len(row)
        if missing > 0:
            row.extend(value for _, value in self.added[len(self.added) - missing :])
        return row

    @property
    def file_name(self) -> str:
        """File name inside a run folder."""
        return f"{self.name}.parquet"


ORDERS = TableSchema(
    name="orders",
    columns=(
        ("order_id", "VARCHAR"),
        ("symbol", "VARCHAR"),
        ("side", "VARCHAR"),
        ("order_type", "VARCHAR"),
        ("quantity", "DOUBLE"),
        ("price", "DOUBLE"),
        ("timestamp", "TIMESTAMP"),
        ("status", "VARCHAR"),
        ("strategy_name", "VARCHAR"),
        ("position_type", "VARCHAR"),
        ("reason", "VARCHAR"),
        ("message", "VARCHAR"),
    ),
    key=("order_id",),
    order_by=("timestamp", "order_id"),
)

TRADES = TableSchema(
    name="trades",
    columns=(
        ("order_id", "VARCHAR"),
        ("symbol", "VARCHAR"),
        ("side", "VARCHAR"),
        ("quantity", "DOUBLE"),
        ("price", "DOUBLE"),
        ("timestamp", "TIMESTAMP"),
        ("executed_at", "TIMESTAMP"),
        ("executed_qty", "DOUBLE"),
        ("executed_price", "DOUBLE"),
        ("commission", "DOUBLE"),
        ("pnl", "DOUBLE"),
        ("position_type", "VARCHAR"),
        ("trade_id", "VARCHAR"),
        ("commission_asset", "VARCHAR"),
        ("base_commission", "DOUBLE"),
    ),
    key=("trade_id",),
    order_by=("executed_at", "trade_id"),
    # Earlier versions booked every fill at its executed quantity: as if no fee was in base.
    added=(("base_commission", 0.0),),
)

MARKS = TableSchema(
    name="marks",
    columns=(
        ("id", "BIGINT"),
        ("market_data_id", "VARCHAR"),
        ("signal_type", "VARCHAR"),
        ("signal_name", "VARCHAR"),
        ("signal_time", "TIMESTAMP"),
        ("signal_symbol", "VARCHAR"),
        ("color", "VARCHAR"),
        ("shape", "VARCHAR"),
        ("level", "VARCHAR"),
        ("title", "VARCHAR"),
        ("message", "VARCHAR"),
        ("category", "VARCHAR"),
    ),
    key=("id",),
    order_by=("id",),
)

LOGS = TableSchema(
    name="logs",
    columns=(
        ("id", "BIGINT"),
        ("timestamp", "TIMESTAMP"),
        ("symbol", "VARCHAR"),
        ("level", "VARCHAR"),
        ("message", "VARCHAR"),
        ("fields", "VARCHAR"),
    ),
    key=("id",),
    order_by=("id",),
)

MARKET_DATA = TableSchema(
    name="market_data",
    columns=(
        ("time", "TIMESTAMP"),
        ("symbol", "VARCHAR"),
        ("open", "DOUBLE"),
        ("high", "DOUBLE"),
        ("low", "DOUBLE"),
        ("close", "DOUBLE"),
        ("volume", "DOUBLE"),
    ),
    key=("symbol", "time"),
    order_by=("time", "symbol"),
)

TABLES: dict[str, TableSchema] = {t.name: t for t in (ORDERS, TRADES, MARKS, LOGS, MARKET_DATA)}

STATS_FILE = "stats.yaml"
RUN_FILE = "run.yaml"
JOURNAL_DIR = ".journal"
# In JOURNAL_DIR while the reopen of a crashed folder has drained its journals into the parquet
# files but not yet saved the state reconciled with them (see TradingEngine.open_day).
RECOVERY_MARKER = "recovery-pending"
