"""``argo sessions|stats|query|report``: the tools, as commands of the argo CLI."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from argo_engine.settings import ArgoSettings
from argo_engine.terminal import console, fail, user_errors

DataOutput = Annotated[
    Path | None, typer.Option("--data-output", help="Root of the run folders (default: settings).")
]
Format = Annotated[str, typer.Option("--format", help="table | json | csv")]


def _checked_settings() -> ArgoSettings:
    """Settings from the environment and ``.env``; a bad one ends the command in one line."""
    from argo_engine.settings import load_settings

    with user_errors():
        return load_settings()


def _root(data_output: Path | None) -> Path:
    """The data output asked about; settings (and ``.env``) are checked on every command.

    A data output that does not exist is an error: it is a wrong folder, not an empty one.
    """
    settings = _checked_settings()
    root = data_output if data_output is not None else Path(settings.session.data_output)
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a folder"
        fail(f"data output {root} {what} (--data-output, ARGO_SESSION__DATA_OUTPUT)")
    return root


def _session_days(root: Path, session: str) -> None:
    """Fail unless ``session`` has run folders under ``root``."""
    from argo_engine.tools.catalog import run_folders

    if not any(r.session_id == session for r in run_folders(root)):
        fail(f"no session {session!r} under {root} (--session; `argo sessions` lists them)")


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
        from argo_engine.tools.catalog import list_sessions

        root = _root(data_output)
        rows = list_sessions(root)
        if not rows:
            fail(f"no sessions under {root}: it holds no run folders ({{date}}/run_N)", code=1)
        _emit(rows, fmt, "Sessions")

    @app.command()
    def stats(
        path: Annotated[Path | None, typer.Argument(help="A run folder.")] = None,
        session: Annotated[str | None, typer.Option("--session", help="Session id.")] = None,
        data_output: DataOutput = None,
        fmt: Format = "table",
    ) -> None:
        """Daily and cumulative figures of a run folder, or per day of a session."""
        from argo_engine.persistence.schema import STATS_FILE
        from argo_engine.tools.catalog import folder_stats, session_stats

        if path is not None:
            _checked_settings()
            if not (path / STATS_FILE).is_file():
                fail(f"{path} is not a run folder: it has no {STATS_FILE}")
            data = folder_stats(path)
            rows = [{"block": "daily", **_flatten(data["daily"])},
                    {"block": "cumulative", **_flatten(data["cumulative"])}]  # fmt: skip
        elif session is not None:
            root = _root(data_output)
            _session_days(root, session)
            data = session_stats(root, session)
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
        import duckdb

        from argo_engine.tools.catalog import connect

        con = connect(_root(data_output))
        try:
            rel = con.execute(sql)
            cols = [d[0] for d in rel.description or []]
            rows = [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]
        except duckdb.Error as exc:
            fail(" ".join(str(exc).split()))
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
        from argo_engine.tools.report import write_report

        root = _root(data_output)
        _session_days(root, session)
        with user_errors():
            path = write_report(root, session, out)
        console.print(f"report: {path}")
