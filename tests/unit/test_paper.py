"""Paper broker rules: fills, rejections, reservations, LONG and SHORT, state round trip."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest

from argo_engine.domain.enums import OrderStatus, OrderType, PositionType, Side
from argo_engine.domain.ledger import PnlMethod
from argo_engine.domain.market import Bar
from argo_engine.domain.orders import Order
from argo_engine.providers.commission import (
    FixedRateCommission,
    PerShareCommission,
    ZeroCommission,
    commission_from_settings,
)
from argo_engine.providers.paper import PaperBroker
from argo_engine.settings import BrokerSettings

T0 = datetime(2025, 10, 1, tzinfo=UTC)
_seq = iter(range(1, 10_000))


def order(
    side: Side,
    qty: float,
    price: float = math.nan,
    kind: OrderType = OrderType.MARKET,
    ptype: PositionType = PositionType.LONG,
    minute: int = 0,
) -> Order:
    return Order(
        order_id=f"o{next(_seq)}",
        symbol="BTCUSDT",
        side=side,
        order_type=kind,
        quantity=qty,
        price=price,
        timestamp=T0 + timedelta(minutes=minute),
        status=OrderStatus.PENDING,
        strategy_name="t",
        position_type=ptype,
    )


def bar(minute: int, o: float, h: float, lo: float, c: float) -> Bar:
    return Bar("BTCUSDT", T0 + timedelta(minutes=minute), o, h, lo, c, 1.0)


def test_commission_models() -> None:
    assert ZeroCommission().fee(quantity=3, price=100) == 0.0
    assert FixedRateCommission(0.001).fee(quantity=2, price=50_000) == pytest.approx(100.0)
    assert PerShareCommission().fee(quantity=10, price=1) == 1.0  # minimum
    assert PerShareCommission().fee(quantity=1000, price=1) == pytest.approx(5.0)
    assert isinstance(commission_from_settings(BrokerSettings(commission="zero")), ZeroCommission)


def test_market_buy_fills_at_close_and_sell_books_pnl() -> None:
    b = PaperBroker(initial_cash=1000, commission=FixedRateCommission(0.001))
    b.on_bar(bar(0, 100, 101, 99, 100))
    (u,) = b.submit(order(Side.BUY, 2, 100), bar(0, 100, 101, 99, 100))
    assert u.order.status is OrderStatus.FILLED
    (f,) = u.fills
    assert (f.executed_price, f.executed_qty, f.commission) == (100, 2, pytest.approx(0.2))
    assert b.account().cash == pytest.approx(1000 - 200.2)
    b.on_bar(bar(1, 110, 111, 109, 110))
    (u,) = b.submit(order(Side.SELL, 2, 110), bar(1, 110, 111, 109, 110))
    assert u.order.status is OrderStatus.FILLED
    acct = b.account()
    assert acct.realized_pnl == pytest.approx(220 - 0.22 - 200.2)
    assert acct.cash == pytest.approx(1000 - 200.2 + 220 - 0.22)
    assert b.positions() == []


@pytest.mark.parametrize(
    ("o", "reason"),
    [
        (order(Side.BUY, 0, 100), "invalid_quantity"),
        (order(Side.BUY, math.nan, 100), "invalid_quantity"),
        (order(Side.BUY, 1, -5, kind=OrderType.LIMIT), "invalid_price"),
        (order(Side.BUY, 100, 100), "insufficient_buying_power"),
        (order(Side.SELL, 1, 100), "insufficient_position"),
        (order(Side.SELL, 1, 100, ptype=PositionType.SHORT), "insufficient_position"),
    ],
)
def test_rejections_carry_reasons(o: Order, reason: str) -> None:
    b = PaperBroker(initial_cash=1000, commission=ZeroCommission())
    b.on_bar(bar(0, 100, 100, 100, 100))
    (u,) = b.submit(o, bar(0, 100, 100, 100, 100))
    assert u.order.status is OrderStatus.REJECTED
    assert u.order.reason == reason
    assert u.order.message
    assert b.account().cash == 1000


def test_limit_rests_then_fills_and_reserves_cash() -> None:
    b = PaperBroker(initial_cash=1000, commission=ZeroCommission())
    b0 = bar(0, 100, 100, 100, 100)
    b.on_bar(b0)
    (u,) = b.submit(order(Side.BUY, 9, 95, kind=OrderType.LIMIT), b0)
    assert u.order.status is OrderStatus.PENDING
    assert len(b.open_orders()) == 1
    # The reservation leaves 145 of buying power: a 2-unit market buy is refused.
    (u2,) = b.submit(order(Side.BUY, 2, 100), b0)
    assert u2.order.reason == "insufficient_buying_power"
    assert b.on_bar(bar(1, 99, 99, 96, 97)) == []  # low 96 > 95: no fill
    (fill_update,) = b.on_bar(bar(2, 94, 96, 93, 95))  # gaps through: fills at the open 94
    assert fill_update.order.status is OrderStatus.FILLED
    assert fill_update.fills[0].executed_price == 94
    assert b.open_orders() == []


def test_cancel_releases_reservation() -> None:
    b = PaperBroker(initial_cash=1000, commission=ZeroCommission())
    b0 = bar(0, 100, 100, 100, 100)
    b.on_bar(b0)
    (u,) = b.submit(order(Side.BUY, 9, 95, kind=OrderType.LIMIT), b0)
    (c,) = b.cancel(u.order.order_id)
    assert c.order.status is OrderStatus.CANCELLED
    assert b.cancel(u.order.order_id) == []
    (ok,) = b.submit(order(Side.BUY, 9, 100), b0)
    assert ok.order.status is OrderStatus.FILLED


def test_short_open_and_cover_cash() -> None:
    b = PaperBroker(initial_cash=1000, commission=ZeroCommission())
    b.on_bar(bar(0, 100, 100, 100, 100))
    b.submit(order(Side.BUY, 5, 100, ptype=PositionType.SHORT), bar(0, 100, 100, 100, 100))
    assert b.account().cash == pytest.approx(1500)  # proceeds credited
    b.on_bar(bar(1, 90, 90, 90, 90))
    assert b.account().equity == pytest.approx(1500 - 450)
    b.submit(order(Side.SELL, 5, 90, ptype=PositionType.SHORT), bar(1, 90, 90, 90, 90))
    assert b.account().realized_pnl == pytest.approx(50)
    assert b.account().cash == pytest.approx(1050)


@pytest.mark.parametrize("method", list(PnlMethod))
def test_state_round_trip_continues_identically(method: PnlMethod) -> None:
    def script(broker: PaperBroker, part: int) -> None:
        bars = [bar(i, 100 + i % 7, 101 + i % 7, 99 + i % 7, 100 + (i * 3) % 11) for i in range(20)]
        lo, hi = (0, 10) if part == 0 else (10, 20)
        for i in range(lo, hi):
            broker.on_bar(bars[i])
            side = Side.BUY if i % 3 != 2 else Side.SELL
            broker.submit(order(side, 1, bars[i].close, minute=i), bars[i])
            if i % 4 == 0:
                broker.submit(order(Side.BUY, 1, 95, kind=OrderType.LIMIT, minute=i), bars[i])

    whole = PaperBroker(initial_cash=5000, commission=FixedRateCommission(), pnl_method=method)
    script(whole, 0)
    first = PaperBroker(initial_cash=5000, commission=FixedRateCommission(), pnl_method=method)
    script(first, 0)
    saved = json.loads(json.dumps(first.save_state()))
    second = PaperBroker(initial_cash=0, commission=FixedRateCommission(), pnl_method=method)
    second.restore_state(saved)
    script(whole, 1)
    script(second, 1)
    assert second.account() == whole.account()
    assert second.positions() == whole.positions()

    def key(o: Order) -> tuple[object, ...]:
        return (o.side, o.price, o.quantity, o.timestamp)

    assert [key(o) for o in second.open_orders()] == [key(o) for o in whole.open_orders()]
    assert len(whole.open_orders()) > 0
