"""The trading engine: the per-bar loop, day rollover, order routing and run state.

Per bar, in this order (DESIGN.md): validate -> trading-date check (roll every writer on a new
date) -> persist the bar -> on_market_data -> broker reacts to the bar (resting orders) ->
strategy -> orders and fills recorded (on_order_placed / on_order_filled) -> stats
(stats.yaml, on_stats_update). A broker that cannot be polled on a bar (TransientError) is
logged and reported (on_error), and the bar still reaches the strategy: it is stored and
counted by then, and a retried stream resumes after it.

Crash safety of orders: an order's PENDING row is durable before the broker hears of it (the
intent). When the broker keeps its book in this process (the paper broker), the engine also
journals each acceptance (``.journal/accepted-orders.jsonl``) until the next state save holds
it. A restart resolves every PENDING intent from these files: filled ones become trades (fills
are journaled), accepted ones rest again, ended ones stay ended, and one that never reached the
broker is FAILED; venue brokers are asked instead (:meth:`Broker.recover`). Nothing is sent
twice.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import orjson
import yaml

from argo_engine.clock import Clock
from argo_engine.domain.calendar import trading_date
from argo_engine.domain.enums import (
    EngineStatus,
    LogLevel,
    MarkShape,
    OrderStatus,
    OrderType,
    PositionType,
    ProviderStatus,
    Side,
    SignalType,
)
from argo_engine.domain.ledger import PnlMethod
from argo_engine.domain.market import Bar
from argo_engine.domain.orders import Fill, Order, OrderIntent
from argo_engine.domain.records import LogEntry, Mark
from argo_engine.engine.callbacks import EngineCallbacks, SessionInfo
from argo_engine.engine.context import EngineContext
from argo_engine.engine.rebuild import (
    bar_from_row,
    fill_from_row,
    read_folder_rows,
    replay_stats,
)
from argo_engine.engine.stats import StatsTracker, StrategyInfo
from argo_engine.engine.validation import validate_bar
from argo_engine.errors import (
    ArgoError,
    DataError,
    RecoveryError,
    StrategyError,
    TerminalError,
    TransientError,
)
from argo_engine.persistence.files import (
    atomic_write_bytes,
    fsync_dir,
    move_aside,
    persistence_error,
)
from argo_engine.persistence.journal import (
    Journal,
    is_sealed,
    journal_holds_data,
    unseal_line,
)
from argo_engine.persistence.runs import (
    RunInfo,
    find_session_runs,
    open_run_folder,
    parse_run_number,
)
from argo_engine.persistence.schema import JOURNAL_DIR, RECOVERY_MARKER, STATS_FILE
from argo_engine.persistence.stats_yaml import (
    plain_document,
    read_stats_yaml,
    write_stats_yaml,
)
from argo_engine.persistence.trade_ids import TradeIdLog
from argo_engine.persistence.writers import RunWriters
from argo_engine.ports import Broker, MarketDataFeed, OrderUpdate
from argo_engine.settings import ArgoSettings
from argo_engine.strategies.base import Strategy

log = logging.getLogger(__name__)

STATE_FILE = "engine-state.json"
STATE_VERSION = 1
# Orders a local-book broker accepted since the last state save (one JSON object per line).
ACCEPTED_FILE = "accepted-orders.jsonl"

StreamEnd = Literal["feed_exhausted", "day_end", "stopped"]

# Minimum GC thresholds while bars stream (see TradingEngine.run).
_GC_THRESHOLDS = (50_000, 100, 100)

_INF = math.inf

# Dates whose final flush may run in the background at once (see TradingEngine._roll).
_MAX_CLOSING = 4

# Characters of an order id that name its session. Binance takes client order ids of 1-36 of
# [A-Za-z0-9._-] as they are (readable at the venue); "-r{N}-{seq:06d}" takes 10-12 more.
_ORDER_SESSION_CHARS = 24
_ORDER_SESSION_DIGEST = 8


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


@dataclass(frozen=True, slots=True)
class ClosedDay:
    """A trading date this engine closed (its folder final, on_day_closed fired).

    Attributes:
        date: The trading date.
        run_id: ``run_N`` of its folder.
        folder: Its run folder.
        daily: Its final daily stats block.
        cumulative: The cumulative stats block at its end.
    """

    date: date
    run_id: str
    folder: Path
    daily: dict[str, Any]
    cumulative: dict[str, Any]


@dataclass(slots=True)
class _Closing:
    """A date being finalized on its writers' flusher thread while the next one streams."""

    day: ClosedDay
    done: Future[None]
    # Set by the flusher when ``done`` completes: a plain read per bar, no lock.
    finished: bool = False

    def __post_init__(self) -> None:
        self.done.add_done_callback(self._finish)

    def _finish(self, _: Future[None]) -> None:
        self.finished = True


class TradingEngine:
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
        self._accepted: Journal | None = None
        self._accepted_dirty = False
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

    # -- day lifecycle -------------------------------------------------------------------------

    @property
    def strategy_info(self) -> StrategyInfo:
        """Identity of the running strategy for stats.yaml."""
        cls = type(self.strategy)
        return StrategyInfo(
            id=getattr(cls, "strategy_id", cls.__qualname__),
            version=getattr(cls, "version", "0"),
            name=getattr(cls, "name", cls.__name__),
        )

    def day_bounds(self, day: date) -> tuple[datetime, datetime]:
        """UTC [start, end) of a trading date in the configured zone and day start."""
        return trading_day_bounds(day, self._tz, self._day_start)

    def open_day(
        self, day: date, state: Mapping[str, Any] | None = None, *, folder: Path | None = None
    ) -> Path:
        """Open (or reopen, on retry) the run folder of ``day`` and restore state into the engine.

        Args:
            day: Trading date.
            state: Engine state to restore (from :meth:`save_state` of this or an earlier
                folder); the folder's own saved state wins when present (a retry).
            folder: An existing run folder of this run on ``day`` to reopen (the recovery of
                a crashed folder); by default the run's folder of ``day`` is found or created.

        Returns:
            The run folder.
        """
        info = RunInfo(
            session_id=self.session_id,
            run_id=f"run_{self.run_number}",
            run_number=self.run_number,
            date=day,
            strategy=self.strategy_info.name,
            symbols=self.symbols,
            interval=self.settings.session.interval,
            start_time=self.session_start,
        )
        if folder is None:
            number, folder = open_run_folder(self.data_output, day, self.run_number, info)
        else:
            # Recovery names the folder it found: whichever N it holds, this run wrote it.
            found = parse_run_number(folder.name)
            if found is None or folder.parent != self.data_output / day.isoformat():
                raise ValueError(f"{folder} is not a run folder of {day.isoformat()}")
            number = found
        self.run_id_on_day = f"run_{number}"
        recovering = self._mark_recovery(folder)
        self.writers = RunWriters(
            folder,
            clock=self.clock,
            flush_interval_s=self.settings.persistence.flush_interval_s,
            max_write_share=self.settings.persistence.max_write_share,
            background=self.settings.persistence.background_flush,
            before_first=self._sync_first,
        )
        self.folder = folder
        self.day = day
        self._day_lo, self._day_hi = self.day_bounds(day)
        if self._accepted is not None:
            self._accepted.close()
        self._accepted = Journal(folder / JOURNAL_DIR / ACCEPTED_FILE)
        self._accepted_dirty = self._accepted.path.exists()
        stats_path = folder / STATS_FILE
        if stats_path.exists():
            try:
                read_stats_yaml(stats_path)
            except (ValueError, yaml.YAMLError, OSError):
                # Never overwrite what we cannot read: keep it for a human, then rewrite.
                self.writers.corrupt_files.append(move_aside(stats_path, self.clock.now()))
        try:
            own = load_state(folder)
        except RecoveryError:
            moved = move_aside(folder / JOURNAL_DIR / STATE_FILE, self.clock.now())
            self.writers.corrupt_files.append(moved)
            own = None
        chosen = own if own is not None else state
        if chosen is not None:
            self.restore_state(chosen, day)
        elif self.stats is None:
            self.stats = self._new_stats(day)
        elif self.stats.trading_date != day:
            self.stats.roll_day(day)
        self._day_trades = self._open_trade_log(folder, own)
        lost = self._reconcile_with_files()
        if recovering or lost:
            # Statistics are derived data: after a crash (rows may have been dropped with a
            # damaged journal line, or derived again) they are rebuilt from the stored trades
            # and bars, never carried on from a state that may disagree with them.
            pnl = self._rebuild_stats(lost)
            for fill in lost:
                self.writers.append_fill(fill.with_pnl(pnl.get(fill.trade_id, fill.pnl)))
        self._replay_last_prices()
        for path in self.writers.corrupt_files:
            self.record_log(
                f"unreadable file moved aside: {path.name}",
                level=LogLevel.ERROR,
                fields={"path": str(path)},
            )
        for dropped in self.writers.dropped_journal_lines:
            # Exactly what the moved-aside journal held that no file holds now.
            self.record_log(
                f"damaged journal line dropped in {folder}: {dropped}",
                level=LogLevel.ERROR,
                fields={"folder": str(folder)},
            )
        self._stats_dirty = True
        if recovering:
            # The reconciled state and stats.yaml are durable before the marker goes: from
            # then on the folder is like any other (a crash leaves rows in its journals).
            self.save_state()
            self.write_stats()
            self._unmark_recovery(folder)
        elif self.writers.background:
            if self.writers.idle():
                # The flusher writes the folder's first stats.yaml (and state) right away.
                self._submit_interval_flush(self.writers, with_state=True, full=False)
            # Otherwise the flusher is creating the new folder's files: the first bar that
            # finds it idle hands stats.yaml over (it is due: dirty, no minimum spacing yet).
            self._stats_earliest = 0.0
        else:
            self.write_stats()
        return folder

    def _mark_recovery(self, folder: Path) -> bool:
        """Mark ``folder`` as being recovered if a crash left rows in its journals.

        Opening its writers moves those rows into the parquet files and empties the journals,
        before the state is reconciled with them (fills applied again, PENDING orders resolved
        with the broker). Should that fail (a venue answering 503), the journals no longer
        tell that the folder needs recovery: the marker does, until :meth:`open_day` has saved
        the reconciled state. A new folder has no journal: one ``stat`` call.

        Returns:
            Whether the folder is being recovered (marked now, or by an earlier open that
            failed).

        Raises:
            PersistenceError: If the marker cannot be written.
        """
        journal_dir = folder / JOURNAL_DIR
        if not journal_holds_data(journal_dir):
            return False
        marker = journal_dir / RECOVERY_MARKER
        if not marker.exists():
            atomic_write_bytes(marker, b"")
        return True

    def _unmark_recovery(self, folder: Path) -> None:
        """Remove the recovery marker once the reconciled state is durable.

        Raises:
            PersistenceError: If the marker cannot be removed.
        """
        journal_dir = folder / JOURNAL_DIR
        try:
            (journal_dir / RECOVERY_MARKER).unlink(missing_ok=True)
            fsync_dir(journal_dir)
        except OSError as exc:
            raise persistence_error(exc, journal_dir) from exc

    def _reconcile_with_files(self) -> list[Fill]:
        """Bring the restored state up to what the folder's journal and files hold.

        After a crash the saved state can lag the files: fills written after the last state save
        are applied again (stats, and the paper broker's books), every PENDING order is resolved
        (see :meth:`_resolve_orders`), and the stream resumes after the last stored bar. An
        order stored FILLED whose fill row was lost (a damaged journal line) has its fill
        resolved with the broker (see :meth:`_lost_fills`). Nothing is sent to a broker twice.

        Returns:
            The fills resolved again for FILLED orders without one, not yet stored: their
            realized PnL is only known once the statistics are rebuilt in time order.
        """
        writers, stats, _ = self._require_day()
        if not writers.restored:
            return []  # a new folder: no journal, no files, nothing to reconcile
        trades = self._day_trades
        assert trades is not None
        fills = [fill_from_row(r) for r in writers.read_table("trades")]
        filled_qty: dict[str, float] = {}
        for fill in fills:
            filled_qty[fill.order_id] = filled_qty.get(fill.order_id, 0.0) + fill.executed_qty
        stored = [
            bar_from_row(row)
            for row in writers.query(
                "SELECT symbol, time, open, high, low, close, volume FROM market_data "
                "ORDER BY time, symbol"
            )
        ]
        lost = self._lost_fills(filled_qty, stored)
        for fill in lost:
            filled_qty[fill.order_id] = filled_qty.get(fill.order_id, 0.0) + fill.executed_qty
        fills.extend(lost)
        resolved = {f.trade_id: f for f in lost}  # with the PnL booked below, where booked
        # The bars and fills stored after the state was saved, in the order they happened
        # (a bar, then the fills on it): each bar samples equity with the positions of its
        # time, so a drawdown within them counts, as it did before the crash.
        events: list[tuple[datetime, str, int, str, Bar | Fill]] = [
            (f.executed_at, f.symbol, 1, f.trade_id, f) for f in fills if f.trade_id not in trades
        ]
        for bar in stored:
            last = self._last_time.get(bar.symbol)  # the restored state's cursor
            if last is None or bar.time > last:
                events.append((bar.time, bar.symbol, 0, "", bar))
        events.sort(key=lambda e: e[:4])
        replay = getattr(self.broker, "replay_fill", None)
        for *_, item in events:
            if isinstance(item, Bar):
                self._last_time[item.symbol] = item.time
                self._last_bar[item.symbol] = item
                stats.on_bar(item)
                continue
            booked = stats.record_fill(item)
            if item.trade_id in resolved:
                resolved[item.trade_id] = booked
            if replay is not None:
                replay(item)
            trades.book(item.trade_id)
            log.warning("recovered fill %s from the journal", item.trade_id)
        self._resolve_orders(filled_qty)
        return list(resolved.values())

    def _lost_fills(self, filled_qty: Mapping[str, float], bars: Sequence[Bar]) -> list[Fill]:
        """Resolve with the broker the fills of FILLED orders that have no (complete) fill row.

        A damaged journal line can take a fill while the order's FILLED row survives. The
        paper broker derives the fill again from the stored bars (:meth:`PaperBroker.refill`);
        a venue reports the order's trades (:meth:`Broker.recover`, asked as for an order
        whose outcome is unknown). Each outcome is logged to logs.parquet; an order the
        broker cannot account for is named there as a lost fill.
        """
        writers, _, _ = self._require_day()
        missing = [
            order
            for order in (Order.from_dict(row) for row in writers.read_table("orders"))
            if order.status is OrderStatus.FILLED
            and filled_qty.get(order.order_id, 0.0) < order.quantity * (1 - 1e-9)
        ]
        if not missing:
            return []
        refill = getattr(self.broker, "refill", None)
        found: list[Fill] = []
        for order in missing:
            if refill is not None:
                got = refill(order, bars)
                fills = [got] if got is not None else []
            else:
                asked = order.with_status(OrderStatus.PENDING)
                fills = [
                    f
                    for update in self.broker.recover([asked])
                    for f in update.fills
                    if f.order_id == order.order_id
                ]
            if fills:
                found.extend(fills)
                self.record_log(
                    f"fill of order {order.order_id} was lost from the journal; "
                    f"resolved with the {self.broker.name} broker: "
                    + ", ".join(
                        f"{f.trade_id} {f.executed_qty:g} @ {f.executed_price:g}" for f in fills
                    ),
                    level=LogLevel.WARNING,
                    fields={"order_id": order.order_id},
                )
            else:
                self.record_log(
                    f"fill of order {order.order_id} was lost from the journal and the "
                    f"{self.broker.name} broker cannot tell it: the order stays FILLED "
                    "without a trade row",
                    level=LogLevel.ERROR,
                    fields={"order_id": order.order_id},
                )
        return found

    def _rebuild_stats(self, extra: Sequence[Fill]) -> dict[str, float]:
        """Replace the statistics by a replay of the session's stored bars and fills.

        Every folder of the session up to the open date is read (this folder through its
        writers, which hold the rows recovered from the journal), plus ``extra`` fills not
        stored yet.

        Returns:
            The realized PnL of each fill by trade id, booked in time order; empty when a
            file of another folder is damaged (the restored statistics are kept then).
        """
        writers, _, day = self._require_day()
        days: dict[date, tuple[list[Bar], list[Fill]]] = {}
        own = self.folder.resolve() if self.folder is not None else None
        for run_day, _, folder in find_session_runs(self.data_output, self.session_id):
            if run_day > day or folder.resolve() == own:
                continue
            try:
                bars, fills = read_folder_rows(folder)
            except DataError as exc:
                # Never rebuild from wrong rows: the restored figures stay (they were
                # counted from the file before it was damaged), and the file is named.
                self.record_log(
                    f"statistics not rebuilt: {exc}",
                    level=LogLevel.ERROR,
                    fields={"folder": str(folder)},
                )
                return {}
            got = days.setdefault(run_day, ([], []))
            got[0].extend(bars)
            got[1].extend(fills)
        got = days.setdefault(day, ([], []))
        got[0].extend(
            bar_from_row(row)
            for row in writers.query(
                "SELECT symbol, time, open, high, low, close, volume FROM market_data"
            )
        )
        got[1].extend(fill_from_row(r) for r in writers.read_table("trades"))
        got[1].extend(extra)
        tracker = self._new_stats(min(days))
        pnl = replay_stats(tracker, days, day)
        self.stats = tracker
        return pnl

    def _replay_last_prices(self) -> None:
        """Give a local-book broker the last stored close of every symbol.

        Its saved prices are those of the state it was restored from, which can lag the bars
        stored after it (replayed above) or, for a state a recovery saved, the bars of its
        folder. The account a strategy reads would value positions at those old prices until
        each symbol's next bar; an uninterrupted run values them at the last close.
        """
        replay_bar = getattr(self.broker, "replay_bar", None)
        if replay_bar is None:
            return  # a venue reports its own account
        for bar in self._last_bar.values():
            replay_bar(bar)

    @staticmethod
    def _open_trade_log(folder: Path, own: Mapping[str, Any] | None) -> TradeIdLog:
        """The folder's log of counted fills, cut to what its saved state counts.

        A state saved before the log existed holds the ids themselves (``day_trade_ids``);
        they are booked into a new log, in no particular order.
        """
        if own is None or "day_trade_ids" in own:
            trades = TradeIdLog(folder / JOURNAL_DIR, None)
            for trade_id in own.get("day_trade_ids", []) if own is not None else []:
                trades.book(str(trade_id))
            return trades
        return TradeIdLog(folder / JOURNAL_DIR, int(own.get("day_trades_counted", 0)))

    def _resolve_orders(self, filled_qty: Mapping[str, float]) -> None:
        """Resolve every order the folder's journal holds against the broker, after a restart.

        - An order whose fills add up to its quantity is FILLED (fills are journaled first).
        - An order in a final state (cancelled, rejected, failed) leaves a local book, which a
          state saved before that may still hold.
        - A PENDING order open at the broker (in the restored book) stays open.
        - A PENDING order a local-book broker accepted after the last state save (journaled
          acceptance) rests again, in acceptance order, with its reservation.
        - Any other PENDING order is handed to :meth:`Broker.recover`: a venue reports what
          became of it; the paper broker never received it, so it is FAILED. Never resent.

        Args:
            filled_qty: Quantity filled per order id, from the folder's trades.
        """
        writers, stats, _ = self._require_day()
        trades = self._day_trades
        assert trades is not None
        local = self._replay_order
        open_at_broker = {o.order_id for o in self.broker.open_orders()}
        accepted = self._read_accepted()
        accepted_ids = set(accepted)
        latest: dict[str, Order] = {}
        for row in writers.read_table("orders"):
            order = Order.from_dict(row)
            self._order_seq = max(self._order_seq, _order_seq_of(order.order_id, self.run_number))
            latest[order.order_id] = order
        # Orders of earlier folders that the restored state holds open: this folder may hold
        # their fills without a FILLED row (that row is not durable on its own).
        carried = [o for oid, o in self._open.items() if oid not in latest]
        for order in carried:
            if filled_qty.get(order.order_id, 0.0) >= order.quantity * (1 - 1e-9):
                self._finish_filled(order)
        resting: dict[str, Order] = {}
        unknown: list[Order] = []
        for order in latest.values():
            if order.status is not OrderStatus.PENDING:
                self._open.pop(order.order_id, None)
                if local is not None:
                    local(order)
            elif filled_qty.get(order.order_id, 0.0) >= order.quantity * (1 - 1e-9):
                self._finish_filled(order)
            elif order.order_id in open_at_broker:
                self._open[order.order_id] = order
            elif local is not None and order.order_id in accepted_ids:
                resting[order.order_id] = order
            else:
                unknown.append(order)
        for order_id in accepted:
            again = resting.get(order_id)
            if again is None:
                continue
            assert local is not None
            local(again)
            self._open[order_id] = again
            log.warning("order %s accepted before the crash rests again", order_id)
        if unknown:
            # Ask the broker (the venue, for real brokers) what became of them; never resend.
            for update in self.broker.recover(unknown):
                for fill in update.fills:
                    if fill.trade_id in trades:
                        continue
                    booked = stats.record_fill(fill)
                    writers.append_fill(booked)
                    trades.book(booked.trade_id)
                    if stats.last_unmatched_qty:
                        self._log_unmatched(booked, stats.last_unmatched_qty)
                writers.append_order(update.order)
                if update.order.status is OrderStatus.PENDING:
                    self._open[update.order.order_id] = update.order
                else:
                    self._open.pop(update.order.order_id, None)

    def _finish_filled(self, order: Order) -> None:
        """Record as FILLED an order whose journaled fills complete it."""
        writers, _, _ = self._require_day()
        filled = order.with_status(OrderStatus.FILLED)
        writers.append_order(filled)
        self._open.pop(order.order_id, None)
        if self._replay_order is not None:
            self._replay_order(filled)

    def _read_accepted(self) -> list[str]:
        """Ids of the orders journaled as accepted since the last state save, in order.

        A torn last line (the crash cut the write) or an unreadable one is ignored: its order
        was not durably accepted.
        """
        if self._accepted is None:
            return []
        try:
            data = self._accepted.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise persistence_error(exc, self._accepted.path) from exc
        ids: dict[str, None] = {}
        sealed = is_sealed(data)
        for raw in data.split(b"\n"):
            if not raw:
                continue
            line = unseal_line(raw, sealed=sealed)
            try:
                if line is None:
                    raise orjson.JSONDecodeError("checksum mismatch", "", 0)
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                log.warning("ignoring an unreadable line of %s", self._accepted.path)
                continue
            if isinstance(record, dict) and isinstance(record.get("order_id"), str):
                ids[record["order_id"]] = None
        return list(ids)

    def _journal_accepted(self, order: Order) -> None:
        """Make a local-book broker's acceptance of ``order`` durable until the next state save.

        Raises:
            PersistenceError: If the journal cannot be written.
        """
        if self._replay_order is None or self._accepted is None:
            return
        if self.writers is not None:
            # The acceptance must never be durable without the intent it refers to.
            self.writers.sync_durable()
        record = {"order_id": order.order_id, "at": order.timestamp.isoformat()}
        self._accepted.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        self._accepted.sync()
        self._accepted_dirty = True

    def _drain_accepted(self, *, remove: bool = False) -> None:
        """Empty (or delete) the acceptance journal once a saved state holds its orders.

        The file is closed too (the next acceptance reopens it), so that an engine released
        after a flush holds no descriptor.

        Raises:
            PersistenceError: If the file cannot be truncated or removed.
        """
        journal = self._accepted
        if journal is None:
            return
        if remove:
            journal.remove()
        elif self._accepted_dirty:
            journal.truncate()
            journal.close()
        self._accepted_dirty = False

    def _new_stats(self, day: date) -> StatsTracker:
        return StatsTracker(
            session_id=self.session_id,
            run_id=f"run_{self.run_number}",
            symbols=list(self.symbols),
            initial_capital=self.settings.session.initial_capital,
            pnl_method=self._pnl_method,
            session_start=self.session_start,
            strategy=self.strategy_info,
            trading_date=day,
        )

    def close_day(self) -> dict[str, Any]:
        """Finalize the current day: flush every file, final stats.yaml, on_day_closed.

        Returns:
            The closing day's final daily stats block.
        """
        writers, _, day = self._require_day()
        self._reap_closing(wait=True)
        self.save_state()
        self._stats_dirty = True
        self.write_stats()
        writers.finalize()
        self._drain_accepted(remove=True)
        closed = self._closed_day()
        self.closed_days.append(closed)
        self._fire("on_day_closed", day, closed.daily)
        return closed.daily

    def _closed_day(self) -> ClosedDay:
        _, stats, day = self._require_day()
        assert self.folder is not None
        return ClosedDay(
            date=day,
            run_id=self.run_id_on_day,
            folder=self.folder,
            daily=stats.daily_block(),
            cumulative=stats.cumulative_block(),
        )

    def _roll(self, new_day: date) -> None:
        writers, _, _ = self._require_day()
        start_close: Callable[[], None] | None = None
        sync_closing: Callable[[], None] | None = None
        if writers.background:
            start_close = self._close_in_background()
            # Every state saved from now on (the next date's first, within milliseconds)
            # counts this date's rows, so they must be durable before it, not only when this
            # date's close reaches its fsync (queued behind a flush that may still run). The
            # next date's writers fsync them before their first job: not on this thread.
            sync_closing = writers.sync_later()
        else:
            self.close_day()
            writers.close()
        self.writers = None
        assert self.stats is not None
        self.stats.roll_day(new_day)
        self._sync_first = sync_closing
        try:
            self.open_day(new_day)
        finally:
            self._sync_first = None
        if start_close is not None:
            # Started once the next date is open: opening is many short system calls, each of
            # which would otherwise wait for the GIL while the close runs Python code.
            start_close()

    def _close_in_background(self) -> Callable[[], None]:
        """Prepare closing the current date on its writers' flusher thread (call the result).

        The final engine state and stats.yaml are snapshotted here and written once the
        date's journals are fsynced; its parquet files are written and its journals removed
        after that. on_day_closed fires (on this thread) once the folder is final, at a later
        bar or when the stream ends. A crash meanwhile leaves the journals behind, and the
        next start recovers the folder like any crashed one.
        """
        writers, _, _ = self._require_day()
        assert self.folder is not None
        trades, counted = self._day_trades, self._counted_trades()
        data = self._state_bytes()
        document = plain_document(self._stats_document())
        folder = self.folder
        accepted, self._accepted = self._accepted, None
        self._accepted_dirty = False

        def after_sync() -> None:
            (folder / JOURNAL_DIR).mkdir(exist_ok=True)
            if trades is not None:
                trades.sync_to(counted)  # before the state that counts them
            atomic_write_bytes(folder / JOURNAL_DIR / STATE_FILE, data)
            write_stats_yaml(folder / STATS_FILE, document)

        def after_final() -> None:
            if accepted is not None:
                # The saved state holds every order accepted on this date.
                accepted.remove()

        closed = self._closed_day()

        def start() -> None:
            done = writers.finalize_in_background(after_sync, after_final)
            self._closing.append(_Closing(closed, done))
            # Back-pressure: dates must not close more slowly than they stream for long, or
            # their rows would pile up in memory.
            while len(self._closing) > _MAX_CLOSING:
                self._reap_closing(wait=True, limit=1)

        return start

    def _reap_closing(self, *, wait: bool, limit: int | None = None) -> None:
        """Report the dates whose background close has ended (all of them with ``wait``).

        Args:
            wait: Wait for closes still running.
            limit: Report at most this many (oldest first).

        Raises:
            PersistenceError: If a background close failed (its journals stay for recovery).
        """
        failed: BaseException | None = None
        while self._closing and (limit is None or limit > 0):
            if limit is not None:
                limit -= 1
            closing = self._closing[0]
            if not wait and not closing.finished:
                break
            del self._closing[0]
            try:
                closing.done.result()
            except BaseException as exc:
                # The dates closing after it are still waited for and reported; the first
                # failure is raised once they are.
                failed = failed or exc
                continue
            self.closed_days.append(closing.day)
            self._fire("on_day_closed", closing.day.date, closing.day.daily)
        if failed is not None:
            raise failed

    def _require_day(self) -> tuple[RunWriters, StatsTracker, date]:
        if self.writers is None or self.stats is None or self.day is None:
            raise RuntimeError("no trading date is open; call open_day() first")
        return self.writers, self.stats, self.day

    # -- state ---------------------------------------------------------------------------------

    def save_state(self) -> None:
        """Write the engine state (broker, stats, strategy cache, cursors) into the run folder."""
        if self.folder is None or self.stats is None:
            return
        if self.writers is not None:
            # A background flush may be writing an older state to the same file.
            self.writers.wait()
        counted = self._counted_trades()
        data = self._state_bytes()
        if self.writers is not None:
            # The state must never claim more than the files hold: rows first, then state.
            self.writers.sync()
        journal = self.folder / JOURNAL_DIR
        journal.mkdir(exist_ok=True)
        if self._day_trades is not None:
            self._day_trades.sync_to(counted)
        atomic_write_bytes(journal / STATE_FILE, data)
        # The saved broker state now holds every order accepted so far.
        self._drain_accepted()

    def _counted_trades(self) -> int:
        return len(self._day_trades) if self._day_trades is not None else 0

    def _state_bytes(self) -> bytes:
        """The engine state as JSON bytes: a snapshot that later bars cannot change.

        Raises:
            StrategyError: If the strategy cache is not JSON-serializable.
        """
        assert self.stats is not None
        state = {
            "version": STATE_VERSION,
            "session_id": self.session_id,
            "run_number": self.run_number,
            "date": self.day.isoformat() if self.day else None,
            "session_start": self.session_start.isoformat(),
            "saved_at": self.clock.now().isoformat(),
            "order_seq": self._order_seq,
            "last_time": {s: t.isoformat() for s, t in self._last_time.items()},
            "last_bar": {
                s: [b.time.isoformat(), b.open, b.high, b.low, b.close, b.volume]
                for s, b in self._last_bar.items()
            },
            "open_orders": [o.to_dict() for o in self._open.values()],
            "broker": self.broker.save_state(),
            "stats": self.stats.to_state(),
            "cache": self.context.cache,
            # How many lines of .journal/trade-ids.txt this state counts (the ids themselves
            # would make every state save grow with the date's fills).
            "day_trades_counted": self._counted_trades(),
        }
        try:
            return orjson.dumps(state, default=_json_default)
        except TypeError as exc:
            raise StrategyError(f"strategy cache is not JSON-serializable: {exc}") from exc

    def _submit_interval_flush(
        self, writers: RunWriters, *, with_state: bool, full: bool = True
    ) -> None:
        """Hand the periodic flush, engine state and stats.yaml to the background flusher.

        The state and the stats document are snapshotted here, on the engine thread; the
        flusher writes them once the journals holding every row they count are fsynced.
        """
        after_sync = None
        if with_state and self.folder is not None and self.stats is not None:
            trades, counted = self._day_trades, self._counted_trades()
            data = self._state_bytes()
            document = plain_document(self._stats_document())
            folder = self.folder
            accepted = self._accepted if self._accepted_dirty else None
            accepted_generation = accepted.generation if accepted is not None else 0
            self._accepted_dirty = False
            self._stats_dirty = False
            now = self.clock.monotonic()
            self._next_stats_at = now + self.settings.persistence.flush_interval_s
            self._stats_earliest = now + self.settings.persistence.stats_min_interval_s

            def after_sync() -> None:
                (folder / JOURNAL_DIR).mkdir(exist_ok=True)
                if trades is not None:
                    trades.sync_to(counted)  # before the state that counts them
                atomic_write_bytes(folder / JOURNAL_DIR / STATE_FILE, data)
                if accepted is not None and not accepted.truncate_if_unchanged(accepted_generation):
                    # Accepted after the snapshot: those lines must wait for the next state.
                    self._accepted_dirty = True
                write_stats_yaml(folder / STATS_FILE, document)

        writers.submit(after_sync, full=full)

    def restore_state(self, state: Mapping[str, Any], day: date) -> None:
        """Restore a saved engine state; the stats roll to ``day`` if the state is older."""
        self._order_seq = int(state.get("order_seq", 0))
        self.session_start = datetime.fromisoformat(state["session_start"])
        self._last_time = {s: datetime.fromisoformat(t) for s, t in state["last_time"].items()}
        self._last_bar = {
            s: Bar(s, datetime.fromisoformat(v[0]), v[1], v[2], v[3], v[4], v[5])
            for s, v in state.get("last_bar", {}).items()
        }
        self._open = {o["order_id"]: Order.from_dict(o) for o in state.get("open_orders", [])}
        self.broker.restore_state(state["broker"])
        saved_day = (
            date.fromisoformat(state["stats"]["trading_date"])
            if state.get("stats", {}).get("trading_date")
            else None
        )
        self.stats = StatsTracker.from_state(
            state["stats"],
            session_id=self.session_id,
            run_id=f"run_{self.run_number}",
            symbols=list(self.symbols),
            initial_capital=self.settings.session.initial_capital,
            pnl_method=self._pnl_method,
            session_start=self.session_start,
            strategy=self.strategy_info,
            trading_date=saved_day or day,
        )
        if self.stats.trading_date != day:
            self.stats.roll_day(day)
        self.context.replace_cache(dict(state.get("cache", {})))

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
                    if last is not None and bar.time <= last and bar.symbol in symbols:
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

    # -- orders --------------------------------------------------------------------------------

    def _next_order_id(self) -> str:
        self._order_seq += 1
        return f"{self._order_prefix}-r{self.run_number}-{self._order_seq:06d}"

    def place_order(self, intent: OrderIntent) -> Order:
        """Record a strategy's order intent durably, then submit it to the broker.

        Raises:
            StrategyError: If ``intent`` is not an OrderIntent.
        """
        writers, _, _ = self._require_day()
        if not isinstance(intent, OrderIntent):
            raise StrategyError(f"place_order expects an OrderIntent, got {type(intent).__name__}")
        bar = self._last_bar.get(intent.symbol)
        now = self.context.now
        ref_price = intent.price if intent.price is not None else (bar.close if bar else math.nan)
        # Enum lookups by value cost more than the rest of the order's fields together; the
        # intent usually holds the members already.
        side, order_type, ptype = intent.side, intent.order_type, intent.position_type
        order = Order(
            order_id=self._next_order_id(),
            symbol=intent.symbol,
            side=side if type(side) is Side else Side(side),
            order_type=order_type if type(order_type) is OrderType else OrderType(order_type),
            quantity=float(intent.quantity),
            price=float(ref_price),
            timestamp=now,
            status=OrderStatus.PENDING,
            strategy_name=self._strategy_name,
            position_type=ptype if type(ptype) is PositionType else PositionType(ptype),
            reason=intent.reason,
            message=intent.message,
        )
        self._counts["orders"] += 1
        if intent.symbol not in self._symbol_set:
            order = order.with_status(
                OrderStatus.REJECTED,
                reason="invalid_symbol",
                message=f"symbol {intent.symbol!r} is not traded in this session",
            )
            writers.append_order(order, durable=self._durable_orders)
            self._fire("on_order_placed", order)
            return order
        # The intent is durable before the broker hears of it (no order at the venue without
        # a row on disk). A local-book broker (paper) keeps its book in this process, so a
        # crash takes the book down with it: there the intent is written now and fsynced
        # together with its outcome (fill, rejection or acceptance), never after it; batched
        # (the default for paper), it waits with its outcome for the next flush.
        writers.append_order(order, durable=self._durable_orders, sync=self._replay_order is None)
        self._fire("on_order_placed", order)
        try:
            updates = self.broker.submit(order, bar)
        except TransientError as exc:
            failed = order.with_status(
                OrderStatus.FAILED, reason="broker_unavailable", message=str(exc)
            )
            writers.append_order(failed, durable=self._durable_orders)
            self._fire("on_error", exc)
            return failed
        latest = order
        if updates:
            for update in updates:
                if update.order == order and not update.fills:
                    # Accepted as recorded: the intent row already says so.
                    self._open[order.order_id] = order
            self._apply(updates)
            for update in updates:
                if update.order.order_id == order.order_id:
                    latest = update.order
        if latest.status is OrderStatus.PENDING:
            self._open[latest.order_id] = latest
            self._journal_accepted(latest)
        return latest

    def cancel_order(self, order_id: str) -> bool:
        """Cancel an open order; False when unknown or already final."""
        if order_id not in self._open:
            return False
        updates = self.broker.cancel(order_id)
        self._apply(updates)
        return order_id not in self._open

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Open (PENDING) orders, optionally of one symbol."""
        return [o for o in self._open.values() if symbol is None or o.symbol == symbol]

    def _apply(self, updates: Sequence[OrderUpdate]) -> None:
        writers, stats, _ = self._require_day()
        trades = self._day_trades
        assert trades is not None
        for update in updates:
            order = update.order
            for fill in update.fills:
                booked = stats.record_fill(fill)
                writers.append_fill(booked, durable=self._durable_orders)
                trades.book(booked.trade_id)
                self._counts["fills"] += 1
                if stats.last_unmatched_qty:
                    self._log_unmatched(booked, stats.last_unmatched_qty)
                self._fire("on_order_filled", booked)
            previous = self._open.get(order.order_id)
            if previous is None or previous.status is not order.status:
                # FILLED is implied by the durable fill rows (recovery re-derives it).
                writers.append_order(order, durable=self._durable_orders and not update.fills)
            if order.status is OrderStatus.PENDING:
                self._open[order.order_id] = order
            else:
                self._open.pop(order.order_id, None)

    # -- marks and logs ------------------------------------------------------------------------

    def record_mark(
        self,
        *,
        title: str,
        message: str,
        color: str,
        shape: MarkShape,
        level: LogLevel,
        category: str,
        signal: SignalType | None,
    ) -> None:
        """Write a mark for the current bar."""
        writers, _, _ = self._require_day()
        bar = self.context.current_bar
        writers.append_mark(
            Mark(
                id=writers.next_id("marks"),
                market_data_id="" if bar is None else f"{bar.symbol}@{bar.time.isoformat()}",
                signal_type=None if signal is None else str(signal),
                signal_name=None if signal is None else str(signal),
                signal_time=None if signal is None or bar is None else bar.time,
                signal_symbol=None if signal is None or bar is None else bar.symbol,
                color=color,
                shape=shape if type(shape) is MarkShape else MarkShape(shape),
                level=level if type(level) is LogLevel else LogLevel(level),
                title=title,
                message=message,
                category=category,
            )
        )

    def record_log(
        self,
        message: str,
        *,
        level: LogLevel = LogLevel.INFO,
        fields: Mapping[str, object] | None = None,
        bar: Bar | None = None,
    ) -> None:
        """Write a log entry stamped with the bar time (current bar unless given)."""
        writers = self.writers
        bar = bar or self.context.current_bar
        getattr(log, "warning" if level is LogLevel.WARNING else str(level), log.info)(
            "%s", message
        )
        if writers is None:
            return
        ts = bar.time if bar is not None else self.clock.now()
        writers.append_log(
            LogEntry(
                id=writers.next_id("logs"),
                timestamp=ts,
                symbol=bar.symbol if bar is not None else "",
                level=level if type(level) is LogLevel else LogLevel(level),
                message=message,
                fields={str(k): str(v) for k, v in (fields or {}).items()},
            )
        )

    def _log_unmatched(self, fill: Fill, unmatched_qty: float) -> None:
        """Warn that part of a SELL closed no open position (stats count it as unmatched_qty).

        A venue can sell what the session never bought (coins held before it started): only
        the matched part is booked as PnL, and the rest must not pass silently.
        """
        self.record_log(
            f"SELL of {fill.executed_qty:g} {fill.symbol} ({fill.position_type}) exceeded the "
            f"open position by {unmatched_qty:g}: that quantity books no PnL (unmatched_qty)",
            level=LogLevel.WARNING,
            fields={
                "symbol": fill.symbol,
                "unmatched_qty": unmatched_qty,
                "order_id": fill.order_id,
            },
        )

    # -- stats, flush, stop --------------------------------------------------------------------

    def _stats_document(self) -> dict[str, Any]:
        _, stats, _ = self._require_day()
        assert self.folder is not None
        doc = stats.document(now=self.clock.now(), run_folder=self.folder)
        doc["id"] = self.run_id_on_day
        if self.run_id_on_day != f"run_{self.run_number}":
            # DESIGN.md: a run_N taken by another session on a later date is recorded here.
            doc["session_run_id"] = f"run_{self.run_number}"
        return doc

    def write_stats(self) -> None:
        """Write stats.yaml now (atomically) if anything changed since the last write."""
        if not self._stats_dirty or self.folder is None or self.stats is None:
            return
        if self.writers is not None:
            self.writers.wait()
        write_stats_yaml(self.folder / STATS_FILE, self._stats_document())
        self._stats_dirty = False
        now = self.clock.monotonic()
        self._next_stats_at = now + self.settings.persistence.flush_interval_s
        self._stats_earliest = now + self.settings.persistence.stats_min_interval_s

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
                self._drain_accepted(remove=True)
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

    # -- callbacks -----------------------------------------------------------------------------

    def _fire(self, name: str, *args: Any, fatal: bool = False) -> None:
        callback = getattr(self.callbacks, name)
        if callback is None:
            return
        try:
            callback(*args)
        except Exception as exc:
            if fatal:
                raise TerminalError(f"callback {name} failed: {exc!r}", callback=name) from exc
            log.exception("callback %s failed", name)
            if name != "on_error" and self.callbacks.on_error is not None:
                try:
                    self.callbacks.on_error(exc)
                except Exception:
                    log.exception("callback on_error failed")


def trading_day_bounds(
    day: date, tz: ZoneInfo, day_start: time | None
) -> tuple[datetime, datetime]:
    """UTC [start, end) of a trading date (inverse of ``trading_date``).

    With a day start (e.g. 17:00), date D runs from D-1 17:00 to D 17:00 local time.
    """
    start_t = day_start or time(0, 0)
    first = day - timedelta(days=1) if day_start is not None else day
    lo = datetime.combine(first, start_t, tzinfo=tz).astimezone(UTC)
    hi = datetime.combine(first + timedelta(days=1), start_t, tzinfo=tz).astimezone(UTC)
    return lo, hi


def load_state(folder: Path) -> dict[str, Any] | None:
    """Read the engine state saved in a run folder, or None when there is none.

    Raises:
        RecoveryError: When the file exists but cannot be parsed.
    """
    path = folder / JOURNAL_DIR / STATE_FILE
    if not path.exists():
        return None
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise RecoveryError(f"engine state {path} is unreadable: {exc}", path=str(path)) from exc
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        raise RecoveryError(f"engine state {path} has an unknown format", path=str(path))
    return data


def _json_default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def order_id_prefix(session_id: str) -> str:
    """The part of a session's order ids that names the session (at most 24 characters).

    Order ids are ``{prefix}-r{N}-{seq:06d}``. Sessions whose ids start alike (generated ids
    of the same ten minutes, names such as ``btc-momentum-a`` / ``-b``) may share a data
    output or a venue account, where a shared id would let one session's order stand for
    another's (a venue refuses a client order id already open, and looks orders up by it).
    So the prefix is the whole session id when it fits (generated ids, 24 characters, do);
    a longer one keeps its first 15 characters, then 8 hex digits of its SHA-256.

    Args:
        session_id: The session id.

    Returns:
        The order id prefix.
    """
    if len(session_id) <= _ORDER_SESSION_CHARS:
        return session_id
    digest = hashlib.sha256(session_id.encode()).hexdigest()[:_ORDER_SESSION_DIGEST]
    return f"{session_id[: _ORDER_SESSION_CHARS - _ORDER_SESSION_DIGEST - 1]}-{digest}"


def _order_seq_of(order_id: str, run_number: int) -> int:
    # Reads ids of every shape written so far (the session part was once its first 12
    # characters): only the "-r{N}-{seq}" tail counts.
    head, _, tail = order_id.rpartition("-")
    if head.endswith(f"-r{run_number}") and tail.isdigit():
        return int(tail)
    return 0


__all__ = ["ArgoError", "ClosedDay", "StreamResult", "TradingEngine", "load_state"]
