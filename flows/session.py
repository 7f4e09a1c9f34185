"""The ``trading-session`` flow: chains ``trading-day`` child flows under one session id."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import flow, tags
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run

from argo_engine import session
from argo_engine.clock import LiveClock
from argo_engine.options import RunOptions
from argo_engine.persistence.session_lock import hold_session
from flows.day import trading_day
from flows.hygiene import on_parent_cancelled, on_parent_crashed, session_tag, settle_ghosts


@flow(
    name="trading-session",
    log_prints=True,
    on_crashed=[on_parent_crashed],
    on_cancellation=[on_parent_cancelled],
)
def trading_session(
    options: RunOptions | None = None,
    session_id: str | None = None,
    day: str | None = None,
    max_days: int | None = None,
    continue_run: bool = False,
) -> list[dict[str, Any]]:
    """Run a session day by day, one ``trading-day`` child flow per trading date, in order.

    Args:
        options: Run options (strategy, symbols, interval, feed, broker, dates...).
        session_id: Session to start or resume; defaults to this flow run's id.
        day: Trade only this trading date (ISO), e.g. from a daily schedule; the synthetic and
            replay feeds are bounded to that date.
        max_days: Stop after this many trading dates (None: until the feed ends or a stop).
        continue_run: Continue the session's latest run_N (daily deployments) instead of
            allocating a new one for this start.

    Returns:
        One summary per trading date.
    """
    options = options or RunOptions()
    if continue_run and day is None:
        # A scheduled daily run trades the trading date that is current by the clock.
        day = session.current_trading_date(options.to_settings()).isoformat()
    if day is not None:
        options = _bounded_to_day(options, date.fromisoformat(day))
        max_days = 1
    settings = options.to_settings()
    clock = LiveClock()
    own_run = flow_run.get_id()
    sid = session_id or settings.session.session_id or own_run or session.new_session_id(clock)
    first = date.fromisoformat(day) if day else None
    # One writer per session, from every door: held from before the run number is allocated
    # until the last date is published. A second start is refused here and writes nothing; a
    # crash releases it with the process.
    with hold_session(
        Path(settings.session.data_output), sid, flow_run_id=own_run, now=clock.now()
    ):
        strategy_tag = f"strategy:{settings.strategy.name}"
        symbol_tags = [f"symbol:{s}" for s in settings.session.symbols]
        run_tags = [strategy_tag, *symbol_tags, session_tag(sid)]
        if own_run:
            _name_and_tag(own_run, sid, run_tags)
            # Holding the lock proves no other process runs the session: whatever of it is
            # still shown active (a killed run's children, this run's own earlier attempt)
            # is a ghost. Settled before any child starts, so a retried parent gets new
            # child runs instead of reattaching to the ghosts.
            settle_ghosts(sid, own_run)
        if continue_run:
            plan = session.continue_session(settings, session_id=sid, first_date=first)
        else:
            plan = session.start_session(settings, session_id=sid, first_date=first)
        options = options.model_copy(update={"session_id": plan.session_id})
        print(f"session {plan.session_id} run_{plan.run_number} from {plan.first_date}")
        summaries: list[dict[str, Any]] = []
        current: str | None = plan.first_date.isoformat()
        while current is not None:
            with tags(*run_tags):
                summary = trading_day(options, plan.to_dict(), current, plan.run_number)
            summaries.append(summary)
            done = max_days is not None and len(summaries) >= max_days
            if summary["ended"] != "day_end" or done:
                break
            current = summary["next_date"]
    return summaries


def _name_and_tag(flow_run_id: str, session_id: str, run_tags: list[str]) -> None:
    """Name the parent run ``session-<id>`` and tag it, so the UI finds "session X"."""
    with get_client(sync_client=True) as client:
        current = client.read_flow_run(UUID(flow_run_id))
        merged = list(dict.fromkeys([*(current.tags or []), *run_tags]))
        client.update_flow_run(UUID(flow_run_id), name=f"session-{session_id}", tags=merged)


def _bounded_to_day(options: RunOptions, day: date) -> RunOptions:
    settings = options.to_settings()
    if settings.feed.kind not in ("synthetic", "replay"):
        return options
    lo, hi = session.day_bounds(settings, day)
    update: dict[str, Any] = {"end": hi.isoformat()}
    if settings.feed.kind == "synthetic" or options.start is None:
        update["start"] = lo.isoformat()
    if settings.feed.kind == "synthetic":
        update["bars"] = None
    return options.model_copy(update=update)


_ = datetime
