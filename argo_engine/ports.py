"""Ports: the small interfaces between the engine and the outside world.

Each port has a real implementation and a paper/replay/fake one; the engine only knows these.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from argo_engine.domain.market import Bar
from argo_engine.domain.orders import Fill, Order
from argo_engine.domain.positions import Position


class MarketDataFeed(Protocol):
    """A source of closed bars, in time order, for a fixed set of symbols."""

    def stream(self, stop: threading.Event) -> Iterator[Bar]:
        """Yield closed bars until exhausted or until ``stop`` is set.

        Implementations that wait (real-time pacing, websockets) must wake up when ``stop`` is
        set and end the iterator.
        """
        ...

    def history(self, symbol: str, start: datetime, end: datetime) -> list[Bar]:
        """Closed bars of ``symbol`` with ``start <= time < end`` (prefetch and gap fill)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class ResumableFeed(MarketDataFeed, Protocol):
    """A feed that can start its next stream after the bars a session already stored.

    Optional: the engine calls ``resume_after`` before streaming when the feed has it, and
    otherwise skips the stored bars the feed yields again.
    """

    def resume_after(self, last: Mapping[str, Bar]) -> None:
        """Make the next :meth:`stream` start after ``last`` (the last stored bar per symbol).

        A feed that cannot continue a symbol from its bar yields that symbol from its start,
        and the engine skips what is already stored.
        """
        ...


@dataclass(frozen=True, slots=True)
class Account:
    """Account figures reported by a broker.

    Attributes:
        cash: Free cash in quote currency.
        equity: Cash plus positions marked at the last price.
        realized_pnl: Realized PnL since the account was created.
        unrealized_pnl: PnL of open positions at the last price.
        total_fees: Fees paid.
        balances: Per-asset balances where the venue reports them.
    """

    cash: float
    equity: float
    realized_pnl: float = 0.0
    unrealized_pnl: float = 0.0
    total_fees: float = 0.0
    balances: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """A broker's report about one order: its latest snapshot and any new fills.

    Fills carry ``pnl == 0``; the engine books PnL with its ledger.
    """

    order: Order
    fills: tuple[Fill, ...] = ()


class Broker(Protocol):
    """Where orders go. Paper and exchange brokers implement the same methods."""

    name: str

    def submit(self, order: Order, bar: Bar | None) -> Sequence[OrderUpdate]:
        """Send a PENDING order; return what is known right away (fill, rejection, resting).

        Args:
            order: The order, status PENDING.
            bar: The last bar of the order's symbol (price source for paper fills), if any.
        """
        ...

    def cancel(self, order_id: str) -> Sequence[OrderUpdate]:
        """Cancel an open order; return its final state (empty if unknown or already final)."""
        ...

    def on_bar(self, bar: Bar) -> Sequence[OrderUpdate]:
        """Let the broker react to a new bar (paper: fill resting LIMIT orders; live: poll)."""
        ...

    def open_orders(self) -> list[Order]:
        """Orders still open at the broker."""
        ...

    def recover(self, orders: list[Order]) -> Sequence[OrderUpdate]:
        """Resolve orders the engine recorded (PENDING) but whose outcome was lost in a crash.

        Returns their current state and any fills; an order the venue never received comes
        back FAILED. Nothing is sent again.
        """
        ...

    def positions(self) -> list[Position]:
        """Open positions."""
        ...

    def account(self) -> Account:
        """Current account figures."""
        ...

    def save_state(self) -> dict[str, Any]:
        """JSON-serializable state to store with the run (paper: everything)."""
        ...

    def restore_state(self, state: dict[str, Any]) -> None:
        """Restore a state saved by :meth:`save_state`."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
