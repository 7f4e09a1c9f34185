"""What the ``argo`` commands share on the terminal: consoles and the one-line error exit."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from argo_engine.errors import ArgoError

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` as one line on stderr and exit with ``code``."""
    # soft_wrap: the terminal may wrap a long message, rich must not split it into lines.
    from rich.markup import escape

    err_console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


@contextmanager
def user_errors(code: int = 2) -> Iterator[None]:
    """Turn an ArgoError raised inside the block into one error line and exit ``code``."""
    try:
        yield
    except ArgoError as exc:
        fail(exc.message, code)


def compact_table(title: str | None = None) -> Table:
    """A table that spends an 80-column terminal on its figures, not on borders.

    One rule under the header, one space and no line between columns. Columns made with
    :func:`add_column` wrap a value that does not fit instead of cutting it to an ellipsis.
    """
    return Table(
        title=title,
        box=box.SIMPLE_HEAD,
        padding=(0, 0, 0, 1),
        pad_edge=False,
        show_edge=False,
    )


def add_column(table: Table, header: str, *, numeric: bool = False, whole: bool = False) -> None:
    """Add a column that never shows a cut value.

    Args:
        table: The table.
        header: Column header.
        numeric: Right-justify (figures).
        whole: Never wrap the value (dates); the other columns give way first.
    """
    table.add_column(
        header,
        justify="right" if numeric else "left",
        overflow="fold",
        no_wrap=whole,
    )


def money(value: float | None) -> str:
    """A currency figure with cents."""
    return f"{float(value or 0.0):.2f}"


def percent(value: float | None) -> str:
    """A fraction as a percentage (0.045 -> 4.50%)."""
    return f"{float(value or 0.0):.2%}"


def install_stop_signals(stop: threading.Event) -> None:
    """Set ``stop`` on SIGINT/SIGTERM so the engine flushes and exits cleanly."""

    def handler(signum: int, frame: object) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)


def summary_table(rows: list[dict[str, Any]]) -> Table:
    """A table of per-day results that fits 80 columns (dates whole, figures uncut)."""
    table = compact_table("Session summary")
    add_column(table, "date", whole=True)
    add_column(table, "run")
    for col in ("trades", "win rate", "realized", "unrealized", "total", "max dd"):
        add_column(table, col, numeric=True)
    for row in rows:
        daily = row["daily"]
        res, pnl = daily.get("trade_result", {}), daily.get("trade_pnl", {})
        table.add_row(
            row["date"],
            row["run_id"],
            str(res.get("number_of_trades", 0)),
            percent(res.get("win_rate")),
            money(pnl.get("realized_pnl")),
            money(pnl.get("unrealized_pnl")),
            money(pnl.get("total_pnl")),
            percent(res.get("max_drawdown")),
        )
    return table
