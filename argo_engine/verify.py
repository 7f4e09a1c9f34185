"""Integrity checks of run folders (``argo verify``).

Every folder is checked on its own: a damaged file is a problem listed under its folder (naming
the file), never an exception that stops the other folders from being checked.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from argo_engine.errors import RecoveryError
from argo_engine.persistence.parquet_append import ParquetAppendError, check_file
from argo_engine.persistence.runs import RunInfo, parse_run_number, read_run_yaml
from argo_engine.persistence.schema import (
    JOURNAL_DIR,
    RECOVERY_MARKER,
    RUN_FILE,
    STATS_FILE,
    TABLES,
)


@dataclass
class FolderReport:
    """What verify found in one run folder.

    Attributes:
        problems: Human-readable problems, each naming its file.
        damaged: Parquet files that cannot be read back as they were written (quarantinable).
    """

    problems: list[str] = field(default_factory=list)
    damaged: list[Path] = field(default_factory=list)


def read_whole_parquet(path: Path) -> pa.Table:
    """Read every page of a parquet file, verifying page checksums where it has them.

    Raises:
        pyarrow.ArrowException: If a page cannot be decoded or fails its checksum.
        OSError: If the file cannot be read.
    """
    return pq.read_table(path, page_checksum_verification=True, use_threads=False)


def verify_folder(folder: Path) -> list[str]:
    """Check one ``{date}/run_N`` folder.

    Checks: every parquet file exists, matches the CRC-32 checksums of its data bytes and
    footer that the engine records in the footer (files without them: written by an earlier
    version), and reads back completely (page checksums verified where written) with the
    DESIGN.md schema, keys are unique, market data is sorted and
    unique on (symbol, time), stats.yaml parses and its daily trade figures match
    trades.parquet, run.yaml exists and is readable, no journal data is left undrained, no
    recovery was left unfinished and no temporary file was left behind.

    Returns:
        Human-readable problems, empty when the folder is sound.
    """
    return check_folder(folder).problems


def check_folder(folder: Path) -> FolderReport:
    """Check one run folder (see :func:`verify_folder`); never raises for a damaged file."""
    report = FolderReport()
    try:
        _check(folder, report)
    except Exception as exc:  # a check that fails is a finding, not a crash
        report.problems.append(f"{folder}: could not be checked ({type(exc).__name__}: {exc})")
    return report


def _check(folder: Path, report: FolderReport) -> None:
    problems = report.problems
    readable: set[str] = set()
    con = duckdb.connect()
    try:
        for schema in TABLES.values():
            path = folder / schema.file_name
            if not path.exists():
                problems.append(f"{path}: missing")
                continue
            try:
                # Damaged bytes can still decode (as wrong rows): the checksums the engine
                # keeps in each file's footer are compared first.
                mismatch = check_file(path)
                if mismatch is not None:
                    problems.append(f"{path}: damaged, {mismatch}")
                    report.damaged.append(path)
                    continue
                read_whole_parquet(path)
                described = con.execute(
                    "DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]
                ).fetchall()
            except (pa.ArrowException, OSError, duckdb.Error, ParquetAppendError) as exc:
                problems.append(f"{path}: damaged, unreadable ({_one_line(exc)})")
                report.damaged.append(path)
                continue
            got = [(r[0], r[1]) for r in described]
            want = list(schema.columns)
            # Extra columns may follow ours; a file of an earlier version ends before the
            # columns added since (schema.added).
            if not schema.written_by_a_version(got[: len(want)]):
                problems.append(f"{path}: columns {got} differ from {want}")
                continue
            readable.add(schema.file_name)
            keys = ", ".join(schema.key)
            try:
                (dups,) = con.execute(
                    f"SELECT count(*) FROM (SELECT {keys} FROM read_parquet(?) "
                    f"GROUP BY {keys} HAVING count(*) > 1)",
                    [str(path)],
                ).fetchone() or (0,)
            except duckdb.Error as exc:
                problems.append(f"{path}: unreadable ({_one_line(exc)})")
                continue
            if dups:
                problems.append(f"{path}: {dups} duplicate key(s) on ({keys})")
        run_path = folder / RUN_FILE
        info: RunInfo | None = None
        if not run_path.exists():
            problems.append(f"{run_path}: missing")
        else:
            try:
                info = read_run_yaml(folder)
            except (RecoveryError, OSError) as exc:
                problems.append(
                    f"{run_path}: unreadable ({_one_line(exc)}); the next start of its "
                    "session rebuilds it from the folder"
                )
        stats_path = folder / STATS_FILE
        if not stats_path.exists():
            problems.append(f"{stats_path}: missing")
        else:
            try:
                stats = yaml.safe_load(stats_path.read_text())
            except (yaml.YAMLError, OSError, ValueError) as exc:
                problems.append(f"{stats_path}: unreadable ({_one_line(exc)})")
                stats = None
            if isinstance(stats, dict) and "daily" in stats:
                problems.extend(_check_stats_of(con, folder, info, stats, stats_path, readable))
            elif stats is not None:
                problems.append(f"{stats_path}: no daily block")
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
        # pathlib's "*" also matches dot files, so one glob finds hidden temps too.
        temps = sorted({p.name for p in folder.glob("*.tmp")})
        if temps:
            problems.append(
                f"{folder}: temporary file(s) left behind by a crashed writer: "
                f"{', '.join(temps)} (the next start of the session removes them)"
            )
    finally:
        con.close()


def _check_stats_of(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    info: RunInfo | None,
    stats: dict[str, Any],
    stats_path: Path,
    readable: set[str],
) -> list[str]:
    if "trades.parquet" not in readable:
        return [f"{stats_path}: not checked against trades.parquet, which is unreadable"]
    if info is None:
        return [f"{stats_path}: not checked against the trades: run.yaml is unreadable"]
    sources, unreadable = _same_day_session_trades(folder, info)
    if unreadable:
        return [
            f"{stats_path}: not checked against the session's trades of the date: "
            f"{', '.join(unreadable)} unreadable"
        ]
    try:
        return _check_stats(con, stats, sources, stats_path)
    except (duckdb.Error, AttributeError, TypeError, ValueError) as exc:
        return [f"{stats_path}: daily figures could not be checked ({_one_line(exc)})"]


def _same_day_session_trades(folder: Path, own: RunInfo) -> tuple[list[str], list[str]]:
    # The daily block covers every run of the session on that date up to this one.
    number = parse_run_number(folder.name)
    if number is None:
        return [str(folder / "trades.parquet")], []
    files, unreadable = [], []
    for other in sorted(folder.parent.glob("run_*")):
        n = parse_run_number(other.name)
        trades = other / "trades.parquet"
        if n is None or n > number or not trades.exists():
            continue
        try:
            info = read_run_yaml(other)
        except (RecoveryError, OSError):
            if other != folder:
                # Its runs may belong to this session: the sum cannot be trusted.
                unreadable.append(str(other / RUN_FILE))
            continue
        if info is not None and info.session_id == own.session_id:
            try:
                pq.read_metadata(trades)
            except (pa.ArrowException, OSError):
                unreadable.append(str(trades))
                continue
            files.append(str(trades))
    return files, unreadable


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
    got_n = (daily.get("trade_result") or {}).get("number_of_trades")
    if got_n != n:
        problems.append(f"{stats_path}: daily number_of_trades {got_n} != {n} rows in trades")
    got_pnl = float((daily.get("trade_pnl") or {}).get("realized_pnl", 0.0))
    if not math.isclose(got_pnl, realized, rel_tol=1e-9, abs_tol=1e-6):
        problems.append(f"{stats_path}: daily realized_pnl {got_pnl} != sum(pnl) {realized}")
    got_fees = float(daily.get("total_fees", 0.0))
    if not math.isclose(got_fees, fees, rel_tol=1e-9, abs_tol=1e-6):
        problems.append(f"{stats_path}: daily total_fees {got_fees} != sum(commission) {fees}")
    return problems


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def run_folders(path: Path) -> list[Path]:
    """The run folders under a run folder, a date folder or a whole data output path."""
    if (path / RUN_FILE).exists() or path.name.startswith("run_"):
        return [path]
    folders = sorted(p for p in path.glob("run_*") if p.is_dir())
    folders += sorted(p for p in path.glob("*/run_*") if p.is_dir())
    return folders


def check_path(path: Path) -> dict[Path, FolderReport]:
    """Check every run folder under ``path``; only folders with problems are returned.

    Raises:
        OSError: If ``path`` itself cannot be listed.
    """
    report: dict[Path, FolderReport] = {}
    for folder in run_folders(path):
        found = check_folder(folder)
        if found.problems:
            report[folder] = found
    return report


def verify_path(path: Path) -> dict[str, list[str]]:
    """Check a run folder, a date folder or a whole data output path.

    Returns:
        Problems per run folder (only folders with problems are listed).
    """
    return {str(folder): found.problems for folder, found in check_path(path).items()}


def quarantine(path: Path, now: datetime | None = None) -> Path:
    """Move a damaged file aside as ``<name>.corrupt-<UTC timestamp>``; nothing is deleted.

    Args:
        path: The damaged file.
        now: Time of the quarantine (the current time when None).

    Returns:
        The new path.

    Raises:
        OSError: If the file cannot be moved.
    """
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}.{n}")
    os.rename(path, target)
    return target


__all__ = [
    "FolderReport",
    "check_folder",
    "check_path",
    "quarantine",
    "read_whole_parquet",
    "run_folders",
    "verify_folder",
    "verify_path",
]
