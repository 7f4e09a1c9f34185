"""BinanceBroker against the mock Binance server on 127.0.0.1 (signed REST over real sockets)."""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from argo_engine.clock import FakeClock
from argo_engine.domain.enums import OrderStatus, OrderType, PositionType, Side
from argo_engine.domain.market import Bar
from argo_engine.domain.orders import Order
from argo_engine.errors import AuthenticationError, ConfigurationError, ProviderUnavailable
from argo_engine.ports import Broker
from argo_engine.providers.binance.parsing import client_order_id, map_order_status
from argo_engine.providers.binance.trading import BinanceBroker
from argo_engine.testing.mock_binance import MockBinance

KEY = "mock-api-key"
SECRET = "mock-api-secret"
T0 = datetime(2025, 10, 1, tzinfo=UTC)


@pytest.fixture
def mock() -> Iterator[MockBinance]:
    with MockBinance() as server:
        server.set_price("BTCUSDT", 60_000.0)
        server.set_price("BNBUSDT", 600.0)
        yield server


def make_broker(
    mock: MockBinance, *, key: str = KEY, secret: str = SECRET, clock: FakeClock | None = None
) -> BinanceBroker:
    return BinanceBroker(
        base_url=mock.rest_url,
        api_key=SecretStr(key),
        api_secret=SecretStr(secret),
        symbols=["BTCUSDT", "ETHUSDT"],
        # Sharing the server's clock keeps both sides in step when a test advances time.
        clock=clock or mock_clock(mock),
        poll_interval_s=5.0,
    )


def mock_clock(mock: MockBinance) -> FakeClock:
    assert isinstance(mock.clock, FakeClock)
    return mock.clock


@pytest.fixture
def broker(mock: MockBinance) -> Iterator[BinanceBroker]:
    b = make_broker(mock)
    yield b
    b.close()


_seq = iter(range(1, 10_000))


def order(
    side: Side = Side.BUY,
    qty: float = 0.001,
    *,
    order_type: OrderType = OrderType.MARKET,
    price: float = 60_000.0,
    symbol: str = "BTCUSDT",
    position_type: PositionType = PositionType.LONG,
) -> Order:
    return Order(
        order_id=f"sess-r1-{next(_seq):06d}",
        symbol=symbol,
        side=side,
        order_type=order_type,
        quantity=qty,
        price=price,
        timestamp=T0,
        status=OrderStatus.PENDING,
        strategy_name="test",
        position_type=position_type,
    )


def bar(close: float = 60_000.0, symbol: str = "BTCUSDT") -> Bar:
    return Bar(symbol, T0, close, close, close, close, 1.0)


def test_broker_satisfies_the_port(broker: BinanceBroker) -> None:
    port: Broker = broker
    assert port.name == "binance-testnet"


# -- market orders, quantities, commission ------------------------------------------------------


def test_market_buy_fractional_quantity_fills_with_base_asset_commission(
    mock: MockBinance, broker: BinanceBroker
) -> None:
    o = order(Side.BUY, 0.001)

    [update] = broker.submit(o, bar())

    assert update.order.status is OrderStatus.FILLED
    [fill] = update.fills
    assert fill.executed_qty == pytest.approx(0.001)
    assert fill.executed_price == 60_000.0
    # Binance charges a BUY in the asset bought: 0.1% of 0.001 BTC, valued in USDT.
    assert fill.commission_asset == "BTC"
    assert fill.commission == pytest.approx(0.000001 * 60_000.0)
    # ... and in BTC: the position grows by what the account got, 0.000999.
    assert fill.base_commission == pytest.approx(0.000001)
    assert fill.trade_id.startswith("binance-BTCUSDT-")
    [sent] = mock.requests("/api/v3/order", "POST")
    assert sent.params["quantity"] == "0.001"
    assert sent.params["newClientOrderId"] == o.order_id == client_order_id(o.order_id)
    assert mock.balance("BTC")[0] == pytest.approx(1.0 + 0.001 - 0.000001)
    assert mock.balance("USDT")[0] == pytest.approx(100_000.0 - 60.0)


def test_market_sell_commission_in_quote_asset(mock: MockBinance, broker: BinanceBroker) -> None:
    [update] = broker.submit(order(Side.SELL, 0.002), bar())

    [fill] = update.fills
    assert update.order.status is OrderStatus.FILLED
    assert fill.commission_asset == "USDT"
    assert fill.commission == pytest.approx(0.002 * 60_000.0 * 0.001)
    assert fill.base_commission == 0.0
    assert broker.account().total_fees == pytest.approx(0.12)


def test_commission_in_a_third_asset_is_valued_at_its_price(
    mock: MockBinance, broker: BinanceBroker
) -> None:
    mock.set_fee_asset("BNB")

    [update] = broker.submit(order(Side.BUY, 0.01), bar())

    [fill] = update.fills
    assert fill.commission_asset == "BNB"
    # 0.1% of 600 USDT paid as 0.001 BNB, worth 0.6 USDT at 600 USDT/BNB.
    assert fill.commission == pytest.approx(0.6, abs=1e-5)
    assert fill.base_commission == 0.0  # all 0.01 BTC bought is held


def test_quantity_floored_to_step_and_price_to_tick(
    mock: MockBinance, broker: BinanceBroker
) -> None:
    limit = order(Side.BUY, 0.0012345, order_type=OrderType.LIMIT, price=59_000.126)

    [update] = broker.submit(limit, bar())

    assert update.order.status is OrderStatus.PENDING
    assert update.order.quantity == 0.00123
    assert update.order.price == 59_000.13
    [sent] = mock.requests("/api/v3/order", "POST")
    assert (sent.params["quantity"], sent.params["price"]) == ("0.00123", "59000.13")
    assert sent.params["timeInForce"] == "GTC"


@pytest.mark.parametrize(
    ("qty", "order_type", "price", "reason"),
    [
        (1e-8, OrderType.MARKET, 60_000.0, "lot_size"),
        (0.00001, OrderType.MARKET, 60_000.0, "min_notional"),
        (0.001, OrderType.LIMIT, 0.001, "price_filter"),
        (0.0, OrderType.MARKET, 60_000.0, "invalid_quantity"),
        (20_000.0, OrderType.MARKET, 60_000.0, "lot_size"),
    ],
)
def test_order_breaking_a_filter_is_rejected_before_sending(
    mock: MockBinance,
    broker: BinanceBroker,
    qty: float,
    order_type: OrderType,
    price: float,
    reason: str,
) -> None:
    [update] = broker.submit(order(Side.BUY, qty, order_type=order_type, price=price), bar())

    assert update.order.status is OrderStatus.REJECTED
    assert update.order.reason == reason
    assert update.fills == ()
    assert mock.count("/api/v3/order", "POST") == 0


def test_short_orders_are_rejected_on_spot(mock: MockBinance, broker: BinanceBroker) -> None:
    [update] = broker.submit(order(position_type=PositionType.SHORT), bar())

    assert update.order.status is OrderStatus.REJECTED
    assert update.order.reason == "unsupported_position_type"
    assert mock.count("/api/v3/order") == 0


def test_insufficient_balance_becomes_a_rejected_update(
    mock: MockBinance, broker: BinanceBroker
) -> None:
    [update] = broker.submit(order(Side.BUY, 5.0), bar())  # 300k USDT, the account has 100k

    assert update.order.status is OrderStatus.REJECTED
    assert update.order.reason == "insufficient_balance"
    assert "-2010" in update.order.message
    assert [r.status for r in mock.requests("/api/v3/order", "POST")] == [400]
    assert broker.open_orders() == []


# -- limit orders, polling, cancel, status mapping ----------------------------------------------


def test_limit_rests_then_fills_when_the_price_crosses(
    mock: MockBinance, broker: BinanceBroker
) -> None:
    clock = broker.clock
    assert isinstance(clock, FakeClock)
    o = order(Side.BUY, 0.001, order_type=OrderType.LIMIT, price=59_000.0)
    [rest] = broker.submit(o, bar())
    assert rest.order.status is OrderStatus.PENDING
    assert [x.order_id for x in broker.open_orders()] == [o.order_id]
    assert broker.on_bar(bar(59_500.0)) == []  # polled: still on the book
    assert mock.balance("USDT") == (100_000.0 - 59.0, 59.0)

    mock.set_price("BTCUSDT", 58_900.0)
    assert broker.on_bar(bar(58_900.0)) == []  # within poll_interval_s: no request
    assert mock.count("/api/v3/openOrders") == 1
    clock.advance(5.0)
    [update] = broker.on_bar(bar(58_900.0))

    assert update.order.status is OrderStatus.FILLED
    [fill] = update.fills
    assert fill.executed_qty == pytest.approx(0.001)
    assert fill.executed_price == 59_000.0
    assert fill.commission == pytest.approx(0.000001 * 59_000.0)
    assert broker.open_orders() == []
    clock.advance(5.0)
    assert broker.on_bar(bar(58_900.0)) == []  # nothing open: no more polling
    assert mock.count("/api/v3/openOrders") == 2


def test_cancel_resting_limit(mock: MockBinance, broker: BinanceBroker) -> None:
    o = order(Side.SELL, 0.01, order_type=OrderType.LIMIT, price=65_000.0)
    broker.submit(o, bar())
    assert mock.balance("BTC") == (0.99, 0.01)

    [update] = broker.cancel(o.order_id)

    assert update.order.status is OrderStatus.CANCELLED
    assert update.order.reason == "cancelled"
    assert [x["status"] for x in mock.orders()] == ["CANCELED"]
    assert mock.balance("BTC") == (1.0, 0.0)
    assert broker.cancel(o.order_id) == []
    assert broker.open_orders() == []


def test_partial_fills_stay_pending_until_filled(mock: MockBinance, broker: BinanceBroker) -> None:
    mock.set_fill_parts(2)
    o = order(Side.SELL, 0.002, order_type=OrderType.LIMIT, price=61_000.0)
    broker.submit(o, bar())

    mock.set_price("BTCUSDT", 61_500.0)  # crosses: the first half executes
    [first] = broker.poll("BTCUSDT")
    mock.match()  # still crossed: the second half executes
    [second] = broker.poll("BTCUSDT")

    assert first.order.status is OrderStatus.PENDING
    assert [f.executed_qty for f in first.fills] == [pytest.approx(0.001)]
    assert second.order.status is OrderStatus.FILLED
    assert [f.executed_qty for f in second.fills] == [pytest.approx(0.001)]
    assert first.fills[0].trade_id != second.fills[0].trade_id
    assert broker.poll("BTCUSDT") == []


def test_expired_order_is_reported_cancelled(mock: MockBinance, broker: BinanceBroker) -> None:
    o = order(Side.BUY, 0.001, order_type=OrderType.LIMIT, price=50_000.0)
    broker.submit(o, bar())

    mock.expire_order(o.order_id)
    [update] = broker.poll("BTCUSDT")

    assert update.order.status is OrderStatus.CANCELLED
    assert update.order.reason == "expired"


@pytest.mark.parametrize(
    ("venue", "ours"),
    [
        ("NEW", OrderStatus.PENDING),
        ("PARTIALLY_FILLED", OrderStatus.PENDING),
        ("FILLED", OrderStatus.FILLED),
        ("CANCELED", OrderStatus.CANCELLED),
        ("EXPIRED", OrderStatus.CANCELLED),
        ("REJECTED", OrderStatus.REJECTED),
    ],
)
def test_status_mapping(venue: str, ours: OrderStatus) -> None:
    assert map_order_status(venue) is ours


def test_client_order_id_fits_binance_rules() -> None:
    assert client_order_id("abc-r1-000001") == "abc-r1-000001"
    long = client_order_id("x" * 40)
    odd = client_order_id("session/with spaces-r1-000001")
    for cid in (long, odd):
        assert len(cid) <= 36
        assert all(c.isalnum() or c in "._-" for c in cid)
    assert long != odd
    assert client_order_id("x" * 40) == long


# -- positions, account, state ------------------------------------------------------------------


def test_positions_and_account_from_balances(mock: MockBinance, broker: BinanceBroker) -> None:
    broker.submit(order(Side.BUY, 0.01), bar())
    mock.set_price("ETHUSDT", 2_500.0)

    positions = {p.symbol: p for p in broker.positions()}
    account = broker.account()

    btc = positions["BTCUSDT"]
    assert btc.position_type is PositionType.LONG
    assert btc.quantity == pytest.approx(1.01 - 0.00001)
    assert positions["ETHUSDT"].quantity == 10.0
    assert account.cash == pytest.approx(100_000.0 - 600.0)
    assert account.equity == pytest.approx(account.cash + btc.quantity * 60_000 + 10 * 2_500)
    assert account.balances["BTC"] == pytest.approx(1.00999)


def test_dust_below_min_quantity_is_flat(mock: MockBinance, broker: BinanceBroker) -> None:
    mock.set_balance("BTC", 0.000001)

    assert [p.symbol for p in broker.positions()] == ["ETHUSDT"]


def test_state_round_trip_keeps_tracking_open_orders(mock: MockBinance) -> None:
    first = make_broker(mock)
    o = order(Side.BUY, 0.001, order_type=OrderType.LIMIT, price=59_000.0)
    first.submit(o, bar())
    state = json.loads(json.dumps(first.save_state()))
    first.close()

    second = make_broker(mock)
    second.restore_state(state)
    assert [x.order_id for x in second.open_orders()] == [o.order_id]
    mock.set_price("BTCUSDT", 58_000.0)
    [update] = second.on_bar(bar(58_000.0))
    second.close()

    assert update.order.order_id == o.order_id
    assert update.order.status is OrderStatus.FILLED
    assert len(update.fills) == 1


# -- errors, auth, secrets ----------------------------------------------------------------------


def _all_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + repr(getattr(exc, "attrs", ""))


def test_bad_secret_is_an_authentication_error_without_leaking(mock: MockBinance) -> None:
    secret = "wrong-secret-9f8e7d"
    bad = make_broker(mock, secret=secret)

    with pytest.raises(AuthenticationError) as info:
        bad.submit(order(), bar())

    # The mock verified the HMAC and refused it (401, -1022); nothing was placed.
    [attempt] = mock.requests("/api/v3/order", "POST")
    assert attempt.status == 401
    assert mock.orders() == []
    assert info.value.attrs["code"] == -1022
    for text in (_all_text(info.value), repr(bad)):
        assert secret not in text
        assert KEY not in text
    assert bad.open_orders() == []
    bad.close()


def test_unknown_api_key_is_an_authentication_error(mock: MockBinance) -> None:
    key = "unknown-key-1234"
    bad = make_broker(mock, key=key)

    with pytest.raises(AuthenticationError) as info:
        bad.account()

    assert info.value.attrs["code"] == -2015
    assert key not in _all_text(info.value)
    assert SECRET not in _all_text(info.value)
    bad.close()


def test_timestamps_follow_the_server_clock(mock: MockBinance) -> None:
    # Our clock is five years off: the offset from /api/v3/time keeps requests in recvWindow.
    skewed = make_broker(mock, clock=FakeClock(datetime(2030, 1, 1, tzinfo=UTC)))

    [update] = skewed.submit(order(), bar())

    assert update.order.status is OrderStatus.FILLED
    assert mock.count("/api/v3/time") == 1
    skewed.close()


def test_clock_drift_is_corrected_by_one_resync(mock: MockBinance) -> None:
    clock = FakeClock()
    drifting = make_broker(mock, clock=clock)
    drifting.account()
    clock.advance(30)  # our clock runs ahead of Binance's by more than recvWindow allows

    drifting.check_connection()

    assert [r.status for r in mock.requests("/api/v3/account")] == [200, 400, 200]
    assert mock.count("/api/v3/time") == 2
    drifting.close()


def test_server_errors_are_transient_and_the_order_is_looked_up(
    mock: MockBinance, broker: BinanceBroker
) -> None:
    mock.fail_next("/api/v3/order", status=503, method="POST")
    o = order(Side.BUY, 0.001, order_type=OrderType.LIMIT, price=59_000.0)

    with pytest.raises(ProviderUnavailable):
        broker.submit(o, bar())

    assert mock.count("/api/v3/order", "POST") == 1  # never retried blindly
    # The next poll asks Binance by client id: it never got the order, so it is dropped.
    assert broker.poll("BTCUSDT") == []
    assert mock.count("/api/v3/order", "GET", origClientOrderId=o.order_id) == 1
    assert broker.open_orders() == []


def test_a_poll_failing_on_the_next_order_loses_no_fill_of_the_first(
    mock: MockBinance, broker: BinanceBroker
) -> None:
    mock.set_fill_parts(2)
    first = order(Side.BUY, 0.002, order_type=OrderType.LIMIT, price=59_000.0)
    second = order(Side.BUY, 0.001, order_type=OrderType.LIMIT, price=50_000.0)
    broker.submit(first, bar())
    broker.submit(second, bar())
    mock.set_price("BTCUSDT", 58_900.0)  # the first executes half; it stays on the book
    mock.expire_order(client_order_id(second.order_id))  # off the book: looked up alone
    # Every attempt of that lookup fails: the poll fails after hearing of the first's fill.
    mock.fail_next("/api/v3/order", status=503, method="GET", count=3)

    with pytest.raises(ProviderUnavailable):
        broker.poll("BTCUSDT")

    updates = {u.order.order_id: u for u in broker.poll("BTCUSDT")}
    assert [f.executed_qty for f in updates[first.order_id].fills] == [pytest.approx(0.001)]
    assert updates[first.order_id].order.status is OrderStatus.PENDING
    assert updates[second.order_id].order.status is OrderStatus.CANCELLED
    assert broker.poll("BTCUSDT") == []


def test_a_fee_that_cannot_be_valued_yet_leaves_the_fill_to_the_next_poll(
    mock: MockBinance, broker: BinanceBroker
) -> None:
    mock.set_fee_asset("BNB")
    o = order(Side.BUY, 0.001, order_type=OrderType.LIMIT, price=59_000.0)
    broker.submit(o, bar())
    mock.set_price("BTCUSDT", 58_900.0)
    # The fee is paid in BNB: valuing it needs BNB's price, which Binance does not give now.
    mock.fail_next("/api/v3/ticker/price", status=503, count=3)

    with pytest.raises(ProviderUnavailable):
        broker.poll("BTCUSDT")

    assert [x.order_id for x in broker.open_orders()] == [o.order_id]
    [update] = broker.poll("BTCUSDT")
    assert update.order.status is OrderStatus.FILLED
    [fill] = update.fills
    assert fill.executed_qty == pytest.approx(0.001)
    assert fill.commission_asset == "BNB"
    assert fill.commission == pytest.approx(0.001 * 59_000.0 * 0.001, rel=1e-3)
    assert broker.account().total_fees == pytest.approx(fill.commission)


def test_live_needs_allow_live(mock: MockBinance, make_settings: object) -> None:
    with pytest.raises(ConfigurationError, match="ALLOW_LIVE"):
        BinanceBroker(
            base_url=mock.rest_url, api_key=SecretStr(KEY), api_secret=SecretStr(SECRET), live=True
        )
    live = BinanceBroker(
        base_url=mock.rest_url,
        api_key=SecretStr(KEY),
        api_secret=SecretStr(SECRET),
        live=True,
        allow_live=True,
    )
    assert live.name == "binance-live"
    live.close()

    settings = make_settings(  # type: ignore[operator]
        broker={"kind": "binance-live", "api_key": KEY, "api_secret": SECRET}
    )
    with pytest.raises(ConfigurationError, match=r"(?i)allow_live"):
        BinanceBroker.from_settings(settings)


def test_from_settings_requires_keys(make_settings: object) -> None:
    settings = make_settings(broker={"kind": "binance-testnet"})  # type: ignore[operator]
    with pytest.raises(ConfigurationError, match="API_KEY"):
        BinanceBroker.from_settings(settings)
    testnet = make_settings(  # type: ignore[operator]
        broker={"kind": "binance-testnet", "api_key": KEY, "api_secret": SECRET}
    )
    built = BinanceBroker.from_settings(testnet)
    assert built.name == "binance-testnet"
    assert SECRET not in repr(built)
    built.close()


def test_selling_what_was_bought_sells_what_is_held_after_a_base_asset_fee(
    mock: MockBinance, broker: BinanceBroker
) -> None:
    # A BUY of 0.001 BTC pays 0.000001 BTC of fee: 0.000999 is held. Selling 0.001 sells the
    # holding floored to the 0.00001 lot step, never the account's other BTC.
    [bought] = broker.submit(order(Side.BUY, 0.001), bar())
    assert bought.fills[0].commission_asset == "BTC"
    [sold] = broker.submit(order(Side.SELL, 0.001), bar())
    assert sold.order.status is OrderStatus.FILLED
    assert sold.order.quantity == pytest.approx(0.00099)
    assert [f.executed_qty for f in sold.fills] == [pytest.approx(0.00099)]
    [_, sent] = mock.requests("/api/v3/order", "POST")
    assert sent.params["quantity"] == "0.00099"
    assert mock.balance("BTC")[0] == pytest.approx(1.0 + 0.001 - 0.000001 - 0.00099)
    # Asking for clearly more than is held is sent as asked (the venue decides).
    [big] = broker.submit(order(Side.SELL, 0.5), bar())
    assert big.order.quantity == pytest.approx(0.5)


def test_a_sell_fee_in_the_base_asset_leaves_that_much_less_to_sell(
    mock: MockBinance, broker: BinanceBroker
) -> None:
    # Fees in the base asset both ways (BNB pays for BNBUSDT trades when BNB pays fees).
    mock.set_fee_asset("base")
    broker.submit(order(Side.BUY, 0.01), bar())  # 0.00999 held
    [sold] = broker.submit(order(Side.SELL, 0.005), bar())
    [fill] = sold.fills
    assert (fill.commission_asset, fill.base_commission) == ("BTC", pytest.approx(0.000005))
    # 0.005 sold and 0.000005 paid: 0.004985 held. Selling the 0.00499 the fills' quantities
    # leave sells the holding, floored to the lot step, never the account's other BTC.
    [last] = broker.submit(order(Side.SELL, 0.00499), bar())
    assert last.order.status is OrderStatus.FILLED
    assert mock.requests("/api/v3/order", "POST")[-1].params["quantity"] == "0.00498"


def test_poll_interval_comes_from_the_broker_settings(
    mock: MockBinance, make_settings: object
) -> None:
    settings = make_settings(  # type: ignore[operator]
        broker={
            "kind": "binance-testnet",
            "base_url": mock.rest_url,
            "api_key": KEY,
            "api_secret": SECRET,
            "poll_interval_s": 30.0,
        }
    )
    built = BinanceBroker.from_settings(settings, clock=mock_clock(mock))
    try:
        [rest] = built.submit(
            order(Side.BUY, 0.001, order_type=OrderType.LIMIT, price=50_000.0), bar()
        )
        assert rest.order.status is OrderStatus.PENDING
        polls = []
        for _ in range(8):  # 8 bars, 10 s apart: a poll at most every 30 s
            mock.advance(10)
            built.on_bar(bar())
            polls.append(len(mock.requests("/api/v3/openOrders", "GET")))
        assert polls == [1, 1, 1, 2, 2, 2, 3, 3]
    finally:
        built.close()
