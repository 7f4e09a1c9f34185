"""Order routing and order ids: from a strategy's intent to the broker and back.

An order's PENDING row is durable before the broker hears of it (the intent); the broker's
updates (fills, status changes) are booked into the statistics and written as they come.
Order ids are ``{session prefix}-r{N}-{seq:06d}``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from argo_engine.domain.enums import OrderStatus, OrderType, PositionType, Side
from argo_engine.domain.orders import Order, OrderIntent
from argo_engine.engine.marks_logs import MarksAndLogs
from argo_engine.errors import StrategyError, TransientError
from argo_engine.ports import OrderUpdate

# Characters of an order id that name its session. Binance takes client order ids of 1-36 of
# [A-Za-z0-9._-] as they are (readable at the venue); "-r{N}-{seq:06d}" takes 10-12 more.
_ORDER_SESSION_CHARS = 24
_ORDER_SESSION_DIGEST = 8


class OrderRouting(MarksAndLogs):
    """Places, cancels and books orders (a part of ``TradingEngine``)."""

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
            if self._replay_order is not None:
                # Only a local book is rebuilt from this journal after a crash.
                self._accepted.record(latest, self.writers)
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


__all__ = ["OrderRouting", "order_id_prefix"]
