"""Integrity checks of run folders (``argo verify``)."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import yaml

from argo_engine.errors import RecoveryError
from argo_engine.persistence.runs import parse_run_number, read_run_yaml
from argo_engine.persistence.schema import (
    JOURNAL_DIR,
    RECOVERY_MARKER,
    RUN_FILE,
    STATS_FILE,
    TABLES,
)


def verify_folder(folder: Path) -> list[str]:
    """Check one ``{date}/run_N`` folder.

    Checks: every parquet file exists and is readable with the DESIGN.md schema, keys are unique,
    market data is sorted and unique on (symbol, time), stats.yaml parses and its daily trade
    figures match trades.parquet, run.yaml exists, no journal data is left undrained and no
    recovery was left unfinished.

    Returns:
        Human-readable problems, empty when the folder is sound.
    """
    problems: list[str] = []
    con = duckdb.connect()
    try:
        for schema in TABLES.values():
            path = folder / schema.file_name
            if not path.exists():
                problems.append(f"{path}: missing")
                continue
            try:
                described = con.execute(
                    "DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]
                ).fetchall()
            except duckdb.Error as exc:
                problems.append(f"{path}: unreadable ({exc})")
                continue
            got = [(r[0], r[1]) for r in described]
            want = list(schema.columns)
            # Extra columns may follow ours; a file of an earlier version ends before the
            # columns added since (schema.added).
            if not schema.written_by_a_version(got[: len(want)]):
                problems.append(f"{path}: columns {got} differ from {want}")
                continue
            keys = ", ".join(schema.key)
            (dups,) = con.execute(
                f"SELECT count(*) FROM (SELECT {keys} FROM read_parquet(?) "
                f"GROUP BY {keys} HAVING count(*) > 1)",
                [str(path)],
            ).fetchone() or (0,)
            if dups:
                problems.append(f"{path}: {dups} duplicate key(s) on ({keys})")
        stats_path = folder / STATS_FILE
        trades_path = folder / "trades.parquet"
        if not stats_path.exists():
            problems.append(f"{stats_path}: missing")
        else:
            try:
                stats = yaml.safe_load(stats_path.read_text())
            except yaml.YAMLError as exc:
                problems.append(f"{stats_path}: unreadable ({exc})")
                stats = None
            if isinstance(stats, dict) and trades_path.exists() and "daily" in stats:
                sources = _same_day_session_trades(folder)
                problems.extend(_check_stats(con, stats, sources, stats_path))
        if not (folder / RUN_FILE).exists():
            problems.append(f"{folder / RUN_FILE}: missing")
        journal = folder / JOURNAL_DIR
        if journal.exists():
            leftovers = [p for p in journal.glob("*.jsonl") if p.stat().st_size > 0]
            if leftovers:
                names = ", ".join(sorted(p.name for p in leftovers))
                problems.append(f"{journal}: journal not drained ({names})")
            if (journal / RECOVERY_MARKER).exists():
                problems.append(
                    f"{journal}: recovery not finished ({RECOVERY_MARKER}); the next start "
                    "of the session finishes it"
                )
    finally:
        con.close()
    return problems


def _same_day_session_trades(folder: Path) -> list[str]:
    # The daily block covers every run of the session on that date up to this one.
    own = read_run_yaml(folder)
    number = parse_run_number(folder.name)
    if own is None or number is None:
        return [str(folder / "trades.parquet")]
    files = []
    for other in sorted(folder.parent.glob("run_*")):
        n = parse_run_number(other.name)
        trades = other / "trades.parquet"
        if n is None or n > number or not trades.exists():
            continue
        try:
            info = read_run_yaml(other)
        except RecoveryError:
            continue
        if info is not None and info.session_id == own.session_id:
            files.append(str(trades))
    return files


def _check_stats(
    con: duckdb.DuckDBPyConnection, stats: dict[str, object], trades: list[str], stats_path: Path
) -> list[str]:
    row = con.execute(
        "SELECT count(*), coalesce(sum(pnl), 0), coalesce(sum(commission), 0) "
        # union_by_name: runs of one date may have been written by different versions.
        "FROM read_parquet(?, union_by_name = true)",
        [trades],
    ).fetchone()
    assert row is not None
    n, realized, fees = int(row[0]), float(row[1]), float(row[2])
    daily = stats.get("daily")
    if not isinstance(daily, dict):
        return [f"{stats_path}: no daily block"]
    problems = []
    got_n = daily.get("trade_result", {}).get("number_of_trades")
    if got_n != n:
        problems.append(f"{stats_path}: daily number_of_trades {got_n} != {n} rows in trades")
    got_pnl = float(daily.get("trade_pnl", {}).get("realized_pnl", 0.0))
    if not math.isclose(got_pnl, realized, rel_tol=1e-9, abs_tol=1e-6):
        problems.append(f"{stats_path}: daily realized_pnl {got_pnl} != sum(pnl) {realized}")
    got_fees = float(daily.get("total_fees", 0.0))
    if not math.isclose(got_fees, fees, rel_tol=1e-9, abs_tol=1e-6):
        problems.append(f"{stats_path}: daily total_fees {got_fees} != sum(commission) {fees}")
    return problems


def verify_path(path: Path) -> dict[str, list[str]]:
    """Check a run folder, a date folder or a whole data output path.

    Returns:
        Problems per run folder (only folders with problems are listed).
    """
    if (path / RUN_FILE).exists() or path.name.startswith("run_"):
        folders = [path]
    else:
        folders = sorted(p for p in path.glob("run_*") if p.is_dir())
        folders += sorted(p for p in path.glob("*/run_*") if p.is_dir())
    report: dict[str, list[str]] = {}
    for folder in folders:
        problems = verify_folder(folder)
        if problems:
            report[str(folder)] = problems
    return report
