"""The ``trading-session`` flow: chains ``trading-day`` child flows under one session id."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import flow, tags
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.runtime import flow_run

from argo_engine import session
from argo_engine.clock import LiveClock
from argo_engine.errors import ConfigurationError
from argo_engine.options import RunOptions
from argo_engine.persistence.session_lock import hold_session
from argo_engine.preflight import check_run
from argo_engine.settings import ArgoSettings, validate_session_id
from flows.day import trading_day, without_heartbeats
from flows.hygiene import on_parent_cancelled, on_parent_crashed, session_tag, settle_ghosts
from flows.tasks import publish_report


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
    # Every parameter is checked before a run number is allocated or a folder is made.
    options = _with_deployment_defaults(options or RunOptions())
    first = _checked_parameters(options, session_id, day, max_days)
    if continue_run and first is None:
        # A scheduled daily run trades the trading date that is current by the clock.
        first = session.current_trading_date(options.to_settings())
        day = first.isoformat()
    if first is not None:
        options = _bounded_to_day(options, first)
        max_days = 1
    settings = _check_options(options)
    clock = LiveClock()
    own_run = flow_run.get_id()
    sid = session_id or settings.session.session_id or own_run or session.new_session_id(clock)
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
        try:
            while current is not None:
                with tags(*run_tags), without_heartbeats():
                    summary = trading_day(options, plan.to_dict(), current, plan.run_number)
                summaries.append(summary)
                done = max_days is not None and len(summaries) >= max_days
                if summary["ended"] != "day_end" or done:
                    break
                current = summary["next_date"]
        except BaseException:
            # A start that failed before writing anything (a venue out of reach) leaves no
            # empty run folder behind. A continued run's folder is never this start's own.
            if not summaries and not continue_run:
                session.discard_unused_start(settings, plan)
            raise
        publish_report(
            str(settings.session.data_output), plan.session_id, settings.session.initial_capital
        )
    return summaries


def _name_and_tag(flow_run_id: str, session_id: str, run_tags: list[str]) -> None:
    """Name the parent run ``session-<id>`` and tag it, so the UI finds "session X"."""
    with get_client(sync_client=True) as client:
        current = client.read_flow_run(UUID(flow_run_id))
        merged = list(dict.fromkeys([*(current.tags or []), *run_tags]))
        client.update_flow_run(UUID(flow_run_id), name=f"session-{session_id}", tags=merged)


def _checked_parameters(
    options: RunOptions, session_id: str | None, day: str | None, max_days: int | None
) -> date | None:
    """Check the flow's parameters; returns ``day`` as a date.

    Raises:
        ConfigurationError: Naming the parameter (and, for options, the setting).
    """
    first: date | None = None
    if day is not None:
        try:
            first = date.fromisoformat(str(day))
        except ValueError:
            raise ConfigurationError(
                f"day: {day!r} is not a date, use YYYY-MM-DD (parameter day)", field="day"
            ) from None
    if max_days is not None and max_days < 1:
        raise ConfigurationError(
            f"max_days: {max_days} must be at least 1 (parameter max_days)", field="max_days"
        )
    if session_id is not None:
        try:
            validate_session_id(session_id)
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"session_id: {exc.message} (parameter session_id)", field="session_id"
            ) from None
    _check_options(options, settings_only=True)
    return first


def _check_options(options: RunOptions, *, settings_only: bool = False) -> ArgoSettings:
    """The settings of ``options``, checked; errors name the ``options`` parameter."""
    try:
        settings = options.to_settings()
        if not settings_only:
            check_run(settings, options)
    except ConfigurationError as exc:
        message = f"options: {exc.message} (parameter options)"
        raise ConfigurationError(message, **exc.attrs) from None
    return settings


def _with_deployment_defaults(options: RunOptions) -> RunOptions:
    """Options given at trigger time merged into the deployment's default options.

    Prefect replaces a parameter as a whole: a trigger with ``options: {bars: 100}`` would
    drop the deployment's feed, strategy and symbols. Only the fields the caller set win;
    strategy ``params`` merge key by key.
    """
    context = FlowRunContext.get()
    deployment_id = context.flow_run.deployment_id if context and context.flow_run else None
    if deployment_id is None:
        return options
    # prefect.runtime.deployment.parameters are this flow run's parameters (the trigger's
    # options already replaced the defaults there): the deployment itself holds the defaults.
    with get_client(sync_client=True) as client:
        defaults = client.read_deployment(deployment_id).parameters.get("options")
    if not defaults:
        return options
    return options.over(defaults)


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
