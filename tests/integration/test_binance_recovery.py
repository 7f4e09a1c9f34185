"""Restart reconciliation against the mock venue: nothing lost, nothing sent twice."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from argo_engine.clock import FakeClock
from argo_engine.domain.enums import OrderStatus, OrderType, Side
from argo_engine.domain.market import Bar
from argo_engine.providers.binance.parsing import client_order_id
from argo_engine.session import open_engine, start_session
from argo_engine.settings import load_settings
from argo_engine.testing.mock_binance import MockBinance
from tests.engine.helpers import rows, write_replay
from tests.engine.strategies import ScriptedOrders
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


@pytest.mark.parametrize(
    "session_ids",
    [
        ("btc-momentum-a", "btc-momentum-b"),
        ("20251001T090100-0a1b2c3d", "20251001T090500-9f8e7d6c"),
    ],
    ids=["named", "generated"],
)
def test_two_sessions_on_one_account_never_share_a_client_order_id(
    mock: MockBinance, tmp_path: Path, session_ids: tuple[str, str]
) -> None:
    # Two sessions whose ids share their first 12 characters (names alike, or generated four
    # minutes apart), each run_1 of its own data output, trade on one testnet account. Their
    # first orders rest at the venue side by side; Binance refuses a client order id that an
    # open order already has, so ids cut from the session id's prefix made the second fail.
    day = date(2025, 10, 1)
    start = datetime(2025, 10, 1, 9, 0, tzinfo=UTC)
    first_bar = Bar("BTCUSDT", start, 60_000.0, 60_000.0, 60_000.0, 60_000.0, 1.0)
    replay = write_replay(tmp_path / "bars.parquet", [first_bar])
    placed: list[dict[str, Any]] = []
    for session_id in session_ids:
        settings = load_settings(
            None,
            session={"data_output": str(tmp_path / session_id), "symbols": ["BTCUSDT"]},
            feed={"kind": "replay", "replay_file": str(replay)},
        )
        clock = FakeClock(start)
        plan = start_session(settings, session_id=session_id, clock=clock, first_date=day)
        assert plan.run_number == 1
        limit = {"side": Side.BUY, "quantity": 0.001, "order_type": OrderType.LIMIT,
                 "price": 50_000.0}  # fmt: skip
        engine = open_engine(
            settings,
            plan,
            day,
            clock=clock,
            broker=make_broker(mock),
            strategy=ScriptedOrders({("BTCUSDT", start): [limit]}),
            warm_up=False,
        )
        engine.process_bar(first_bar)
        engine.stop()
        engine.broker.close()
        assert engine.folder is not None
        placed += rows(engine.folder / "orders.parquet", "SELECT order_id, status, reason FROM t")
    assert [(o["status"], o["reason"]) for o in placed] == [("PENDING", "strategy")] * 2
    on_book = {o["clientOrderId"] for o in mock.orders() if o["status"] == "NEW"}
    assert on_book == {client_order_id(o["order_id"]) for o in placed}
    assert len(on_book) == 2
