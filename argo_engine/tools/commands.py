"""``argo sessions|stats|query|report``: the tools, as commands of the argo CLI."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from argo_engine.settings import ArgoSettings
from argo_engine.terminal import (
    add_column,
    compact_table,
    console,
    err_console,
    fail,
    money,
    percent,
    user_errors,
)

DataOutput = Annotated[
    Path | None,
    typer.Option(
        "--data-output",
        # Brackets are escaped: typer reads help text as rich markup.
        help="Root of the run folders. \\[default: data/live-trading] "
        "\\[env var: ARGO_SESSION__DATA_OUTPUT]",
    ),
]
Format = Annotated[str, typer.Option("--format", help="table | json | csv")]
Wide = Annotated[
    bool,
    typer.Option(
        "--wide", help="Table: every column (wider than 80 columns); json and csv always have all."
    ),
]

# Table view of a column: (key, header, kind). Kinds: text, int, money, pct, qty.
Column = tuple[str, str, str]
_FIGURES: list[Column] = [
    ("trades", "trades", "int"),
    ("win_rate", "win rate", "pct"),
    ("realized_pnl", "realized", "money"),
    ("unrealized_pnl", "unrealized", "money"),
    ("total_pnl", "total", "money"),
    ("max_drawdown", "max dd", "pct"),
]
_WIDE_FIGURES: list[Column] = [
    *_FIGURES,
    ("max_drawdown_abs", "max dd abs", "money"),
    ("total_fees", "fees", "money"),
    ("avg_holding_s", "avg hold s", "int"),
    ("unmatched_qty", "unmatched", "qty"),
]
_SESSIONS: list[Column] = [
    ("date", "date", "date"),
    ("run", "run", "text"),
    ("session_id", "session", "text"),
    ("status", "status", "text"),
    ("trades", "trades", "int"),
    ("realized_pnl", "realized", "money"),
]
_WIDE_SESSIONS: list[Column] = [*_SESSIONS[:3], ("strategy", "strategy", "text"), *_SESSIONS[3:]]


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


def _cell(value: Any, kind: str) -> str:
    if kind == "money":
        return money(value)
    if kind == "pct":
        return percent(value)
    if kind == "qty":
        return f"{float(value or 0.0):g}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _emit(
    rows: list[dict[str, Any]],
    fmt: str,
    title: str,
    columns: list[Column] | None = None,
    *,
    wide: bool = False,
) -> None:
    """Print ``rows`` as json, csv (every key) or a table (``columns``, or every key).

    A ``wide`` table is as wide as its content: the terminal wraps its lines, if it must.
    """
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
    if fmt != "table":
        fail(f"unknown --format {fmt!r}: use table, json or csv")
    if columns is None:
        first = rows[0] if rows else {}
        columns = [
            (key, key, "num" if isinstance(value, int | float) else "text")
            for key, value in first.items()
        ]
    table = compact_table(title)
    for _, header, kind in columns:
        add_column(table, header, numeric=kind not in ("text", "date"), whole=kind == "date")
    for row in rows:
        table.add_row(*(_cell(row.get(key, ""), kind) for key, _, kind in columns))
    from rich.console import Console
    from rich.measure import Measurement

    out = console
    needed = Measurement.get(console, console.options.update_width(10_000), table).maximum
    if wide and needed > console.width:
        out = Console(width=needed)
    out.print(table)
    if not wide and needed > console.width:
        err_console.print(
            f"(wrapped to {console.width} columns: --wide for one line a row, --format csv)",
            highlight=False,
        )


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
        "total_pnl": pnl.get("total_pnl", 0.0),
        "max_drawdown_abs": res.get("max_drawdown_abs", 0.0),
        "unmatched_qty": res.get("unmatched_qty", 0.0),
    }


def register(app: typer.Typer) -> None:
    """Add the tool commands to the ``argo`` CLI."""

    @app.command()
    def sessions(data_output: DataOutput = None, fmt: Format = "table", wide: Wide = False) -> None:
        """List run folders: date, run, session, status, trades, realized PnL (--wide: strategy).

        Status: closed (finished), open (running, or stopped without closing: a crash). The
        table shows it when a run is open (--wide: always).
        """
        from argo_engine.tools.catalog import list_sessions

        root = _root(data_output)
        rows = list_sessions(root)
        if not rows:
            fail(f"no sessions under {root}: it holds no run folders ({{date}}/run_N)", code=1)
        columns = _WIDE_SESSIONS if wide else _SESSIONS
        if not wide and all(r["status"] == "closed" for r in rows):
            # Only an open run makes the status worth its column: without it a Prefect
            # session id (a 36-character UUID) still fits 80 columns whole.
            columns = [c for c in columns if c[0] != "status"]
        _emit(rows, fmt, "Sessions", columns, wide=wide)

    @app.command()
    def stats(
        path: Annotated[Path | None, typer.Argument(help="A run folder.")] = None,
        session: Annotated[str | None, typer.Option("--session", help="Session id.")] = None,
        data_output: DataOutput = None,
        fmt: Format = "table",
        wide: Wide = False,
    ) -> None:
        """Daily and cumulative figures of a run folder, or per day of a session.

        Columns: trades, win rate, realized, unrealized and total PnL, max drawdown.

        --wide adds max drawdown in currency, fees, avg holding time, unmatched SELL qty.
        """
        from argo_engine.persistence.schema import STATS_FILE
        from argo_engine.tools.catalog import folder_stats, session_stats

        if path is not None:
            _checked_settings()
            if not (path / STATS_FILE).is_file():
                fail(f"{path} is not a run folder: it has no {STATS_FILE}")
            data = folder_stats(path)
            rows = [{"block": "daily", **_flatten(data["daily"])},
                    {"block": "cumulative", **_flatten(data["cumulative"])}]  # fmt: skip
            keys: list[Column] = [("block", "block", "text")]
        elif session is not None:
            root = _root(data_output)
            _session_days(root, session)
            data = session_stats(root, session)
            rows = [{"date": d["date"], "run": d["run"], **_flatten(d["daily"])}
                    for d in data["days"]]  # fmt: skip
            rows.append({"date": "cumulative", "run": "", **_flatten(data["cumulative"])})
            keys = [("date", "date", "date"), ("run", "run", "text")]
        else:
            raise typer.BadParameter("give a run folder or --session ID")
        _emit(rows, fmt, "Stats", keys + (_WIDE_FIGURES if wide else _FIGURES), wide=wide)

    @app.command()
    def query(
        sql: Annotated[
            str, typer.Argument(help="SQL over market_data, orders, trades, marks, logs.")
        ],
        data_output: DataOutput = None,
        fmt: Format = "table",
        wide: Wide = False,
    ) -> None:
        """Run SQL over every date and run (views carry date, run and session_id columns).

        The table wraps values to fit the terminal; --wide keeps each row on one line.
        """
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
        _emit(rows, fmt, "Query", wide=wide)

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
