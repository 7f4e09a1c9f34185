"""A DuckDB catalog over every date and run of a data output path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import yaml

from argo_engine.errors import RecoveryError
from argo_engine.persistence.files import load_yaml
from argo_engine.persistence.runs import parse_run_number, read_run_yaml
from argo_engine.persistence.schema import JOURNAL_DIR, STATS_FILE, TABLES


@dataclass(frozen=True, slots=True)
class RunFolder:
    """One ``{date}/run_N`` folder and its identity."""

    date: str
    run: str
    run_number: int
    session_id: str
    strategy: str
    folder: Path


def run_folders(data_output: Path) -> list[RunFolder]:
    """Every run folder with a readable run.yaml, sorted by date and run number."""
    found = []
    for folder in data_output.glob("*/run_*"):
        n = parse_run_number(folder.name)
        if n is None or not folder.is_dir():
            continue
        try:
            info = read_run_yaml(folder)
        except RecoveryError:
            info = None
        found.append(
            RunFolder(
                date=folder.parent.name,
                run=folder.name,
                run_number=n,
                session_id=info.session_id if info else "",
                strategy=info.strategy if info else "",
                folder=folder,
            )
        )
    return sorted(found, key=lambda r: (r.date, r.run_number))


def connect(data_output: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with views over all dates and runs.

    Views ``market_data``, ``orders``, ``trades``, ``marks`` and ``logs`` hold the DESIGN.md
    columns plus ``date`` (DATE), ``run`` (e.g. ``run_1``) and ``session_id``.
    """
    con = duckdb.connect()
    runs = run_folders(data_output)
    con.execute("CREATE TABLE runs (folder VARCHAR, date DATE, run VARCHAR, session_id VARCHAR)")
    if runs:
        con.executemany(
            "INSERT INTO runs VALUES (?, ?, ?, ?)",
            [[str(r.folder), r.date, r.run, r.session_id] for r in runs],
        )
    for name, schema in TABLES.items():
        files = [str(r.folder / schema.file_name) for r in runs
                 if (r.folder / schema.file_name).exists()]  # fmt: skip
        defaults = dict(schema.added)
        cols = ", ".join(
            f"coalesce(t.{c}, {_literal(defaults[c], ty)}) AS {c}" if c in defaults else f"t.{c}"
            for c, ty in schema.columns
        )
        if files:
            listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
            source = f"read_parquet([{listing}], filename = true, union_by_name = true)"
            if schema.added:
                # Files of earlier versions lack the columns added since: an empty relation
                # that has them all gives the union every column even when no file has one.
                typed = ", ".join(f"NULL::{ty} AS {c}" for c, ty in schema.columns)
                source = (
                    f"(SELECT * FROM {source} UNION ALL BY NAME "
                    f"SELECT {typed}, NULL::VARCHAR AS filename WHERE false)"
                )
            con.execute(
                f"CREATE VIEW {name} AS SELECT {cols}, r.date, r.run, r.session_id "
                f"FROM {source} t JOIN runs r ON parse_dirpath(t.filename) = r.folder"
            )
        else:
            typed = ", ".join(f"NULL::{ty} AS {c}" for c, ty in schema.columns)
            con.execute(
                f"CREATE VIEW {name} AS SELECT {typed}, NULL::DATE AS date, "
                f"NULL::VARCHAR AS run, NULL::VARCHAR AS session_id WHERE false"
            )
    return con


def _literal(value: object, sql_type: str) -> str:
    """SQL literal of a column default (numbers and text)."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + f"'::{sql_type}"
    return f"{value!r}::{sql_type}"


def _stats(folder: Path) -> dict[str, Any]:
    try:
        data = load_yaml((folder / STATS_FILE).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def list_sessions(data_output: Path) -> list[dict[str, Any]]:
    """One row per run folder: date, run, session, strategy, status, trades, realized PnL."""
    con = connect(data_output)
    try:
        figures = {
            (str(d), run): (int(n), float(p))
            for d, run, n, p in con.execute(
                "SELECT date, run, count(*), coalesce(sum(pnl), 0) FROM trades GROUP BY ALL"
            ).fetchall()
        }
    finally:
        con.close()
    rows = []
    for r in run_folders(data_output):
        journal = r.folder / JOURNAL_DIR
        open_ = journal.exists() and any(p.stat().st_size > 0 for p in journal.glob("*.jsonl"))
        trades, pnl = figures.get((r.date, r.run), (0, 0.0))
        rows.append(
            {
                "date": r.date,
                "run": r.run,
                "session_id": r.session_id,
                "strategy": r.strategy,
                "status": "open" if open_ else "closed",
                "trades": trades,
                "realized_pnl": pnl,
            }
        )
    return rows


def session_stats(data_output: Path, session_id: str) -> dict[str, Any]:
    """Per-day daily blocks and the latest cumulative block of a session (from stats.yaml)."""
    days = []
    cumulative: dict[str, Any] = {}
    for r in run_folders(data_output):
        if r.session_id != session_id:
            continue
        stats = _stats(r.folder)
        if not stats:
            continue
        days.append({"date": r.date, "run": r.run, "daily": stats.get("daily", {})})
        cumulative = stats.get("cumulative", cumulative)
    return {"session_id": session_id, "days": days, "cumulative": cumulative}


def folder_stats(path: Path) -> dict[str, Any]:
    """The stats.yaml of one run folder."""
    stats = _stats(path)
    return {"folder": str(path), "daily": stats.get("daily", {}),
            "cumulative": stats.get("cumulative", {})}  # fmt: skip
