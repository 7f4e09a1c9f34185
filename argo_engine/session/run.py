"""Running a whole session in this process, without Prefect."""

from __future__ import annotations

import threading

from argo_engine.clock import Clock, LiveClock
from argo_engine.engine.callbacks import EngineCallbacks
from argo_engine.ports import Broker, MarketDataFeed
from argo_engine.session.factory import open_engine
from argo_engine.session.plan import DaySummary, SessionPlan
from argo_engine.session.start import start_session
from argo_engine.session.trading_date import _summary_from_engine
from argo_engine.settings import ArgoSettings
from argo_engine.strategies.base import Strategy


def run_session(
    settings: ArgoSettings,
    *,
    plan: SessionPlan | None = None,
    clock: Clock | None = None,
    callbacks: EngineCallbacks | None = None,
    stop: threading.Event | None = None,
    feed: MarketDataFeed | None = None,
    broker: Broker | None = None,
    strategy: Strategy | None = None,
) -> tuple[SessionPlan, list[DaySummary]]:
    """Run a whole session in this process (no Prefect): stream, rolling dates, until done.

    Returns:
        The plan and one summary per trading date touched.
    """
    clock = clock or LiveClock()
    plan = plan or start_session(settings, clock=clock)
    engine = open_engine(
        settings,
        plan,
        plan.first_date,
        clock=clock,
        callbacks=callbacks,
        feed=feed,
        broker=broker,
        strategy=strategy,
    )
    error: BaseException | None = None
    try:
        engine.run(stop)
    except BaseException as exc:
        error = exc
        raise
    finally:
        # Dates closed in the background are reported (and final) once the stream has ended.
        summaries = [
            DaySummary(
                date=closed.date.isoformat(),
                run_id=closed.run_id,
                folder=str(closed.folder),
                daily=closed.daily,
                cumulative=closed.cumulative,
            )
            for closed in engine.closed_days
        ]
        if engine.day is not None and engine.stats is not None:
            last = _summary_from_engine(engine, engine.day, engine.stats.daily_block())
            summaries.append(last)
        engine.stop(error)
        engine.feed.close()
        engine.broker.close()
    return plan, summaries
