"""Composition root: build feeds, brokers and strategies from settings.

The only place that picks an implementation by name; tests pass their own through the
keyword overrides of :func:`build_engine`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from argo_engine.clock import Clock, LiveClock
from argo_engine.domain.ledger import PnlMethod
from argo_engine.engine.callbacks import EngineCallbacks
from argo_engine.engine.core import TradingEngine
from argo_engine.errors import ConfigurationError
from argo_engine.ports import Broker, MarketDataFeed
from argo_engine.settings import ArgoSettings
from argo_engine.strategies.base import Strategy
from argo_engine.strategies.registry import build_strategy

DEFAULT_SYNTHETIC_START = datetime(2025, 10, 1, 9, 0, tzinfo=UTC)
DEFAULT_SYNTHETIC_BARS = 500


def build_feed(settings: ArgoSettings, clock: Clock) -> MarketDataFeed:
    """Build the configured market-data feed.

    Raises:
        ConfigurationError: If the feed's settings are incomplete or inconsistent.
    """
    feed = settings.feed
    session = settings.session
    if feed.kind == "synthetic":
        from argo_engine.providers.synthetic import SyntheticFeed

        bars = feed.bars
        if bars is None and feed.end is None:
            bars = DEFAULT_SYNTHETIC_BARS
        return SyntheticFeed(
            symbols=session.symbols,
            interval=session.interval,
            start=feed.start or DEFAULT_SYNTHETIC_START,
            bars=bars,
            end=feed.end,
            seed=feed.seed,
            pace=feed.pace,
            clock=clock,
        )
    if feed.kind == "replay":
        from argo_engine.providers.replay import ReplayFeed

        if feed.replay_file is None:
            raise ConfigurationError(
                "feed.replay_file (ARGO_FEED__REPLAY_FILE / --replay-file) is required for the "
                "replay feed",
                field="feed.replay_file",
            )
        return ReplayFeed(
            path=Path(feed.replay_file),
            symbols=session.symbols,
            start=feed.start,
            end=feed.end,
            pace=feed.pace,
            interval=session.interval,
            clock=clock,
            bars=feed.bars,
        )
    if feed.kind == "binance":
        from argo_engine.providers.binance.data import BinanceFeed

        return BinanceFeed(
            symbols=session.symbols,
            interval=session.interval,
            rest_url=feed.binance_rest_url,
            ws_url=feed.binance_ws_url,
            clock=clock,
            start=feed.start,
            end=feed.end,
            bars=feed.bars,
        )
    raise ConfigurationError(f"unknown feed {feed.kind!r}", field="feed.kind")


def build_broker(settings: ArgoSettings, clock: Clock) -> Broker:
    """Build the configured broker.

    Raises:
        ConfigurationError: If the broker's settings are incomplete (keys, allow_live).
    """
    broker = settings.broker
    if broker.kind == "paper":
        from argo_engine.providers.commission import commission_from_settings
        from argo_engine.providers.paper import PaperBroker

        return PaperBroker(
            initial_cash=settings.session.initial_capital,
            commission=commission_from_settings(broker),
            pnl_method=PnlMethod(settings.session.pnl_method),
            clock=clock,
        )
    from argo_engine.providers.binance.trading import BinanceBroker

    return BinanceBroker.from_settings(settings, clock=clock)


def build_engine(
    settings: ArgoSettings,
    *,
    session_id: str,
    run_number: int,
    clock: Clock | None = None,
    callbacks: EngineCallbacks | None = None,
    feed: MarketDataFeed | None = None,
    broker: Broker | None = None,
    strategy: Strategy | None = None,
    session_start: datetime | None = None,
) -> TradingEngine:
    """Assemble an engine; keyword overrides replace the settings-built components."""
    clock = clock or LiveClock()
    return TradingEngine(
        settings=settings,
        session_id=session_id,
        run_number=run_number,
        feed=feed or build_feed(settings, clock),
        broker=broker or build_broker(settings, clock),
        strategy=strategy or build_strategy(settings.strategy.name, settings.strategy.params),
        clock=clock,
        callbacks=callbacks,
        session_start=session_start,
    )
