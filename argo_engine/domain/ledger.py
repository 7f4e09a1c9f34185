"""Lot accounting: realized PnL per fill (FIFO or average cost), holding times, unrealized PnL.

Conventions (argo's backtest model): BUY opens or increases a bucket and SELL closes or
decreases it, for LONG and SHORT alike; ``position_type`` picks the bucket. PnL is booked on
SELL fills only, fees included, entry fees pro-rated over the matched quantity.

Cash convention used for mark-to-market equity (and by the paper broker):
LONG BUY pays ``p*q + fee``, LONG SELL receives ``p*q - fee``; SHORT BUY (open) receives
``p*q - fee``, SHORT SELL (cover) pays ``p*q + fee``. With it, realized + unrealized PnL is
exactly the change of ``cash + long_qty*close - short_qty*close``.

A venue may take a fee out of the traded asset itself (Binance charges a BUY in the base asset
it delivers): that part of the fee, ``base_fee`` in base units, changes the quantity booked
(the account holds ``qty - base_fee`` after such a BUY), while its quote value stays in ``fee``,
so the fee is counted once: such a BUY's basis is exactly the quote paid, ``p*qty``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from argo_engine.domain.enums import PositionType, Side
from argo_engine.domain.positions import Position

# Quantities below this are float dust left by partial closes, not open positions.
QTY_EPSILON = 1e-12


class PnlMethod(StrEnum):
    """How realized PnL of a closing fill is computed."""

    FIFO = "fifo"
    AVERAGE_COST = "average_cost"


@dataclass(slots=True)
class _Lot:
    qty: float
    price: float
    fee_per_unit: float
    time: datetime


@dataclass(slots=True)
class _Bucket:
    lots: deque[_Lot] = field(default_factory=deque)
    qty: float = 0.0
    # Signed-cost basis of the open quantity: LONG = paid incl. fees, SHORT = received net of fees.
    basis: float = 0.0
    # The Position that Ledger.positions last built for this bucket; a fill clears it. A fill
    # changes one bucket, and strategies ask for positions on most bars.
    snapshot: Position | None = None


@dataclass(frozen=True, slots=True)
class FillOutcome:
    """What applying one fill to the ledger produced.

    Attributes:
        pnl: Realized PnL booked by the fill (0 for BUY fills).
        closing: Whether the fill closed (part of) an open position.
        holding_seconds: Seconds from entry to exit of each lot this fill closed.
        unmatched_qty: SELL quantity that found no open position (venue drift, never PnL).
    """

    pnl: float
    closing: bool
    holding_seconds: tuple[float, ...]
    unmatched_qty: float = 0.0


class Ledger:
    """Open lots per (symbol, position type) and the PnL they produce.

    Args:
        method: FIFO or average cost for realized PnL. Holding times always match lots FIFO.
    """

    def __init__(self, method: PnlMethod = PnlMethod.FIFO) -> None:
        self.method = method
        self._buckets: dict[tuple[str, PositionType], _Bucket] = {}

    def apply(
        self,
        *,
        symbol: str,
        side: Side,
        position_type: PositionType,
        qty: float,
        price: float,
        fee: float,
        time: datetime,
        base_fee: float = 0.0,
    ) -> FillOutcome:
        """Apply one fill and return the realized PnL it books.

        Args:
            symbol: Instrument symbol.
            side: BUY (open/increase) or SELL (close/decrease).
            position_type: LONG or SHORT bucket.
            qty: Executed quantity (> 0).
            price: Executed price.
            fee: Commission in quote currency (the whole fee's value, ``base_fee`` included).
            time: Execution time.
            base_fee: Part of the fee the venue took in the traded asset, in its units
                (``0 <= base_fee < qty``). The account gets that much less base (BUY) or
                gives that much more (SELL): a LONG bucket grows by ``qty - base_fee`` on a
                BUY and shrinks by ``qty + base_fee`` on a SELL (a SHORT bucket, which owes
                base, the other way round).

        Returns:
            The fill's outcome.
        """
        key = (symbol, position_type)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket()
        bucket.snapshot = None
        long = position_type is PositionType.LONG
        if base_fee:
            # Book the base that changed hands; with the fee's quote value in ``fee``, the
            # basis of a BUY (and the proceeds of a SELL) is then exactly ``price * qty``.
            held_less = base_fee if long else -base_fee
            qty = qty - held_less if side is Side.BUY else qty + held_less
        if side is Side.BUY:
            bucket.lots.append(_Lot(qty, price, fee / qty if qty > 0 else 0.0, time))
            bucket.qty += qty
            bucket.basis += price * qty + fee if long else price * qty - fee
            return FillOutcome(0.0, False, ())
        matched = min(qty, bucket.qty)
        unmatched = qty - matched if qty - matched > QTY_EPSILON else 0.0
        if matched <= QTY_EPSILON:
            return FillOutcome(0.0, False, (), unmatched)
        exit_fee = fee * (matched / qty)
        # FIFO lot walk: gives holding times always, and the FIFO basis of the matched qty.
        remaining = matched
        fifo_basis = 0.0
        holds: list[float] = []
        while remaining > QTY_EPSILON and bucket.lots:
            lot = bucket.lots[0]
            take = min(lot.qty, remaining)
            entry = lot.price * take + (
                lot.fee_per_unit * take if long else -lot.fee_per_unit * take
            )
            fifo_basis += entry
            holds.append((time - lot.time).total_seconds())
            lot.qty -= take
            remaining -= take
            if lot.qty <= QTY_EPSILON:
                bucket.lots.popleft()
        if self.method is PnlMethod.FIFO:
            basis = fifo_basis
        else:
            basis = bucket.basis * (matched / bucket.qty)
        bucket.qty -= matched
        if bucket.qty <= QTY_EPSILON:
            bucket.qty = 0.0
            bucket.basis = 0.0
            bucket.lots.clear()
        elif self.method is PnlMethod.FIFO:
            bucket.basis = sum(
                lot.qty * (lot.price + (lot.fee_per_unit if long else -lot.fee_per_unit))
                for lot in bucket.lots
            )
        else:
            bucket.basis -= basis
        pnl = price * matched - exit_fee - basis if long else basis - (price * matched + exit_fee)
        return FillOutcome(pnl, True, tuple(holds), unmatched)

    def has_open(self, symbol: str) -> bool:
        """Whether any bucket of ``symbol`` holds an open quantity."""
        for ptype in (PositionType.LONG, PositionType.SHORT):
            bucket = self._buckets.get((symbol, ptype))
            if bucket is not None and bucket.qty > 0.0:
                return True
        return False

    def quantity(self, symbol: str, position_type: PositionType = PositionType.LONG) -> float:
        """Open quantity of a bucket."""
        bucket = self._buckets.get((symbol, position_type))
        return bucket.qty if bucket else 0.0

    def open_symbols(self) -> set[str]:
        """Symbols with an open quantity in any bucket."""
        return {symbol for (symbol, _), bucket in self._buckets.items() if bucket.qty > 0.0}

    def open_amounts(self, symbol: str) -> tuple[float, float, float, float]:
        """Open quantity and remaining basis of the LONG, then the SHORT bucket of ``symbol``."""
        long = self._buckets.get((symbol, PositionType.LONG))
        short = self._buckets.get((symbol, PositionType.SHORT))
        return (
            long.qty if long is not None and long.qty > 0.0 else 0.0,
            long.basis if long is not None and long.qty > 0.0 else 0.0,
            short.qty if short is not None and short.qty > 0.0 else 0.0,
            short.basis if short is not None and short.qty > 0.0 else 0.0,
        )

    def unrealized_of(self, symbol: str, close: float) -> float:
        """Unrealized PnL of the open buckets of ``symbol`` marked at ``close``."""
        total = 0.0
        bucket = self._buckets.get((symbol, PositionType.LONG))
        if bucket is not None and bucket.qty > 0.0:
            total += bucket.qty * close - bucket.basis
        bucket = self._buckets.get((symbol, PositionType.SHORT))
        if bucket is not None and bucket.qty > 0.0:
            total += bucket.basis - bucket.qty * close
        return total

    def unrealized(self, last_close: dict[str, float]) -> float:
        """Unrealized PnL of every open bucket, marked at the last close of its symbol.

        Args:
            last_close: Last close per symbol; buckets of symbols not in it count 0.

        Returns:
            Market value minus remaining basis, summed over buckets.
        """
        total = 0.0
        for (symbol, ptype), bucket in self._buckets.items():
            if bucket.qty <= 0.0:
                continue
            close = last_close.get(symbol)
            if close is None:
                continue
            if ptype is PositionType.LONG:
                total += bucket.qty * close - bucket.basis
            else:
                total += bucket.basis - bucket.qty * close
        return total

    def positions(self) -> list[Position]:
        """Snapshot of every non-flat bucket."""
        out: list[Position] = []
        for (symbol, ptype), bucket in self._buckets.items():
            if bucket.qty > 0.0:
                held = bucket.snapshot
                if held is None:
                    held = bucket.snapshot = Position(
                        symbol=symbol,
                        position_type=ptype,
                        quantity=bucket.qty,
                        average_price=bucket.basis / bucket.qty,
                        opened_at=bucket.lots[0].time if bucket.lots else None,
                    )
                out.append(held)
        return out

    def peek_positions(self) -> list[Position]:
        """Every non-flat bucket, built afresh and caching nothing.

        Safe to call from another thread (a live view): unlike :meth:`positions` it never
        writes a bucket's cached snapshot, which a concurrent fill could otherwise leave stale
        for the strategy. May raise RuntimeError when a fill adds a bucket during the copy.
        """
        out: list[Position] = []
        for (symbol, ptype), bucket in list(self._buckets.items()):
            qty, basis, lots = bucket.qty, bucket.basis, bucket.lots
            if qty > 0.0:
                out.append(
                    Position(
                        symbol=symbol,
                        position_type=ptype,
                        quantity=qty,
                        average_price=basis / qty,
                        opened_at=lots[0].time if lots else None,
                    )
                )
        return out

    def to_state(self) -> list[dict[str, object]]:
        """Serializable state of all open lots (for run state files)."""
        return [
            {
                "symbol": symbol,
                "position_type": str(ptype),
                "qty": bucket.qty,
                "basis": bucket.basis,
                "lots": [
                    [lot.qty, lot.price, lot.fee_per_unit, lot.time.isoformat()]
                    for lot in bucket.lots
                ],
            }
            for (symbol, ptype), bucket in self._buckets.items()
            if bucket.qty > 0.0
        ]

    @classmethod
    def from_state(cls, method: PnlMethod, state: list[dict[str, object]]) -> Ledger:
        """Rebuild a ledger saved with :meth:`to_state`."""
        ledger = cls(method)
        for item in state:
            bucket = _Bucket(qty=float(item["qty"]), basis=float(item["basis"]))  # type: ignore[arg-type]
            for qty, price, fpu, ts in item["lots"]:  # type: ignore[attr-defined]
                bucket.lots.append(
                    _Lot(float(qty), float(price), float(fpu), datetime.fromisoformat(ts))
                )
            ledger._buckets[(str(item["symbol"]), PositionType(str(item["position_type"])))] = (
                bucket
            )
        return ledger
