"""What earlier runs of a session left: the saved engine state a start resumes from.

Also the two readers the start, the recovery and the orphan adoption share: the session's
run number of a folder (``_session_run_number``) and a folder's engine state, None when it is
unreadable (``_safe_state``).
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from argo_engine.engine.core import STATE_FILE, load_state
from argo_engine.errors import RecoveryError
from argo_engine.persistence.runs import find_session_runs, read_run_yaml, session_run_number
from argo_engine.persistence.schema import JOURNAL_DIR

# The logger keeps the name it had before the session module became a package, so that log
# lines (the CLI prints the logger's name) read as they did.
log = logging.getLogger("argo_engine.session")

# Before every bar (timezone-aware, so that it compares with saved cursors).
_NEVER = datetime.min.replace(tzinfo=UTC)


def _session_run_number(folder: Path) -> int:
    try:
        info = read_run_yaml(folder)
    except RecoveryError:  # found by find_session_runs moments ago, unreadable now: its own N
        info = None
    return session_run_number(folder, info)


def _safe_state(folder: Path) -> dict[str, Any] | None:
    try:
        return load_state(folder)
    except Exception:  # an unreadable state is reported by verify, not fatal for discovery
        log.warning("ignoring unreadable engine state in %s", folder)
        return None


def find_resume_state(
    data_output: Path, session_id: str, run_number: int, day: date
) -> dict[str, Any] | None:
    """Latest saved engine state of the session at or before ``day``.

    The latest is the one furthest along the market: the latest trading date, then the
    latest bar it counted, then the later run (runs of a session start one after another),
    then the later save. The wall clock only breaks ties: a clock set back between two
    starts (NTP, another machine) must not make a restart resume from an older state and
    store its bars again.
    """
    best: tuple[tuple[str, datetime, int, str], dict[str, Any]] | None = None
    # Latest date first: the rank starts with the date, so once a date gave a state no
    # earlier date can win, and a resume reads one date's folders however long the session.
    for run_day, _, folder in sorted(
        find_session_runs(data_output, session_id), key=lambda r: r[0], reverse=True
    ):
        if best is not None and run_day.isoformat() < best[0][0]:
            break
        if run_day > day or not (folder / JOURNAL_DIR / STATE_FILE).exists():
            continue
        number = _session_run_number(folder)
        if number == run_number and run_day == day:
            continue  # the engine reloads its own folder's state itself
        state = _safe_state(folder)
        if state is None:
            continue
        rank = (run_day.isoformat(), _progress(state), number, str(state.get("saved_at", "")))
        if best is None or rank > best[0]:
            best = (rank, state)
    return None if best is None else best[1]


def _progress(state: dict[str, Any]) -> datetime:
    """Time of the latest bar a saved state counted (the earliest time when none)."""
    times = state.get("last_time") or {}
    try:
        return max((datetime.fromisoformat(str(t)) for t in times.values()), default=_NEVER)
    except (TypeError, ValueError):
        return _NEVER  # an unreadable cursor ranks below every readable one
