"""Starting and continuing a session (allocating its run_N), and undoing an unused start."""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import pyarrow.parquet as pq

from argo_engine.clock import Clock, LiveClock
from argo_engine.persistence.journal import journal_holds_data
from argo_engine.persistence.runs import RunInfo, allocate_run, find_session_runs
from argo_engine.persistence.schema import JOURNAL_DIR, RUN_FILE, STATS_FILE, TABLES
from argo_engine.ports import Broker
from argo_engine.session.dates import first_trading_date
from argo_engine.session.orphans import adopt_orphan_folders
from argo_engine.session.plan import SessionPlan, new_session_id
from argo_engine.session.recovery import recover_stale_runs
from argo_engine.session.resume import _safe_state, _session_run_number
from argo_engine.settings import ArgoSettings, validate_session_id
from argo_engine.strategies.registry import resolve_strategy

# The logger keeps the name it had before the session module became a package, so that log
# lines (the CLI prints the logger's name) read as they did.
log = logging.getLogger("argo_engine.session")


def start_session(
    settings: ArgoSettings,
    *,
    session_id: str | None = None,
    clock: Clock | None = None,
    first_date: date | None = None,
    broker_factory: Callable[[], Broker] | None = None,
) -> SessionPlan:
    """Allocate ``run_N`` for a new engine start of a (new or resumed) session.

    Crashed run folders of the session are recovered first (:func:`recover_stale_runs`).

    Args:
        settings: Validated settings.
        session_id: Session to start or resume; falls back to settings, then a fresh id.
        clock: Injected clock.
        first_date: First trading date; derived from the feed when None.
        broker_factory: Builds the broker that recovers crashed folders (one per folder);
            the configured broker when None.

    Returns:
        The plan; ``{data_output}/{first_date}/run_N/run.yaml`` exists when it returns.
    """
    clock = clock or LiveClock()
    sid = validate_session_id(session_id or settings.session.session_id or new_session_id(clock))
    # Bad strategy names or parameters fail before anything is created on disk.
    strategy_cls = resolve_strategy(settings.strategy.name)
    strategy_cls.parse_config(settings.strategy.params)
    day = first_date or first_trading_date(settings, clock)
    data_output = Path(settings.session.data_output)
    adopt_orphan_folders(settings, sid, clock=clock)
    earlier = find_session_runs(data_output, sid)
    if earlier:
        recover_stale_runs(settings, sid, clock=clock, broker_factory=broker_factory)
        # A resumed session continues where it stopped: never on a date before its last run.
        day = max(day, earlier[-1][0])
    session_start = clock.now()
    for _, _, folder in earlier:
        state = _safe_state(folder)
        if state is not None:
            started = datetime.fromisoformat(state["session_start"])
            session_start = min(session_start, started)
    strategy_name = getattr(strategy_cls, "name", strategy_cls.__name__)
    number, folder = allocate_run(
        data_output / day.isoformat(),
        lambda n: RunInfo(
            session_id=sid,
            run_id=f"run_{n}",
            run_number=n,
            date=day,
            strategy=strategy_name,
            symbols=tuple(settings.session.symbols),
            interval=settings.session.interval,
            start_time=session_start,
        ),
    )
    return SessionPlan(
        session_id=sid,
        run_number=number,
        first_date=day,
        session_start=session_start,
        resumed=bool(earlier),
    )


def continue_session(
    settings: ArgoSettings,
    *,
    session_id: str,
    clock: Clock | None = None,
    first_date: date | None = None,
    broker_factory: Callable[[], Broker] | None = None,
) -> SessionPlan:
    """Continue a named session's latest run_N on a new date (daily deployments).

    Falls back to :func:`start_session` when the session has no run yet. ``broker_factory``
    is as for :func:`start_session`.
    """
    clock = clock or LiveClock()
    sid = validate_session_id(session_id)
    adopt_orphan_folders(settings, sid, clock=clock)
    runs = find_session_runs(Path(settings.session.data_output), sid)
    if not runs:
        return start_session(
            settings,
            session_id=sid,
            clock=clock,
            first_date=first_date,
            broker_factory=broker_factory,
        )
    recover_stale_runs(settings, sid, clock=clock, broker_factory=broker_factory)
    day = first_date or first_trading_date(settings, clock)
    # The latest run continues under its own N, also when its latest folder has another N
    # (another session owned run_N on that date).
    _, _, latest = max(runs, key=lambda r: (r[0], r[1]))
    number = _session_run_number(latest)
    session_start = clock.now()
    for _, _, folder in runs:
        state = _safe_state(folder)
        if state is not None:
            session_start = min(session_start, datetime.fromisoformat(state["session_start"]))
    return SessionPlan(
        session_id=sid,
        run_number=number,
        first_date=day,
        session_start=session_start,
        resumed=True,
    )


def discard_unused_start(settings: ArgoSettings, plan: SessionPlan) -> bool:
    """Remove the run folder a failed start allocated, when nothing was written to it.

    A start that fails before its first bar (a venue that cannot be reached, say) must not
    leave an empty folder behind that ``argo sessions`` lists as a closed run and
    ``argo verify`` passes. Only ``{plan.first_date}/run_N`` of a plan made by
    :func:`start_session` is considered, and only when its tables hold no row, its journal
    holds nothing to recover and it holds no file argo did not write; its date folder goes
    too when that leaves it empty. Nothing with a row in it is ever removed.

    Returns:
        Whether the folder was removed.
    """
    folder = (
        Path(settings.session.data_output) / plan.first_date.isoformat() / f"run_{plan.run_number}"
    )
    if not folder.is_dir() or journal_holds_data(folder / JOURNAL_DIR):
        return False
    known = {t.file_name for t in TABLES.values()} | {STATS_FILE, RUN_FILE, JOURNAL_DIR}
    if any(p.name not in known for p in folder.iterdir()):
        return False
    for table in TABLES.values():
        path = folder / table.file_name
        if not path.exists():
            continue
        try:
            with path.open("rb") as handle:
                if pq.ParquetFile(handle).metadata.num_rows:
                    return False
        except Exception:  # unreadable: not ours to judge, keep it
            return False
    shutil.rmtree(folder)
    with contextlib.suppress(OSError):
        folder.parent.rmdir()  # only when empty
    log.info("removed %s: the start failed before anything was written", folder)
    return True
