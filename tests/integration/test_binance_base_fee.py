"""A round trip on Binance whose BUY fee is charged in the asset bought (the venue's default).

Binance keeps a BUY's fee out of the base asset it delivers: buying 0.01 BTC with a 0.1% fee
leaves 0.00999 BTC in the account. The engine's books (the positions behind stats.yaml, the PnL
in trades.parquet) must hold what the account holds, so that selling the position closes it.
The engine runs with the real Binance broker against the mock server on 127.0.0.1; the account
starts without BTC, so its BTC balance is exactly what the session holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from argo_engine.clock import FakeClock
from argo_engine.domain.market import Bar
from argo_engine.engine.core import TradingEngine
from argo_engine.session import SessionPlan, open_engine, start_session
from argo_engine.settings import ArgoSettings, load_settings
from argo_engine.testing.mock_binance import MockBinance
from tests.engine.helpers import rows, write_replay
from tests.engine.strategies import RoundTrip
from tests.integration.test_binance_broker import make_broker

DAY = date(2025, 10, 1)
T0 = datetime(2025, 10, 1, tzinfo=UTC)  # the mock's clock starts there
MINUTE = timedelta(minutes=1)
# One bar a minute; the mock fills at the close of the bar an order is placed on. The BUY is
# on the second bar (the first one writes the run's first stats.yaml), the SELL on the fourth.
CLOSES = (59_000.0, 60_000.0, 61_000.0, 62_000.0, 63_000.0)
BUY_BAR, SELL_BAR = 1, 3
BARS = [
    Bar("BTCUSDT", T0 + i * MINUTE, close, close, close, close, 1.0)
    for i, close in enumerate(CLOSES)
]
BUY_QTY = 0.01
RATE = 0.001  # the mock's fee rate
BNB_PRICE = 600.0


def make_mock(fee_asset: str) -> MockBinance:
    # No BTC at the start: the account's BTC is the session's.
    return MockBinance(balances={"USDT": 100_000.0, "BNB": 10.0}, fee_asset=fee_asset)


@pytest.fixture(params=["received", "BNB", "quote"])
def mock(request: pytest.FixtureRequest) -> Iterator[MockBinance]:
    # "received" is Binance's default: a BUY pays in the base asset, a SELL in the quote asset.
    with make_mock(request.param) as server:
        server.set_price("BNBUSDT", BNB_PRICE)
        yield server


def session(tmp_path: Path, **persistence: Any) -> tuple[ArgoSettings, SessionPlan, FakeClock]:
    settings = load_settings(
        None,
        session={"data_output": str(tmp_path / "out"), "symbols": ["BTCUSDT"]},
        feed={"kind": "replay", "replay_file": str(write_replay(tmp_path / "bars.pq", BARS))},
        persistence=persistence,
    )
    clock = FakeClock(T0)
    return (
        settings,
        start_session(settings, session_id="base-fee", clock=clock, first_date=DAY),
        clock,
    )


def engine_for(
    mock: MockBinance, settings: ArgoSettings, plan: SessionPlan, clock: FakeClock, sell: str
) -> tuple[TradingEngine, RoundTrip]:
    strategy = RoundTrip(
        "BTCUSDT", BUY_QTY, buy_at=BARS[BUY_BAR].time, sell_at=BARS[SELL_BAR].time, sell=sell
    )
    engine = open_engine(
        settings, plan, DAY, clock=clock, broker=make_broker(mock), strategy=strategy,
        warm_up=False,
    )  # fmt: skip
    return engine, strategy


def feed(mock: MockBinance, engine: TradingEngine, bars: list[Bar]) -> None:
    for b in bars:
        # The venue stamps each fill with its own clock: one minute per bar.
        mock.advance((b.time - mock.now()).total_seconds())
        mock.set_price("BTCUSDT", b.close)
        engine.process_bar(b)


def expected(fee_asset: str) -> dict[str, float]:
    """What the venue does with the round trip, in USDT."""
    buy_price, sell_price = CLOSES[BUY_BAR], CLOSES[SELL_BAR]
    base_fee = BUY_QTY * RATE if fee_asset == "received" else 0.0
    held = BUY_QTY - base_fee
    buy_fee = BUY_QTY * buy_price * RATE  # a BTC fee at the fill price, BNB at BNB's
    sell_fee = held * sell_price * RATE
    # USDT paid and received, less the fees paid in USDT or BNB (a BTC fee is BTC not sold).
    pnl = held * sell_price - BUY_QTY * buy_price - sell_fee
    if fee_asset != "received":
        pnl -= buy_fee
    return {"held": held, "buy_fee": buy_fee, "sell_fee": sell_fee, "pnl": pnl}


def assert_books_closed(folder: Path, fee_asset: str) -> None:
    want = expected(fee_asset)
    # A BNB fee is a whole number of 1e-8 BNB: its USDT value is a few 1e-6 off the rate.
    tol = 1e-5 if fee_asset == "BNB" else 1e-9
    trades = rows(folder / "trades.parquet", "SELECT * FROM t ORDER BY executed_at")
    assert [(t["side"], t["executed_qty"]) for t in trades] == [
        ("BUY", pytest.approx(BUY_QTY)),
        ("SELL", pytest.approx(want["held"])),
    ]
    assert [t["commission"] for t in trades] == [
        pytest.approx(want["buy_fee"], abs=tol),
        pytest.approx(want["sell_fee"], abs=tol),
    ]
    assert [(t["commission_asset"], t["base_commission"]) for t in trades] == {
        "received": [("BTC", pytest.approx(BUY_QTY * RATE)), ("USDT", 0.0)],
        "BNB": [("BNB", 0.0), ("BNB", 0.0)],
        "quote": [("USDT", 0.0), ("USDT", 0.0)],
    }[fee_asset]
    assert [t["pnl"] for t in trades] == [0.0, pytest.approx(want["pnl"], abs=tol)]

    stats: dict[str, Any] = yaml.safe_load((folder / "stats.yaml").read_text())
    for block in (stats, stats["daily"], stats["cumulative"]):
        figures = block["trade_pnl"]
        assert figures["realized_pnl"] == pytest.approx(want["pnl"], abs=tol)
        # Nothing is left open: no dust lot valued at the last close.
        assert figures["unrealized_pnl"] == 0.0
        assert figures["total_pnl"] == pytest.approx(want["pnl"], abs=tol)
        # Each fee counted once, at its value in USDT.
        assert block["total_fees"] == pytest.approx(want["buy_fee"] + want["sell_fee"], abs=tol)
        assert block["trade_result"]["number_of_trades"] == 2
        assert block["trade_result"]["number_of_winning_trades"] == 1
        assert block["trade_holding_time"] == {"min": 120, "max": 120, "avg": 120}


@pytest.mark.parametrize("sell", ["position", "bought"])
def test_selling_the_position_after_a_buy_closes_it_with_the_fee_counted_once(
    mock: MockBinance, tmp_path: Path, sell: str
) -> None:
    fee_asset = mock.exchange.fee_asset
    settings, plan, clock = session(tmp_path)
    engine, strategy = engine_for(mock, settings, plan, clock, sell)
    try:
        feed(mock, engine, BARS)
        engine.stop()
    finally:
        engine.broker.close()

    held = expected(fee_asset)["held"]
    assert mock.balance("BTC") == (0.0, 0.0)  # the account is flat again
    # The strategy saw what the account held, then nothing.
    assert strategy.seen == [0.0, 0.0, pytest.approx(held), pytest.approx(held), 0.0]
    if fee_asset != "BNB":
        usdt, _ = mock.balance("USDT")
        assert usdt - 100_000.0 == pytest.approx(expected(fee_asset)["pnl"], abs=1e-9)
    assert engine.folder is not None
    assert_books_closed(engine.folder, fee_asset)


def test_a_retry_rebuilds_the_position_of_a_journaled_fill_net_of_its_base_fee(
    tmp_path: Path,
) -> None:
    # The BUY's fill is durable in the journal, but the engine state saved before the crash
    # predates it (flushes inline, and none is due for an hour after the folder's first
    # stats.yaml): the retried task rebuilds the position from the stored fill, which must
    # carry its fee in BTC.
    with make_mock("received") as mock:
        settings, plan, clock = session(
            tmp_path,
            stats_min_interval_s=3600.0,
            flush_interval_s=3600.0,
            background_flush=False,
        )
        first, _ = engine_for(mock, settings, plan, clock, "position")
        feed(mock, first, BARS[: BUY_BAR + 1])
        assert first.folder is not None
        before: dict[str, Any] = yaml.safe_load((first.folder / "stats.yaml").read_text())
        assert before["trade_result"]["number_of_trades"] == 0  # saved before the BUY
        first.broker.close()  # the crash: the engine is abandoned, its files stay

        retry, strategy = engine_for(mock, settings, plan, clock, "position")
        try:
            feed(mock, retry, BARS[BUY_BAR + 1 :])
            retry.stop()
        finally:
            retry.broker.close()
        assert retry.folder == first.folder
        held = pytest.approx(expected("received")["held"])
        assert strategy.seen == [held, held, 0.0]
        assert mock.balance("BTC") == (0.0, 0.0)
        assert_books_closed(retry.folder, "received")
