"""Crash reconciliation: bringing a restored engine state up to what a folder's files hold.

Crash safety of orders: an order's PENDING row is durable before the broker hears of it (the
intent). When the broker keeps its book in this process (the paper broker), the engine also
journals each acceptance (``.journal/accepted-orders.jsonl``) until the next state save holds
it. A restart resolves every PENDING intent from these files: filled ones become trades (fills
are journaled), accepted ones rest again, ended ones stay ended, and one that never reached the
broker is FAILED; venue brokers are asked instead (:meth:`Broker.recover`). Nothing is sent
twice. Fills and bars stored after the last state save are replayed into the statistics, lost
fills are resolved with the broker, and a local-book broker gets the last stored prices.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from argo_engine.domain.enums import LogLevel, OrderStatus
from argo_engine.domain.market import Bar
from argo_engine.domain.orders import Fill, Order
from argo_engine.engine.marks_logs import MarksAndLogs
from argo_engine.engine.orders import _order_seq_of
from argo_engine.engine.rebuild import (
    bar_from_row,
    fill_from_row,
    in_engine_order,
    read_folder_rows,
    replay_stats,
)
from argo_engine.engine.stats_document import StatsDocument
from argo_engine.errors import DataError
from argo_engine.persistence.files import atomic_write_bytes, fsync_dir, persistence_error
from argo_engine.persistence.journal import journal_holds_data
from argo_engine.persistence.runs import find_session_runs
from argo_engine.persistence.schema import JOURNAL_DIR, RECOVERY_MARKER
from argo_engine.persistence.trade_ids import TradeIdLog

log = logging.getLogger(__name__)


class Reconciliation(MarksAndLogs, StatsDocument):
    """Reconciles the restored state with the open folder's files (a part of ``TradingEngine``)."""

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
        cursor = self._last_time  # the restored state's
        events = in_engine_order(
            (b for b in stored if (last := cursor.get(b.symbol)) is None or b.time > last),
            (f for f in fills if f.trade_id not in trades),
        )
        replay = getattr(self.broker, "replay_fill", None)
        for item in events:
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
        accepted = self._accepted.read_ids()
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


def mark_recovery(folder: Path) -> bool:
    """Mark ``folder`` as being recovered if a crash left rows in its journals.

    Opening its writers moves those rows into the parquet files and empties the journals,
    before the state is reconciled with them (fills applied again, PENDING orders resolved
    with the broker). Should that fail (a venue answering 503), the journals no longer
    tell that the folder needs recovery: the marker does, until ``TradingDay.open_day`` has
    saved the reconciled state. A new folder has no journal: one ``stat`` call.

    Args:
        folder: The run folder being opened.

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


def unmark_recovery(folder: Path) -> None:
    """Remove the recovery marker once the reconciled state is durable.

    Args:
        folder: The run folder being recovered.

    Raises:
        PersistenceError: If the marker cannot be removed.
    """
    journal_dir = folder / JOURNAL_DIR
    try:
        (journal_dir / RECOVERY_MARKER).unlink(missing_ok=True)
        fsync_dir(journal_dir)
    except OSError as exc:
        raise persistence_error(exc, journal_dir) from exc


def open_trade_log(folder: Path, own: Mapping[str, Any] | None) -> TradeIdLog:
    """The folder's log of counted fills, cut to what its saved state counts.

    A state saved before the log existed holds the ids themselves (``day_trade_ids``);
    they are booked into a new log, in no particular order.

    Args:
        folder: The run folder.
        own: The state saved in the folder itself, None when it has none.

    Returns:
        The log of the fills counted on the folder's date.
    """
    if own is None or "day_trade_ids" in own:
        trades = TradeIdLog(folder / JOURNAL_DIR, None)
        for trade_id in own.get("day_trade_ids", []) if own is not None else []:
            trades.book(str(trade_id))
        return trades
    return TradeIdLog(folder / JOURNAL_DIR, int(own.get("day_trades_counted", 0)))


__all__ = ["Reconciliation", "mark_recovery", "open_trade_log", "unmark_recovery"]
