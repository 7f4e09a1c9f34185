"""Restart reconciliation against the mock venue: nothing lost, nothing sent twice."""

from __future__ import annotations

from typing import Any

import pytest

from argo_engine.domain.enums import OrderStatus, OrderType, Side
from argo_engine.testing.mock_binance import MockBinance
from tests.integration.test_binance_broker import bar, make_broker, order


@pytest.fixture
def mock() -> Any:
    with MockBinance() as server:
        server.set_price("BTCUSDT", 60_000.0)
        yield server


def test_recover_reports_fills_the_crashed_engine_never_recorded(mock: MockBinance) -> None:
    before = make_broker(mock)
    filled = order(Side.BUY, 0.002)
    [update] = before.submit(filled, bar())  # the venue filled it; the engine then "crashed"
    assert update.order.status is OrderStatus.FILLED
    resting = order(Side.BUY, 0.001, order_type=OrderType.LIMIT, price=50_000.0)
    before.submit(resting, bar())
    never_sent = order(Side.BUY, 0.001)
    posts = mock.count("/api/v3/order", "POST")
    assert posts == 2
    after = make_broker(mock)  # a new process: no state about these orders
    updates = {u.order.order_id: u for u in after.recover([filled, resting, never_sent])}
    assert updates[filled.order_id].order.status is OrderStatus.FILLED
    assert [f.trade_id for f in updates[filled.order_id].fills] == [
        f.trade_id for f in update.fills
    ]
    assert updates[resting.order_id].order.status is OrderStatus.PENDING
    assert [o.order_id for o in after.open_orders()] == [resting.order_id]
    assert updates[never_sent.order_id].order.status is OrderStatus.FAILED
    assert updates[never_sent.order_id].order.reason == "lost_on_restart"
    assert mock.count("/api/v3/order", "POST") == posts  # nothing was sent again
