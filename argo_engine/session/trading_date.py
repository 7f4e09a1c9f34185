"""The steps of one trading date (the Prefect trading-day flow calls these, one per task).

Prefetch and recovery, streaming, and finalizing; each opens its own engine through
:func:`~argo_engine.session.factory.open_engine` and releases it before it returns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

from argo_engine.clock import Clock
from argo_engine.engine.callbacks import EngineCallbacks
from argo_engine.engine.core import TradingEngine
from argo_engine.ports import Broker, MarketDataFeed
from argo_engine.session.factory import _release, open_engine
from argo_engine.session.plan import DaySummary, SessionPlan
from argo_engine.settings import ArgoSettings


def prefetch_day(
    settings: ArgoSettings,
    plan: SessionPlan,
    day: date,
    *,
    clock: Clock | None = None,
    callbacks: EngineCallbacks | None = None,
    feed: MarketDataFeed | None = None,
    broker: Broker | None = None,
) -> DaySummary:
    """Prefetch and recovery: open the day's run folder, restore state, warm up, persist.

    Safe to repeat: a retry reopens the same folder and reloads its journal.
    """
    engine = open_engine(
        settings, plan, day, clock=clock, callbacks=callbacks, feed=feed, broker=broker
    )
    try:
        engine.flush()
        return _summary_from_engine(engine, day, _daily(engine))
    finally:
        _release(engine)


def stream_day(
    settings: ArgoSettings,
    plan: SessionPlan,
    day: date,
    *,
    stop: threading.Event | None = None,
    clock: Clock | None = None,
    callbacks: EngineCallbacks | None = None,
    feed: MarketDataFeed | None = None,
    broker: Broker | None = None,
    observe: Callable[[TradingEngine | None], object] | None = None,
) -> DaySummary:
    """Stream the trading date ``day`` until it ends, the feed ends, or ``stop`` is set.

    Recovers from the run folder first (so a retry continues the same run_N without losing or
    duplicating rows); everything is flushed before it returns or raises.

    Args:
        settings: Validated settings.
        plan: The session plan.
        day: Trading date to stream.
        stop: Set to stop streaming (the engine flushes and returns).
        clock: Injected clock.
        callbacks: Engine callbacks.
        feed: Feed to use instead of one built from settings.
        broker: Broker to use instead of one built from settings.
        observe: Called with the opened engine before streaming starts and with None once it
            is released, so that a live view can read :func:`argo_engine.engine.live.
            live_figures` from its own thread (never from the bar path).
    """
    engine = open_engine(
        settings, plan, day, clock=clock, callbacks=callbacks, feed=feed, broker=broker
    )
    if observe is not None:
        observe(engine)
    try:
        result = engine.run(stop, stop_at_day_end=True)
        summary = _summary_from_engine(engine, day, _daily(engine))
        return DaySummary(
            **{
                **asdict(summary),
                "ended": result.ended,
                "bars": result.bars,
                "rejected_bars": result.rejected_bars,
                "orders": result.orders,
                "fills": result.fills,
                "next_date": result.next_date.isoformat() if result.next_date else None,
            }
        )
    finally:
        try:
            engine.flush()
            _release(engine)
        finally:
            if observe is not None:
                observe(None)


def finalize_day(
    settings: ArgoSettings,
    plan: SessionPlan,
    day: date,
    *,
    clock: Clock | None = None,
    callbacks: EngineCallbacks | None = None,
    feed: MarketDataFeed | None = None,
    broker: Broker | None = None,
) -> DaySummary:
    """Close ``day``: final parquet files, final stats.yaml, journal drained, integrity check."""
    engine = open_engine(
        settings,
        plan,
        day,
        clock=clock,
        callbacks=callbacks,
        feed=feed,
        broker=broker,
        warm_up=False,
    )
    try:
        daily = engine.close_day()
        summary = _summary_from_engine(engine, day, daily)
    finally:
        _release(engine)
    problems = verify_run_folder(Path(summary.folder))
    return DaySummary(**{**asdict(summary), "problems": problems})


def _summary_from_engine(engine: TradingEngine, day: date, daily: dict[str, Any]) -> DaySummary:
    stats = engine.stats
    return DaySummary(
        date=day.isoformat(),
        run_id=engine.run_id_on_day,
        folder=str(engine.folder),
        daily=daily,
        cumulative=stats.cumulative_block() if stats is not None else {},
    )


def _daily(engine: TradingEngine) -> dict[str, Any]:
    return engine.stats.daily_block() if engine.stats is not None else {}


def verify_run_folder(folder: Path) -> list[str]:
    """Integrity problems of one run folder (empty when it is sound)."""
    from argo_engine.verify import verify_folder

    return verify_folder(folder)
