"""``argo sessions|stats|query|report``: the tools, as commands of the argo CLI."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Annotated, Any

import duckdb
import typer
from rich.console import Console
from rich.table import Table

from argo_engine.errors import ArgoError
from argo_engine.tools.catalog import connect, folder_stats, list_sessions, session_stats
from argo_engine.tools.report import write_report

console = Console()

DataOutput = Annotated[
    Path | None, typer.Option("--data-output", help="Root of the run folders (default: settings).")
]
Format = Annotated[str, typer.Option("--format", help="table | json | csv")]


def _root(data_output: Path | None) -> Path:
    if data_output is not None:
        return data_output
    from argo_engine.settings import load_settings

    return Path(load_settings().session.data_output)


def _emit(rows: list[dict[str, Any]], fmt: str, title: str) -> None:
    if fmt == "json":
        typer.echo(json.dumps(rows, default=str))
        return
    if fmt == "csv":
        buf = io.StringIO()
        if rows:
            writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        typer.echo(buf.getvalue(), nl=False)
        return
    table = Table(title=title)
    for col in rows[0] if rows else []:
        table.add_column(col)
    for row in rows:
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()))
    console.print(table)


def _flatten(block: dict[str, Any]) -> dict[str, Any]:
    res, pnl, hold = (block.get(k, {}) for k in ("trade_result", "trade_pnl", "trade_holding_time"))
    return {
        "trades": res.get("number_of_trades", 0),
        "win_rate": res.get("win_rate", 0.0),
        "max_drawdown": res.get("max_drawdown", 0.0),
        "realized_pnl": pnl.get("realized_pnl", 0.0),
        "unrealized_pnl": pnl.get("unrealized_pnl", 0.0),
        "total_fees": block.get("total_fees", 0.0),
        "avg_holding_s": hold.get("avg", 0),
    }


def register(app: typer.Typer) -> None:
    """Add the tool commands to the ``argo`` CLI."""

    @app.command()
    def sessions(data_output: DataOutput = None, fmt: Format = "table") -> None:
        """List run folders: date, run, session, strategy, status, trades, realized PnL."""
        _emit(list_sessions(_root(data_output)), fmt, "Sessions")

    @app.command()
    def stats(
        path: Annotated[Path | None, typer.Argument(help="A run folder.")] = None,
        session: Annotated[str | None, typer.Option("--session", help="Session id.")] = None,
        data_output: DataOutput = None,
        fmt: Format = "table",
    ) -> None:
        """Daily and cumulative figures of a run folder, or per day of a session."""
        if path is not None:
            data = folder_stats(path)
            rows = [{"block": "daily", **_flatten(data["daily"])},
                    {"block": "cumulative", **_flatten(data["cumulative"])}]  # fmt: skip
        elif session is not None:
            data = session_stats(_root(data_output), session)
            rows = [{"date": d["date"], "run": d["run"], **_flatten(d["daily"])}
                    for d in data["days"]]  # fmt: skip
            rows.append({"date": "cumulative", "run": "", **_flatten(data["cumulative"])})
        else:
            raise typer.BadParameter("give a run folder or --session ID")
        _emit(rows, fmt, "Stats")

    @app.command()
    def query(
        sql: Annotated[
            str, typer.Argument(help="SQL over market_data, orders, trades, marks, logs.")
        ],
        data_output: DataOutput = None,
        fmt: Format = "table",
    ) -> None:
        """Run SQL over every date and run (views carry date, run and session_id columns)."""
        con = connect(_root(data_output))
        try:
            rel = con.execute(sql)
            cols = [d[0] for d in rel.description or []]
            rows = [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]
        except duckdb.Error as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
        finally:
            con.close()
        _emit(rows, fmt, "Query")

    @app.command()
    def report(
        session: Annotated[str, typer.Option("--session", help="Session id.")],
        out: Annotated[Path, typer.Option("--out", help="HTML file to write.")],
        data_output: DataOutput = None,
    ) -> None:
        """Write a self-contained HTML report (equity, drawdown, per-day, trades, marks)."""
        try:
            path = write_report(_root(data_output), session, out)
        except ArgoError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
        console.print(f"report: {path}")
