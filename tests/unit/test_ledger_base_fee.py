"""Fees a venue takes out of the traded asset (Binance's BUY fee in the base asset).

The ledger books the base that changed hands, so that its open quantity is what the account
holds and a sale of that quantity closes the bucket; the fee's quote value is counted once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from argo_engine.domain.enums import PositionType, Side
from argo_engine.domain.ledger import Ledger, PnlMethod

T0 = datetime(2025, 10, 1, 9, tzinfo=UTC)
LONG, SHORT = PositionType.LONG, PositionType.SHORT


def apply(
    ledger: Ledger,
    side: Side,
    qty: float,
    price: float,
    *,
    fee: float = 0.0,
    base_fee: float = 0.0,
    minutes: int = 0,
    ptype: PositionType = LONG,
) -> float:
    out = ledger.apply(
        symbol="BTCUSDT",
        side=side,
        position_type=ptype,
        qty=qty,
        price=price,
        fee=fee,
        time=T0 + timedelta(minutes=minutes),
        base_fee=base_fee,
    )
    assert out.unmatched_qty == 0.0
    return out.pnl


@pytest.mark.parametrize("method", list(PnlMethod))
def test_a_buy_fee_in_the_base_asset_is_held_less_and_selling_the_rest_closes(
    method: PnlMethod,
) -> None:
    ledger = Ledger(method)
    # BUY 1 @ 100, the venue keeps 0.001 of it as the fee (worth 0.1): 0.999 is held, 100 paid.
    apply(ledger, Side.BUY, 1.0, 100.0, fee=0.1, base_fee=0.001)
    assert ledger.quantity("BTCUSDT") == pytest.approx(0.999)
    [position] = ledger.positions()
    assert position.quantity == pytest.approx(0.999)
    assert position.average_price == pytest.approx(100.0 / 0.999)
    # Marked at the buy price, the position is worth the fee less than was paid.
    assert ledger.unrealized({"BTCUSDT": 100.0}) == pytest.approx(-0.1)
    # SELL the 0.999 held @ 110, fee 0.10989 in quote: received 109.78011 for 100 paid.
    pnl = apply(ledger, Side.SELL, 0.999, 110.0, fee=0.10989, minutes=5)
    assert pnl == pytest.approx(0.999 * 110.0 - 0.10989 - 100.0)
    assert not ledger.has_open("BTCUSDT")
    assert ledger.positions() == []
    assert ledger.unrealized({"BTCUSDT": 120.0}) == 0.0
    assert ledger.to_state() == []


def test_a_sell_fee_in_the_base_asset_takes_that_much_more_from_the_position() -> None:
    ledger = Ledger()
    apply(ledger, Side.BUY, 1.0, 100.0, fee=0.1)
    # Selling 0.999 with a 0.001 fee in base uses up the whole 1.0: 99.9 received, 100.1 paid.
    pnl = apply(ledger, Side.SELL, 0.999, 100.0, fee=0.1, base_fee=0.001, minutes=1)
    assert pnl == pytest.approx(99.9 - 100.1)
    assert not ledger.has_open("BTCUSDT")


def test_a_short_bucket_owes_the_base_fee() -> None:
    ledger = Ledger()
    # Opening: 1 sold @ 100 (100 received) and 0.001 more given as the fee: 1.001 owed.
    apply(ledger, Side.BUY, 1.0, 100.0, fee=0.1, base_fee=0.001, ptype=SHORT)
    assert ledger.quantity("BTCUSDT", SHORT) == pytest.approx(1.001)
    # Covering: 1.002 bought @ 90 (90.18 paid), 0.001 of it kept as the fee: 1.001 returned.
    pnl = apply(ledger, Side.SELL, 1.002, 90.0, fee=0.09, base_fee=0.001, minutes=1, ptype=SHORT)
    assert pnl == pytest.approx(100.0 - 90.18)
    assert not ledger.has_open("BTCUSDT")


def test_holding_time_of_a_lot_bought_with_a_base_fee_ends_at_its_sale() -> None:
    ledger = Ledger()
    apply(ledger, Side.BUY, 0.01, 60_000.0, fee=0.6, base_fee=0.00001)
    out = ledger.apply(
        symbol="BTCUSDT",
        side=Side.SELL,
        position_type=LONG,
        qty=0.00999,
        price=62_000.0,
        fee=0.61938,
        time=T0 + timedelta(minutes=2),
    )
    assert out.closing
    assert out.holding_seconds == (120.0,)
    assert not ledger.has_open("BTCUSDT")


# -- property: realized + unrealized == change of the account (quote and base) ---------------

steps = st.lists(
    st.tuples(
        st.sampled_from(["BUY", "SELL"]),
        st.sampled_from([LONG, SHORT]),
        st.floats(min_value=0.01, max_value=5.0),
        st.floats(min_value=1.0, max_value=500.0),
        st.floats(min_value=0.0, max_value=2.0),
        st.sampled_from([0.0, 0.001, 0.075]),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(steps=steps, method=st.sampled_from(list(PnlMethod)), last=st.floats(1.0, 500.0))
def test_realized_plus_unrealized_equals_the_account_change_with_base_fees(
    steps: list[tuple[str, PositionType, float, float, float, float]],
    method: PnlMethod,
    last: float,
) -> None:
    ledger = Ledger(method)
    cash = 0.0
    realized = 0.0
    # Base held (LONG) or owed (SHORT) by the account, fees in base included.
    base = {LONG: 0.0, SHORT: 0.0}
    for i, (side_name, ptype, q, price, quote_fee, rate) in enumerate(steps):
        side = Side(side_name)
        long = ptype is LONG
        if side is Side.SELL:
            # Sells never take more than the bucket holds, fee included: a LONG sale gives
            # q + fee of base, a SHORT cover returns q - fee.
            q = min(q, base[ptype] / (1 + rate if long else 1 - rate))
            if q <= 1e-9:
                continue
        base_fee = q * rate
        # The account gets that much less base, or gives that much more.
        less = base_fee if long else -base_fee
        out = ledger.apply(
            symbol="X",
            side=side,
            position_type=ptype,
            qty=q,
            price=price,
            fee=quote_fee + base_fee * price,  # the whole fee's value in quote
            time=T0 + timedelta(minutes=i),
            base_fee=base_fee,
        )
        realized += out.pnl
        notional = q * price
        if side is Side.BUY:
            cash += -(notional + quote_fee) if long else notional - quote_fee
            base[ptype] += q - less
        else:
            cash += notional - quote_fee if long else -(notional + quote_fee)
            base[ptype] -= q + less
    mtm = cash + base[LONG] * last - base[SHORT] * last
    total = realized + ledger.unrealized({"X": last})
    assert total == pytest.approx(mtm, rel=1e-6, abs=1e-6)
