"""Building an engine for a session plan: wiring it, opening a date, warming the strategy up.

:func:`open_engine` is the one place the session steps get an engine from; ``_release``
closes what it opened (writers, feed, broker).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from pathlib import Path

from argo_engine.bootstrap import build_engine
from argo_engine.clock import Clock, LiveClock
from argo_engine.domain.enums import EngineStatus
from argo_engine.engine.callbacks import EngineCallbacks
from argo_engine.engine.core import TradingEngine
from argo_engine.ports import Broker, MarketDataFeed
from argo_engine.session.plan import SessionPlan
from argo_engine.session.resume import find_resume_state
from argo_engine.session.stored_bars import stored_bars
from argo_engine.settings import ArgoSettings
from argo_engine.strategies.base import Strategy
from argo_engine.strategies.registry import strategy_code

# The logger keeps the name it had before the session module became a package, so that log
# lines (the CLI prints the logger's name) read as they did.
log = logging.getLogger("argo_engine.session")

# In-process observers (e.g. the CLI's live status line) merged into every engine this process
# opens, including engines opened inside Prefect tasks of an in-process flow run.
OBSERVERS: list[EngineCallbacks] = []
# In-process feed decorators (fault injection in tests, recording in demos), applied to every
# feed this process builds from settings.
FEED_WRAPPERS: list[Callable[[MarketDataFeed], MarketDataFeed]] = []


def open_engine(
    settings: ArgoSettings,
    plan: SessionPlan,
    day: date,
    *,
    clock: Clock | None = None,
    callbacks: EngineCallbacks | None = None,
    feed: MarketDataFeed | None = None,
    broker: Broker | None = None,
    strategy: Strategy | None = None,
    warm_up: bool = True,
) -> TradingEngine:
    """Build an engine for ``plan`` and open ``day``: restore state, warm the strategy up.

    This is the prefetch/recovery step: stored bars are loaded for indicator warm-up and the
    latest saved state of the session (this run, or an earlier run) is restored.
    """
    clock = clock or LiveClock()
    for observer in OBSERVERS:
        callbacks = observer if callbacks is None else callbacks.merged(observer)
    if feed is None and FEED_WRAPPERS:
        from argo_engine.bootstrap import build_feed

        feed = build_feed(settings, clock)
        for wrap in FEED_WRAPPERS:
            feed = wrap(feed)
    engine = build_engine(
        settings,
        session_id=plan.session_id,
        run_number=plan.run_number,
        clock=clock,
        callbacks=callbacks,
        feed=feed,
        broker=broker,
        strategy=strategy,
        session_start=plan.session_start,
    )
    try:
        _open_and_warm_up(engine, settings, plan, day, clock, warm_up=warm_up)
    except Exception:
        # A failed open (a venue answering 503 while PENDING orders are resolved, say) must
        # not leave the writers, the feed and the broker open behind it: the retry (a task
        # retry, a restart) opens its own, and this engine is never used again. (Not on a
        # BaseException: an interrupt is no failure to tidy up after.)
        try:
            _release(engine)
        except Exception:
            log.exception("could not release the engine of a failed open")
        raise
    return engine


def _open_and_warm_up(
    engine: TradingEngine,
    settings: ArgoSettings,
    plan: SessionPlan,
    day: date,
    clock: Clock,
    *,
    warm_up: bool,
) -> None:
    """Open ``day`` (restoring the latest saved state of the session) and warm up."""
    data_output = Path(settings.session.data_output)
    engine._fire("on_status_update", EngineStatus.PREFETCHING)
    state = find_resume_state(data_output, plan.session_id, plan.run_number, day)
    engine.open_day(day, state)
    if warm_up and settings.feed.prefetch_days > 0:
        from argo_engine.prefetch import prefetch

        until = (
            max(engine._last_time.values())
            if engine._last_time
            else (settings.feed.start or clock.now())
        )
        prefetch(
            data_output,
            engine.feed,
            list(engine.symbols),
            settings.session.interval,
            until,
            settings.feed.prefetch_days,
            on_progress=lambda s, i, n: engine._fire("on_prefetch_progress", s, i, n),
        )
        if not engine._last_time:
            # A fresh start warms up from the history just made available.
            bars = stored_bars(
                data_output, list(engine.symbols), until, settings.persistence.history_bars
            )
            for bar in bars:
                engine.context.remember(bar)
            if bars:
                with strategy_code(engine.strategy_info.name, "warmup"):
                    engine.strategy.warmup(bars)
    if warm_up:
        resume_from = max(engine._last_time.values()) if engine._last_time else None
        if resume_from is not None:
            from datetime import timedelta

            bars = stored_bars(
                data_output,
                list(engine.symbols),
                resume_from + timedelta(microseconds=1),
                settings.persistence.history_bars,
            )
            for bar in bars:
                engine.context.remember(bar)
            if bars:
                with strategy_code(engine.strategy_info.name, "warmup"):
                    engine.strategy.warmup(bars)
            per_symbol: dict[str, int] = {}
            for bar in bars:
                per_symbol[bar.symbol] = per_symbol.get(bar.symbol, 0) + 1
            for symbol in engine.symbols:
                n = per_symbol.get(symbol, 0)
                engine._fire("on_prefetch_progress", symbol, n, n)
            # The stream catches up from the last stored bar before it is live again.
            engine._fire("on_status_update", EngineStatus.GAP_FILLING)


def _release(engine: TradingEngine) -> None:
    if engine.writers is not None:
        engine.writers.close()
        engine.writers = None
    engine.feed.close()
    engine.broker.close()
