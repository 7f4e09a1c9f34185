"""Crash recovery of a session's run folders before a new run starts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from argo_engine.bootstrap import build_engine
from argo_engine.clock import Clock, LiveClock
from argo_engine.persistence.journal import journal_holds_data
from argo_engine.persistence.runs import find_session_runs
from argo_engine.persistence.schema import JOURNAL_DIR, STATS_FILE, TABLES
from argo_engine.persistence.writers import remove_stale_temps
from argo_engine.ports import Broker
from argo_engine.session.factory import _release
from argo_engine.session.resume import _session_run_number, find_resume_state
from argo_engine.settings import ArgoSettings

# The logger keeps the name it had before the session module became a package, so that log
# lines (the CLI prints the logger's name) read as they did.
log = logging.getLogger("argo_engine.session")


def needs_recovery(folder: Path) -> bool:
    """Whether a run folder was left by a crash.

    A crash leaves journal data not yet in the parquet files, or files missing that a clean
    stop always writes; a recovery that failed midway (a broker answering 503 while PENDING
    orders were resolved) leaves its marker.
    """
    if journal_holds_data(folder / JOURNAL_DIR):
        return True
    expected = [STATS_FILE, *(t.file_name for t in TABLES.values())]
    return any(not (folder / name).exists() for name in expected)


def recover_stale_runs(
    settings: ArgoSettings,
    session_id: str,
    *,
    clock: Clock | None = None,
    broker_factory: Callable[[], Broker] | None = None,
) -> list[Path]:
    """Finish the folders of crashed runs of a session before a new run starts.

    Each folder with undrained journal data is reopened as the run that wrote it (the
    session's run N, also in a ``run_M`` folder taken because another session owned ``run_N``
    on that date): journal rows go into the parquet files, fills written after the last state
    save are applied to its state, unconfirmed orders are resolved, and a correct final
    stats.yaml (``session_run_id`` included) is written.

    Args:
        settings: Validated settings.
        session_id: The session whose folders are recovered.
        clock: Injected clock.
        broker_factory: Builds the broker asked about unconfirmed orders, one per folder (it
            is closed with the folder's engine); the configured broker when None. It must be
            the venue that took the orders: another broker cannot know what became of them.

    Returns:
        The folders recovered.
    """
    clock = clock or LiveClock()
    data_output = Path(settings.session.data_output)
    recovered: list[Path] = []
    for day, _, folder in find_session_runs(data_output, session_id):
        if not needs_recovery(folder):
            # A writer killed while it wrote a complete folder's file (a version, stats.yaml)
            # leaves its temp file; the folder needs nothing else.
            for path in remove_stale_temps(folder):
                log.warning("removed a temp file left by a crashed writer: %s", path)
            continue
        number = _session_run_number(folder)
        state = find_resume_state(data_output, session_id, number, day)
        start = datetime.fromisoformat(state["session_start"]) if state else clock.now()
        engine = build_engine(
            settings,
            session_id=session_id,
            run_number=number,
            clock=clock,
            session_start=start,
            broker=broker_factory() if broker_factory is not None else None,
        )
        try:
            # This very folder: another one of the same run and date may exist (left behind
            # by versions that took a new folder on every reopen of a displaced date).
            engine.open_day(day, state, folder=folder)
            engine.close_day()
        finally:
            _release(engine)
        log.warning("recovered crashed run folder %s", folder)
        recovered.append(folder)
    return recovered
