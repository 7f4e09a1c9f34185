"""The trading engine: the per-bar loop of one engine start, and its start, flush and stop.

Per bar, in this order (DESIGN.md): validate -> trading-date check (roll every writer on a new
date) -> persist the bar -> on_market_data -> broker reacts to the bar (resting orders) ->
strategy -> orders and fills recorded (on_order_placed / on_order_filled) -> stats
(stats.yaml, on_stats_update). A broker that cannot be polled on a bar (TransientError) is
logged and reported (on_error), and the bar still reaches the strategy: it is stored and
counted by then, and a retried stream resumes after it.

``TradingEngine`` is put together from parts, one responsibility per module (see
``engine/base.py``): the trading-date lifecycle (``trading_day.py``), crash reconciliation
(``reconcile.py``, which also describes how orders survive a crash), order routing and ids
(``orders.py``), the accepted-orders journal (``accepted_orders.py``), the engine state
(``state.py``), the interval flush (``flush_schedule.py``), the stats document
(``stats_document.py``) and marks and logs (``marks_logs.py``). The names other code imports
from this module stay importable from here.
"""

from __future__ import annotations

import gc
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from argo_engine.clock import Clock
from argo_engine.domain.calendar import trading_date
from argo_engine.domain.enums import EngineStatus, LogLevel, ProviderStatus
from argo_engine.domain.ledger import PnlMethod
from argo_engine.domain.market import Bar
from argo_engine.domain.orders import Order
from argo_engine.engine.accepted_orders import ACCEPTED_FILE as ACCEPTED_FILE
from argo_engine.engine.accepted_orders import AcceptedOrders
from argo_engine.engine.callbacks import EngineCallbacks, SessionInfo
from argo_engine.engine.context import EngineContext
from argo_engine.engine.orders import OrderRouting
from argo_engine.engine.orders import order_id_prefix as order_id_prefix
from argo_engine.engine.state import STATE_FILE as STATE_FILE
from argo_engine.engine.state import STATE_VERSION as STATE_VERSION
from argo_engine.engine.state import load_state as load_state
from argo_engine.engine.stats import StatsTracker
from argo_engine.engine.trading_day import ClosedDay as ClosedDay
from argo_engine.engine.trading_day import TradingDay, _Closing
from argo_engine.engine.trading_day import trading_day_bounds as trading_day_bounds
from argo_engine.engine.validation import validate_bar
from argo_engine.errors import (
    ArgoError,
    DataError,
    StrategyError,
    TerminalError,
    TransientError,
)
from argo_engine.persistence.trade_ids import TradeIdLog
from argo_engine.persistence.writers import RunWriters
from argo_engine.ports import Broker, MarketDataFeed
from argo_engine.settings import ArgoSettings
from argo_engine.strategies.base import Strategy

StreamEnd = Literal["feed_exhausted", "day_end", "stopped"]

# Minimum GC thresholds while bars stream (see TradingEngine.run).
_GC_THRESHOLDS = (50_000, 100, 100)

_INF = math.inf


@dataclass(frozen=True, slots=True)
class StreamResult:
    """Summary of one call to :meth:`TradingEngine.run`.

    Attributes:
        ended: Why streaming ended.
        bars: Bars accepted.
        rejected_bars: Bars rejected as bad data.
        skipped_bars: Bars skipped because they were already stored (resume).
        orders: Orders placed.
        fills: Fills recorded.
        days: Trading dates touched, in order.
        next_date: Trading date of the bar that ended a ``day_end`` stream.
        last_bar_time: Time of the last accepted bar.
    """

    ended: StreamEnd
    bars: int
    rejected_bars: int
    skipped_bars: int
    orders: int
    fills: int
    days: tuple[date, ...]
    next_date: date | None
    last_bar_time: datetime | None


class TradingEngine(TradingDay, OrderRouting):
    """One engine start (one ``run_N``) of a session, possibly spanning several dates.

    Args:
        settings: Validated settings.
        session_id: Logical session id.
        run_number: N of ``run_N`` allocated for this start.
        feed: Market-data feed.
        broker: Broker (paper or venue).
        strategy: Initialized strategy.
        clock: Injected clock.
        callbacks: Optional callbacks.
        session_start: When the session started (kept across days and restarts).
    """

    def __init__(
        self,
        *,
        settings: ArgoSettings,
        session_id: str,
        run_number: int,
        feed: MarketDataFeed,
        broker: Broker,
        strategy: Strategy,
        clock: Clock,
        callbacks: EngineCallbacks | None = None,
        session_start: datetime | None = None,
    ) -> None:
        self.settings = settings
        self.session_id = session_id
        self.run_number = run_number
        self.feed = feed
        self.broker = broker
        self.strategy = strategy
        self._strategy_name = self.strategy_info.name  # stamped on every order
        self.clock = clock
        self.callbacks = callbacks or EngineCallbacks()
        self.session_start = session_start or clock.now()
        self.data_output = Path(settings.session.data_output)
        self.symbols = tuple(settings.session.symbols)
        self._symbol_set = frozenset(self.symbols)
        self._tz = ZoneInfo(settings.session.timezone)
        self._day_start: time | None = settings.session.day_start
        self.context = EngineContext(self, settings.persistence.history_bars)
        self._pnl_method = PnlMethod(settings.session.pnl_method)
        self._slow_bar_s = settings.strategy.slow_bar_s
        self.stats: StatsTracker | None = None
        self.writers: RunWriters | None = None
        self.day: date | None = None
        self.folder: Path | None = None
        self.run_id_on_day = f"run_{run_number}"
        self._day_lo = datetime.max.replace(tzinfo=UTC)
        self._day_hi = datetime.min.replace(tzinfo=UTC)
        self._last_time: dict[str, datetime] = {}
        self._last_bar: dict[str, Bar] = {}
        self._open: dict[str, Order] = {}
        self._order_seq = 0
        self._order_prefix = order_id_prefix(session_id)
        # Brokers whose book lives in this process (paper) are rebuilt from the journals after
        # a crash; venue brokers are asked instead.
        self._replay_order: Callable[[Order], None] | None = getattr(broker, "replay_order", None)
        # A local book's orders and fills are a pure function of the journaled bars before
        # them: batched, they are fsynced with the next stats.yaml write on the flusher, and
        # a power loss takes them with those bars (a clean prefix: the resumed run redoes
        # them). Venue orders are always durable before they are sent.
        self._durable_orders = (
            self._replay_order is None or settings.persistence.paper_fsync == "per_order"
        )
        self._accepted = AcceptedOrders()
        # The fills the engine has counted on the open date, in booking order (recovery
        # replays the stored fills that are not in it).
        self._day_trades: TradeIdLog | None = None
        self._stats_dirty = True
        self._next_stats_at = 0.0
        self._stats_earliest = 0.0
        self._started = False
        self._stopped = False
        self._counts = {"bars": 0, "rejected": 0, "skipped": 0, "orders": 0, "fills": 0}
        # Dates whose final flush runs in the background, oldest first; and the closed ones.
        self._closing: list[_Closing] = []
        # The fsync of a rolling date's rows, for the next date's writers to run first.
        self._sync_first: Callable[[], None] | None = None
        self.closed_days: list[ClosedDay] = []

    # -- streaming -----------------------------------------------------------------------------

    def start(self) -> None:
        """Fire on_engine_start (fatal on error). Called once, before the first bar."""
        if self._started:
            return
        self._started = True
        writers, _, _ = self._require_day()
        del writers
        info = SessionInfo(
            session_id=self.session_id,
            run_id=f"run_{self.run_number}",
            run_number=self.run_number,
            symbols=self.symbols,
            interval=self.settings.session.interval,
            strategy=self.strategy_info.name,
            data_output=str(self.data_output),
            run_folder=str(self.folder),
        )
        self._fire("on_engine_start", info, fatal=True)
        self._provider_status(ProviderStatus.CONNECTED)

    def _provider_status(self, status: ProviderStatus) -> None:
        # Feeds and brokers are usable once built (paper, synthetic, replay) or raise on their
        # first call (venues); the engine reports the pair on start and stop.
        self._fire(
            "on_provider_status_change",
            {"market_data_status": status, "trading_status": status},
        )

    def run(
        self,
        stop: threading.Event | None = None,
        *,
        stop_at_day_end: bool = False,
        resume_after: Mapping[str, datetime] | None = None,
    ) -> StreamResult:
        """Stream bars from the feed until it ends, ``stop`` is set, or (optionally) the day ends.

        Args:
            stop: Set it to stop gracefully; everything is flushed before returning.
            stop_at_day_end: Return at the first bar of a later trading date without consuming
                it (the Prefect trading-day flow); otherwise roll into the new date and go on.
            resume_after: Per symbol, bars at or before this time are already stored and are
                skipped silently (resuming a stream).

        Returns:
            What happened.

        Raises:
            TerminalError: On errors that must stop the session (persistence, auth, callbacks
                whose errors are fatal).
        """
        stop = stop or threading.Event()
        self._require_day()
        self.start()
        self._fire("on_status_update", EngineStatus.RUNNING)
        counts_before = dict(self._counts)
        days: list[date] = [self.day] if self.day else []
        ended: StreamEnd = "feed_exhausted"
        next_date: date | None = None
        skip = dict(resume_after or {})
        for key, value in self._last_time.items():
            if key not in skip or skip[key] < value:
                skip[key] = value
        resume = getattr(self.feed, "resume_after", None)
        if resume is not None and skip:
            # A feed that can start after the stored bars saves generating (or reading) them
            # again only for the loop below to skip them: on a session's 140th date, 139 days.
            resume({s: b for s, b in self._last_bar.items() if skip.get(s) == b.time})
        process = self.process_bar
        is_set = stop.is_set
        symbols = self._symbol_set
        # The loop allocates many short-lived tuples and almost no cyclic garbage; with the
        # default thresholds, collections cost ~8% of a replay (more in a process with a
        # big heap). Raised (never lowered) for the loop only.
        threshold = gc.get_threshold()
        if threshold[0] > 0:  # 0: the host disabled automatic collection; leave it so
            gc.set_threshold(*(max(a, b) for a, b in zip(threshold, _GC_THRESHOLDS, strict=False)))
        try:
            for bar in self.feed.stream(stop):
                if is_set():
                    ended = "stopped"
                    break
                if skip:
                    last = skip.get(bar.symbol)
                    if last is not None and bar.symbol in symbols:
                        try:
                            stored = bar.time <= last
                        except TypeError:
                            stored = False  # no time (a null in a file): process_bar rejects it
                        if stored:
                            # Already stored by an earlier run or day of this session: not new.
                            self._counts["skipped"] += 1
                            continue
                day_before = self.day
                outcome = process(bar, stop_at_day_end=stop_at_day_end)
                if outcome is not None:
                    ended = "day_end"
                    next_date = outcome
                    break
                if self.day is not day_before and self.day is not None:
                    days.append(self.day)
            else:
                if stop.is_set():
                    ended = "stopped"
        except BaseException as exc:
            self._fire("on_error", exc)
            self.flush()
            raise
        finally:
            gc.set_threshold(*threshold)
        self.flush()
        return StreamResult(
            ended=ended,
            bars=self._counts["bars"] - counts_before["bars"],
            rejected_bars=self._counts["rejected"] - counts_before["rejected"],
            skipped_bars=self._counts["skipped"] - counts_before["skipped"],
            orders=self._counts["orders"] - counts_before["orders"],
            fills=self._counts["fills"] - counts_before["fills"],
            days=tuple(days),
            next_date=next_date,
            last_bar_time=max(self._last_time.values()) if self._last_time else None,
        )

    def process_bar(self, bar: Bar, *, stop_at_day_end: bool = False) -> date | None:
        """Run one bar through the engine.

        Returns:
            The bar's trading date when it belongs to a later date and ``stop_at_day_end`` is
            set (the bar is not consumed); otherwise None.
        """
        # The hot path of a replay: locals instead of repeated attribute lookups, and
        # callbacks checked before they are dispatched.
        writers, stats, day = self.writers, self.stats, self.day
        if writers is None or stats is None or day is None:
            self._require_day()  # raises the explanatory error
            raise AssertionError  # pragma: no cover
        closing = self._closing
        if closing and closing[0].finished:
            self._reap_closing(wait=False)
        symbol, when, o, h, lo, c, v = bar
        # validate_bar's fast path inline (the call costs ~1% of a replay); any doubt goes to
        # validate_bar, which names the problem.
        try:
            plausible = (
                0.0 < lo <= o <= h < _INF
                and lo <= c <= h
                and 0.0 <= v < _INF
                and symbol in self._symbol_set
                and when.tzinfo is not None
                # Text, Decimal or bool values compare (or fail to) in odd ways: any type
                # but float goes to validate_bar.
                and type(o) is type(h) is type(lo) is type(c) is type(v) is float
            )
        except (TypeError, AttributeError):
            plausible = False
        problem = None if plausible else validate_bar(bar, self._symbol_set)
        if problem is None:
            last = self._last_time.get(symbol)
            if last is not None and when <= last:
                kind = "duplicate" if when == last else "out-of-order"
                problem = DataError(
                    f"{kind} {symbol} bar at {when.isoformat()} (last accepted {last.isoformat()})",
                    symbol=symbol,
                )
        if problem is not None:
            self._reject(bar, problem)
            return None
        if not (self._day_lo <= when < self._day_hi):
            bar_day = trading_date(when, self._tz, self._day_start)
            if bar_day > day:
                if stop_at_day_end:
                    return bar_day
                self._roll(bar_day)
                writers, stats, day = self._require_day()
            else:
                self.record_log(
                    f"late {symbol} bar of {bar_day.isoformat()} written to {day.isoformat()}",
                    level=LogLevel.WARNING,
                    fields={"bar_time": when.isoformat()},
                    bar=bar,
                )
        self._last_time[symbol] = when
        self._last_bar[symbol] = bar
        counts = self._counts
        counts["bars"] += 1
        writers.append_bar(bar)
        context = self.context
        context.current_bar = bar
        callbacks = self.callbacks
        if callbacks.on_market_data is not None:
            self._fire("on_market_data", self.run_id_on_day, bar, fatal=True)
        fills_before = counts["fills"]
        # The close first: a resting order this bar fills is then valued at this bar's close,
        # not the previous one (which sampled an equity that never was).
        stats.on_bar(bar)
        try:
            updates = self.broker.on_bar(bar)
        except TransientError as exc:
            # The bar is already stored and counted, and a retry resumes after it: raising
            # would take it from the strategy. The venue keeps what it did; the next poll
            # reports it.
            self._poll_failed(bar, exc)
            updates = None
        if updates:
            self._apply(updates)
        window = context.windows.get(symbol)
        if window is None:
            context.remember(bar)
        else:
            window.append(bar)
        clock = self.clock
        started = clock.monotonic()
        try:
            self.strategy.on_bar(bar, context)
        except (TerminalError, TransientError):
            raise
        except Exception as exc:  # user code: isolate, record, go on with the next bar
            err = StrategyError(
                f"strategy {self.strategy_info.name} raised on {symbol} "
                f"bar at {when.isoformat()}: {exc!r}"
            )
            err.__cause__ = exc
            self.record_log(str(err), level=LogLevel.ERROR, fields={"error": repr(exc)}, bar=bar)
            self._fire("on_strategy_error", bar, err)
        now = clock.monotonic()
        took = now - started
        if took > self._slow_bar_s:
            slow = StrategyError(
                f"strategy {self.strategy_info.name} took {took:.3f}s on {symbol} bar at "
                f"{when.isoformat()} (limit {self._slow_bar_s}s)"
            )
            self.record_log(str(slow), level=LogLevel.WARNING, fields={"seconds": took}, bar=bar)
            self._fire("on_strategy_error", bar, slow)
        if counts["fills"] != fills_before:
            self._stats_dirty = True
        # After fills as soon as the minimum spacing allows, and at least every flush interval.
        stats_due = (
            self._stats_dirty and now >= self._stats_earliest
        ) or now >= self._next_stats_at
        if writers.background:
            # Nothing here waits for the disk: a flush still running is simply not joined, and
            # what is due goes with the next one.
            flush_due = now >= writers.next_flush_at
            if (stats_due or flush_due) and writers.idle():
                # Between flush intervals only the journals, the state and stats.yaml. A full
                # flush always carries the state: it empties the journals, and a state older
                # than what they held would make a restart redo those bars and orders.
                self._submit_interval_flush(
                    writers, with_state=stats_due or flush_due, full=flush_due
                )
        else:
            if stats_due or writers.flush_due(now):
                self._stats_dirty = True
                self.save_state()
                self.write_stats()
            writers.maybe_flush()
        if callbacks.on_stats_update is not None:
            self._fire("on_stats_update", self._stats_document())
        return None

    def _poll_failed(self, bar: Bar, error: TransientError) -> None:
        """Record a broker that could not be polled on ``bar``; the bar goes on to the strategy.

        Open orders stay as last reported until a later poll (the broker paces its polls)
        reports their fills and status; until then the strategy sees them as open, as it does
        between two polls anyway.
        """
        self.record_log(
            f"order poll of broker {self.broker.name} failed on {bar.symbol} bar at "
            f"{bar.time.isoformat()}: {error}; the next poll reports what changed",
            level=LogLevel.WARNING,
            fields={"error": type(error).__name__, "broker": self.broker.name},
            bar=bar,
        )
        self._fire("on_error", error)

    def _reject(self, bar: Bar, problem: DataError) -> None:
        self._counts["rejected"] += 1
        # A bar without a usable time or symbol cannot stamp the log line: the current bar
        # (or the clock) does.
        stamp = (
            bar
            if isinstance(bar.time, datetime)
            and bar.time.tzinfo is not None
            and isinstance(bar.symbol, str)
            else None
        )
        self.record_log(
            f"rejected bar: {problem.message}",
            level=LogLevel.ERROR,
            fields={"error": "DataError", "symbol": str(bar.symbol)},
            bar=stamp,
        )
        self._fire("on_error", problem)

    # -- flush, stop, query --------------------------------------------------------------------

    def flush(self) -> None:
        """Make everything durable and visible: parquet files, stats.yaml, engine state.

        Raises:
            PersistenceError: If a file cannot be written, or a date closing in the
                background failed (the open date is flushed first).
        """
        try:
            self._reap_closing(wait=True)
        finally:
            # A failed close (its journals stay for recovery) must not keep the open date's
            # buffered rows from reaching the disk.
            if self.writers is not None:
                # The state first: the flush empties the journals, which only a state that
                # counts their rows may outlive.
                self.save_state()
                self.writers.flush()
                self._stats_dirty = True
                self.write_stats()

    def stop(self, error: BaseException | None = None) -> None:
        """Stop: flush, final stats.yaml, status ``stopped``, on_engine_stop. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self.flush()
            if self.writers is not None:
                # A stopped run leaves no pending journal behind: parquet files hold everything.
                self.writers.finalize()
                self._accepted.drain(remove=True)
                self.writers.close()
        finally:
            if self._started:
                self._provider_status(ProviderStatus.DISCONNECTED)
            self._fire("on_status_update", EngineStatus.STOPPED)
            self._fire("on_engine_stop", error)

    def query(self, sql: str, params: list[object] | None = None) -> list[tuple[object, ...]]:
        """Read-only SQL over the current day's tables."""
        writers, _, _ = self._require_day()
        return writers.query(sql, params)


__all__ = [
    "ACCEPTED_FILE",
    "STATE_FILE",
    "STATE_VERSION",
    "ArgoError",
    "ClosedDay",
    "StreamResult",
    "TradingEngine",
    "load_state",
    "order_id_prefix",
    "trading_day_bounds",
]
