"""Run folders whose run.yaml is unreadable: finding their session and rebuilding it."""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from argo_engine.clock import Clock, LiveClock
from argo_engine.engine.core import STATE_FILE, order_id_prefix
from argo_engine.errors import RecoveryError
from argo_engine.persistence.journal import journal_holds_data
from argo_engine.persistence.runs import RunInfo, parse_run_number, read_run_yaml, write_run_yaml
from argo_engine.persistence.schema import JOURNAL_DIR, RUN_FILE, STATS_FILE, TABLES
from argo_engine.session.resume import _safe_state
from argo_engine.settings import ArgoSettings

# The logger keeps the name it had before the session module became a package, so that log
# lines (the CLI prints the logger's name) read as they did.
log = logging.getLogger("argo_engine.session")


def adopt_orphan_folders(
    settings: ArgoSettings, session_id: str, *, clock: Clock | None = None
) -> list[Path]:
    """Give back their identity to this session's run folders whose run.yaml is unreadable.

    A run folder whose run.yaml is missing, empty or garbled is found by no session, so a
    crash in it would never be recovered and its trades would be missing from the session's
    figures. Its identity is rebuilt instead: N and the date from the folder's path; the
    session from its engine state, its stats.yaml or the order ids in its journal and
    orders.parquet; the strategy, symbols, interval and start from the session's other run
    folders (else its stats.yaml and state, else these settings). The damaged file is kept
    beside the new one as ``run.yaml.corrupt-<timestamp>``.

    A folder that holds no trace of any session is attributed to this one only when every
    other run folder of the data output belongs to it (one session per output); otherwise
    the start is refused, naming the folder and what to do.

    Args:
        settings: Validated settings of the start.
        session_id: The session being started.
        clock: Clock of the timestamp of the moved-aside file.

    Returns:
        The folders whose run.yaml was rebuilt.

    Raises:
        RecoveryError: If an unreadable run.yaml cannot be attributed to any session.
    """
    clock = clock or LiveClock()
    data_output = Path(settings.session.data_output)
    if not data_output.is_dir():
        return []
    orphans: list[Path] = []
    owners: set[str] = set()
    mine: list[RunInfo] = []
    for folder in sorted(data_output.glob("*/run_*")):
        if parse_run_number(folder.name) is None or not folder.is_dir():
            continue
        try:
            info = read_run_yaml(folder)
        except (RecoveryError, OSError):
            info = None
        if info is None:
            orphans.append(folder)
            continue
        owners.add(info.session_id)
        if info.session_id == session_id:
            mine.append(info)
    adopted: list[Path] = []
    for folder in orphans:
        try:
            day = date.fromisoformat(folder.parent.name)
        except ValueError:
            continue  # not a date folder: no run of any session lives there
        evidence = _folder_owner(folder, session_id)
        if evidence is None:
            if not _holds_anything(folder):
                continue  # an empty husk: nothing to lose, nothing to recover
            if owners - {session_id}:
                raise RecoveryError(
                    f"{folder / RUN_FILE} is missing or unreadable and nothing in {folder} "
                    f"names its session, while this data output holds several sessions; "
                    f"restore its run.yaml (session_id, run_id, run_number, date, strategy, "
                    f"symbols, interval, start_time), or move the folder out of "
                    f"{data_output} if it is not session {session_id}'s, then start again",
                    path=str(folder),
                )
            evidence = session_id
        if evidence != session_id:
            continue  # another session's: its own start adopts it
        info = _rebuilt_identity(folder, day, session_id, settings, mine, clock)
        run_yaml = folder / RUN_FILE
        if run_yaml.exists():
            stamp = clock.now().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
            run_yaml.rename(folder / f"{RUN_FILE}.corrupt-{stamp}")
        write_run_yaml(folder, info)
        log.warning(
            "rebuilt the unreadable run.yaml of %s (session %s, %s); the damaged file is kept "
            "beside it",
            folder,
            session_id,
            info.run_id,
        )
        adopted.append(folder)
    return adopted


def _holds_anything(folder: Path) -> bool:
    if journal_holds_data(folder / JOURNAL_DIR) or (folder / JOURNAL_DIR / STATE_FILE).exists():
        return True
    return (
        any((folder / t.file_name).exists() for t in TABLES.values())
        or (folder / STATS_FILE).exists()
    )


def _folder_owner(folder: Path, session_id: str) -> str | None:
    """The session a run folder belongs to, from what it holds besides run.yaml; None if none.

    Only ``session_id`` is recognised from order ids (their prefix is derived from it).
    """
    state = _safe_state(folder)
    if state is not None and isinstance(state.get("session_id"), str):
        return str(state["session_id"])
    stats = _safe_yaml(folder / STATS_FILE)
    if stats is not None and isinstance(stats.get("session_id"), str):
        return str(stats["session_id"])
    marker = f"{order_id_prefix(session_id)}-r".encode()
    journal = folder / JOURNAL_DIR
    for path in sorted(journal.glob("*.jsonl*")) if journal.is_dir() else []:
        try:
            if marker in path.read_bytes():
                return session_id
        except OSError:
            continue
    try:
        ids = pq.read_table(folder / TABLES["orders"].file_name, columns=["id"]).column("id")
    except (pa.ArrowException, OSError, KeyError):
        return None
    prefix = marker.decode()
    if any(str(i).startswith(prefix) for i in ids.to_pylist()):
        return session_id
    return None


def _safe_yaml(path: Path) -> dict[str, Any] | None:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def _rebuilt_identity(
    folder: Path,
    day: date,
    session_id: str,
    settings: ArgoSettings,
    siblings: list[RunInfo],
    clock: Clock,
) -> RunInfo:
    number = parse_run_number(folder.name)
    assert number is not None  # only run_<int> folders are orphans
    state = _safe_state(folder) or {}
    stats = _safe_yaml(folder / STATS_FILE) or {}
    # The session's run N: the state says so; stats.yaml names it where the folder took
    # another N on this date.
    session_run = state.get("run_number")
    if not isinstance(session_run, int):
        recorded = stats.get("session_run_id")
        session_run = parse_run_number(str(recorded)) if recorded is not None else None
    same_run = [s for s in siblings if _session_run_of(s) == (session_run or number)]
    model = same_run[0] if same_run else (siblings[0] if siblings else None)
    if model is not None:
        strategy, symbols, interval = model.strategy, model.symbols, model.interval
        start = model.start_time
    else:
        block = stats.get("strategy")
        strategy = str(block.get("name")) if isinstance(block, dict) else settings.strategy.name
        listed = stats.get("symbols")
        symbols = (
            tuple(map(str, listed)) if isinstance(listed, list) else tuple(settings.session.symbols)
        )
        interval = settings.session.interval
        start = clock.now()
    started = state.get("session_start") or stats.get("session_start")
    if started is not None:
        with contextlib.suppress(ValueError):
            start = datetime.fromisoformat(str(started).replace("Z", "+00:00"))
    return RunInfo(
        session_id=session_id,
        run_id=folder.name,
        run_number=number,
        date=day,
        strategy=strategy,
        symbols=symbols,
        interval=interval,
        start_time=start,
        session_run_id=None if session_run in (None, number) else f"run_{session_run}",
    )


def _session_run_of(info: RunInfo) -> int:
    # N of the session's run that wrote a folder, from its run.yaml alone.
    if info.session_run_id is not None:
        recorded = parse_run_number(info.session_run_id)
        if recorded is not None:
            return recorded
    return info.run_number
