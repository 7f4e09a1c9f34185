"""The paper broker: a local simulated account behind the broker port.

Fills: MARKET orders at the close of the bar the strategy saw; LIMIT orders rest and are
checked from the next bar of their symbol on (the strategy already saw the submit bar's close):
a BUY fills when the bar's low reaches the limit, at min(limit, open); a SELL when the high
reaches it, at max(limit, open) — a gap through the limit fills at the better open.

Cash (the ledger's convention): LONG BUY pays p*q+fee, LONG SELL receives p*q-fee; SHORT BUY
(open) receives p*q-fee, SHORT SELL (cover) pays p*q+fee. Opening a short needs cash of at
least notional + fee as collateral. Rejections carry a reason: invalid_quantity,
invalid_price, insufficient_buying_power, insufficient_position.

Crash recovery: the broker is the venue, and its book lives in this process. Its state is saved
with the engine state; what happened after the last save is rebuilt from the engine's durable
journals: last prices through :meth:`PaperBroker.replay_bar`, fills through
:meth:`PaperBroker.replay_fill`, accepted (resting) orders and orders that ended (cancelled,
rejected) through :meth:`PaperBroker.replay_order`. An order the engine recorded but that never
reached the broker is resolved by :meth:`PaperBroker.recover`: FAILED, never sent. An order
recorded FILLED whose fill row was lost gets its fill derived again from the stored bars
(:meth:`PaperBroker.refill`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from argo_engine.clock import Clock
from argo_engine.domain.enums import OrderStatus, OrderType, PositionType, Side
from argo_engine.domain.ledger import Ledger, PnlMethod
from argo_engine.domain.market import Bar
from argo_engine.domain.orders import Fill, Order
from argo_engine.domain.positions import Position
from argo_engine.ports import Account, OrderUpdate
from argo_engine.providers.commission import CommissionModel

_TOL = 1e-9


class PaperBroker:
    """A deterministic simulated broker.

    Args:
        initial_cash: Starting cash.
        commission: Commission model.
        pnl_method: How realized PnL is booked in the account figures.
        clock: Unused by the fill model (bar time decides); kept for the port's shape.
    """

    name = "paper"

    def __init__(
        self,
        *,
        initial_cash: float,
        commission: CommissionModel,
        pnl_method: PnlMethod = PnlMethod.FIFO,
        clock: Clock | None = None,
    ) -> None:
        self.cash = initial_cash
        self.commission = commission
        self.ledger = Ledger(pnl_method)
        self.realized = 0.0
        self.fees = 0.0
        self._last: dict[str, float] = {}
        self._resting: dict[str, Order] = {}
        self._reserved_cash: dict[str, float] = {}
        self._fill_seq: dict[str, int] = {}
        self._positions_cache: list[Position] | None = None

    # -- port ------------------------------------------------------------------------------------

    def submit(self, order: Order, bar: Bar | None) -> list[OrderUpdate]:
        """Fill a MARKET order at the bar's close, rest a LIMIT order, or reject."""
        problem = self._check(order)
        if problem is not None:
            reason, message = problem
            return [self._reject(order, reason, message)]
        if order.order_type is OrderType.MARKET:
            price = bar.close if bar is not None else order.price
            if not (math.isfinite(price) and price > 0):
                return [self._reject(order, "invalid_price", "no market price to fill at")]
            at = bar.time if bar is not None else order.timestamp
            return [self._fill(order, price, at)]
        self._rest(order)
        return [OrderUpdate(order)]

    def cancel(self, order_id: str) -> list[OrderUpdate]:
        """Cancel a resting order."""
        order = self._resting.pop(order_id, None)
        if order is None:
            return []
        self._reserved_cash.pop(order_id, None)
        cancelled = order.with_status(
            OrderStatus.CANCELLED, "cancelled", "cancelled by the strategy"
        )
        return [OrderUpdate(cancelled)]

    def on_bar(self, bar: Bar) -> list[OrderUpdate]:
        """Remember the price; fill resting LIMIT orders the bar's range crosses."""
        self._last[bar.symbol] = bar.close
        if not self._resting:
            return []
        updates = []
        for order in list(self._resting.values()):
            if order.symbol != bar.symbol or order.timestamp >= bar.time:
                continue
            price = _limit_fill_price(order, bar)
            if price is None:
                continue
            del self._resting[order.order_id]
            self._reserved_cash.pop(order.order_id, None)
            problem = self._check(order)
            if problem is not None:
                updates.append(self._reject(order, *problem))
                continue
            updates.append(self._fill(order, price, bar.time))
        return updates

    def open_orders(self) -> list[Order]:
        """Resting orders."""
        return list(self._resting.values())

    def positions(self) -> list[Position]:
        """Open positions (cached until the next fill)."""
        if self._positions_cache is None:
            self._positions_cache = self.ledger.positions()
        return self._positions_cache

    def position_quantity(self, symbol: str, position_type: PositionType) -> float:
        """Open quantity of one bucket (fast path for strategies)."""
        return self.ledger.quantity(symbol, position_type)

    def account(self) -> Account:
        """Cash, equity at the last prices, PnL and fees."""
        value = 0.0
        balances: dict[str, float] = {"cash": self.cash}
        for pos in self.positions():
            last = self._last.get(pos.symbol, pos.average_price)
            sign = 1.0 if pos.position_type is PositionType.LONG else -1.0
            value += sign * pos.quantity * last
            balances[pos.symbol] = balances.get(pos.symbol, 0.0) + sign * pos.quantity
        return Account(
            cash=self.cash,
            equity=self.cash + value,
            realized_pnl=self.realized,
            unrealized_pnl=self.ledger.unrealized(self._last),
            total_fees=self.fees,
            balances=balances,
        )

    def recover(self, orders: list[Order]) -> list[OrderUpdate]:
        """Resolve orders recorded before a crash that this broker never accepted: FAILED.

        The engine hands over the PENDING orders of its journal that neither the restored book
        nor a journaled acceptance (:meth:`replay_order`) accounts for: the process stopped
        between recording the intent and the broker taking it. They are never submitted again.
        An order that does rest in the book is open and is not reported.

        Args:
            orders: PENDING orders whose fate the engine does not know.

        Returns:
            One FAILED update (reason ``lost_on_restart``) per order not in the book.
        """
        return [
            OrderUpdate(
                order.with_status(
                    OrderStatus.FAILED,
                    reason="lost_on_restart",
                    message="the engine stopped before the paper broker accepted this order; "
                    "it was not sent again",
                )
            )
            for order in orders
            if order.order_id not in self._resting
        ]

    def refill(self, order: Order, bars: Sequence[Bar]) -> Fill | None:
        """The fill this broker gave ``order``, found again from the bars it was filled on.

        For an order recorded FILLED whose fill row was lost (a damaged journal line): the
        fill model is a pure function of the order and the stored bars, so the fill is
        derived again, without booking it (the engine replays it in time order). A MARKET
        order filled at its reference price (the close the strategy saw) at the time of the
        symbol's last bar before it; a LIMIT order at the first later bar whose range
        crosses its limit, at the price :meth:`on_bar` gives.

        Args:
            order: The FILLED order.
            bars: Stored bars, in time order (any symbols).

        Returns:
            The fill (realized pnl 0, for the caller to book), or None when the bars do not
            tell (the bar it filled on is not stored).
        """
        own = [b for b in bars if b.symbol == order.symbol]
        if order.order_type is OrderType.MARKET:
            seen = [b for b in own if b.time <= order.timestamp]
            if not seen or not (math.isfinite(order.price) and order.price > 0):
                return None
            price, at = order.price, seen[-1].time
        else:
            for bar in own:
                if bar.time <= order.timestamp:
                    continue
                crossed = _limit_fill_price(order, bar)
                if crossed is not None:
                    price, at = crossed, bar.time
                    break
            else:
                return None
        fee = self.commission.fee(quantity=order.quantity, price=price)
        return _paper_fill(order, 1, price, at, fee)

    def replay_fill(self, fill: Fill) -> None:
        """Apply a fill found in the journal but missing from restored state (crash recovery)."""
        self._book(fill.symbol, fill.side, fill.position_type, fill.executed_qty,
                   fill.executed_price, fill.commission, fill.executed_at)  # fmt: skip
        self._resting.pop(fill.order_id, None)
        self._reserved_cash.pop(fill.order_id, None)

    def replay_bar(self, bar: Bar) -> None:
        """Take a stored bar's close as the symbol's last price (crash recovery).

        Unlike :meth:`on_bar`, resting orders are not matched against it: what they did on a
        stored bar is journaled and comes back through :meth:`replay_fill`. Without it, the
        account would value positions at the prices of the last saved state until each
        symbol's next bar.

        Args:
            bar: The latest bar the engine stored for its symbol.
        """
        self._last[bar.symbol] = bar.close

    def replay_order(self, order: Order) -> None:
        """Apply an order's durable state that the restored book may lack (crash recovery).

        A PENDING LIMIT order (one this broker accepted, as the engine journaled) rests again
        with the cash reservation :meth:`submit` gave it; it is not checked or sent again, and
        an order already resting is left as it is. An order in a final state (FILLED,
        CANCELLED, REJECTED, FAILED) leaves the book and frees its reservation, so it can never
        fill after the restart.

        Args:
            order: The order's latest state from the engine's journal.
        """
        if order.status is OrderStatus.PENDING:
            if order.order_type is OrderType.LIMIT and order.order_id not in self._resting:
                self._rest(order)
            return
        self._resting.pop(order.order_id, None)
        self._reserved_cash.pop(order.order_id, None)
        self._fill_seq.pop(order.order_id, None)

    def save_state(self) -> dict[str, Any]:
        """Everything needed to continue identically."""
        return {
            "cash": self.cash,
            "realized": self.realized,
            "fees": self.fees,
            "pnl_method": str(self.ledger.method),
            "ledger": self.ledger.to_state(),
            "last": dict(self._last),
            "resting": [Order.to_dict(o) for o in self._resting.values()],
            "reserved": dict(self._reserved_cash),
            "fill_seq": dict(self._fill_seq),
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`save_state` output."""
        self.cash = float(state["cash"])
        self.realized = float(state["realized"])
        self.fees = float(state["fees"])
        self.ledger = Ledger.from_state(PnlMethod(state["pnl_method"]), state["ledger"])
        self._last = {str(k): float(v) for k, v in state["last"].items()}
        self._resting = {o["order_id"]: Order.from_dict(o) for o in state["resting"]}
        self._reserved_cash = {str(k): float(v) for k, v in state["reserved"].items()}
        self._fill_seq = {str(k): int(v) for k, v in state.get("fill_seq", {}).items()}
        self._positions_cache = None

    def close(self) -> None:
        """Nothing to release."""

    # -- internals -------------------------------------------------------------------------------

    def _rest(self, order: Order) -> None:
        """Put an accepted LIMIT order in the book, reserving the cash it may need."""
        reserve = self._cash_needed(order, order.price)
        if reserve > 0:
            self._reserved_cash[order.order_id] = reserve
        self._resting[order.order_id] = order

    def _reject(self, order: Order, reason: str, message: str) -> OrderUpdate:
        return OrderUpdate(order.with_status(OrderStatus.REJECTED, reason, message))

    def _cash_needed(self, order: Order, price: float) -> float:
        opening_short = order.position_type is PositionType.SHORT and order.side is Side.BUY
        paying = order.position_type is PositionType.LONG and order.side is Side.BUY
        covering = order.position_type is PositionType.SHORT and order.side is Side.SELL
        if paying or opening_short or covering:
            return order.quantity * price + self.commission.fee(
                quantity=order.quantity, price=price
            )
        return 0.0

    def _check(self, order: Order) -> tuple[str, str] | None:
        qty = order.quantity
        if not (math.isfinite(qty) and qty > 0):
            return "invalid_quantity", f"quantity must be a positive number, got {qty!r}"
        if order.order_type is OrderType.LIMIT and not (
            math.isfinite(order.price) and order.price > 0
        ):
            return "invalid_price", f"limit price must be positive, got {order.price!r}"
        price = order.price if math.isfinite(order.price) and order.price > 0 else None
        if price is None:
            price = self._last.get(order.symbol)
            if price is None:
                return "invalid_price", f"no price known for {order.symbol}"
        if order.side is Side.SELL:
            held = self.ledger.quantity(order.symbol, order.position_type)
            reserved = (
                sum(
                    o.quantity
                    for o in self._resting.values()
                    if o.order_id != order.order_id
                    and o.symbol == order.symbol
                    and o.side is Side.SELL
                    and o.position_type is order.position_type
                )
                if self._resting
                else 0.0
            )
            if qty > held - reserved + _TOL * max(1.0, held):
                return (
                    "insufficient_position",
                    f"sell {qty} {order.symbol} {order.position_type} but only "
                    f"{held - reserved} available",
                )
        needed = self._cash_needed(order, price)
        if needed > 0:
            available = self.cash
            if self._reserved_cash:
                available -= sum(v for k, v in self._reserved_cash.items() if k != order.order_id)
            if needed > available + _TOL * max(1.0, needed):
                return (
                    "insufficient_buying_power",
                    f"needs {needed:.8f} cash, {available:.8f} available",
                )
        return None

    def _book(
        self,
        symbol: str,
        side: Side,
        ptype: PositionType,
        qty: float,
        price: float,
        fee: float,
        at: datetime,
    ) -> None:
        outcome = self.ledger.apply(
            symbol=symbol, side=side, position_type=ptype, qty=qty, price=price, fee=fee, time=at
        )
        notional = qty * price
        long = ptype is PositionType.LONG
        if side is Side.BUY:
            self.cash += -(notional + fee) if long else notional - fee
        else:
            self.cash += notional - fee if long else -(notional + fee)
        self.realized += outcome.pnl
        self.fees += fee
        self._positions_cache = None

    def _fill(self, order: Order, price: float, at: datetime) -> OrderUpdate:
        fee = self.commission.fee(quantity=order.quantity, price=price)
        self._book(order.symbol, order.side, order.position_type, order.quantity, price, fee, at)
        seq = self._fill_seq.get(order.order_id, 0) + 1
        self._fill_seq[order.order_id] = seq
        fill = _paper_fill(order, seq, price, at, fee)
        self._fill_seq.pop(order.order_id, None)
        filled = order.with_status(OrderStatus.FILLED)
        return OrderUpdate(filled, (fill,))


def _limit_fill_price(order: Order, bar: Bar) -> float | None:
    """The price a LIMIT order fills at on ``bar``, or None when the bar does not cross it.

    A BUY fills when the bar's low reaches the limit, a SELL when its high does; a bar that
    opens beyond the limit fills at its open (the better price).
    """
    if order.side is Side.BUY and bar.low <= order.price:
        return min(order.price, bar.open)
    if order.side is Side.SELL and bar.high >= order.price:
        return max(order.price, bar.open)
    return None


def _paper_fill(order: Order, seq: int, price: float, at: datetime, fee: float) -> Fill:
    """The paper broker's whole fill of ``order``: its ``seq``-th fill, ``{order_id}-f{seq}``."""
    return order.fill(
        trade_id=f"{order.order_id}-f{seq}",
        executed_at=at,
        executed_qty=order.quantity,
        executed_price=price,
        commission=fee,
    )
