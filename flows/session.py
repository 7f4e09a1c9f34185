"""The ``trading-session`` flow: chains ``trading-day`` child flows under one session id."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from prefect import flow, tags
from prefect.runtime import flow_run

from argo_engine import session
from argo_engine.options import RunOptions
from flows.day import trading_day


@flow(name="trading-session", log_prints=True)
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
    sid: str | None = session_id or settings.session.session_id or flow_run.get_id() or None
    first = date.fromisoformat(day) if day else None
    if continue_run and sid:
        plan = session.continue_session(settings, session_id=sid, first_date=first)
    else:
        plan = session.start_session(settings, session_id=sid, first_date=first)
    options = options.model_copy(update={"session_id": plan.session_id})
    print(f"session {plan.session_id} run_{plan.run_number} from {plan.first_date}")
    summaries: list[dict[str, Any]] = []
    current: str | None = plan.first_date.isoformat()
    strategy_tag = f"strategy:{settings.strategy.name}"
    symbol_tags = [f"symbol:{s}" for s in settings.session.symbols]
    while current is not None:
        with tags(strategy_tag, *symbol_tags, f"session:{plan.session_id}"):
            summary = trading_day(options, plan.to_dict(), current, plan.run_number)
        summaries.append(summary)
        if summary["ended"] != "day_end" or (max_days is not None and len(summaries) >= max_days):
            break
        current = summary["next_date"]
    return summaries


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
