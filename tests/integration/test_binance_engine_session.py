"""A whole engine session on the Binance adapters, against the mock server on 127.0.0.1.

The feed streams klines over a real websocket (dropped mid-session and healed over REST), the
testnet broker sends signed orders over real HTTP; what must come out is in the files.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from argo_engine.clock import FakeClock
from argo_engine.domain.market import Bar
from argo_engine.engine.callbacks import EngineCallbacks
from argo_engine.providers.binance.data import BinanceFeed
from argo_engine.session import run_session
from argo_engine.settings import load_settings
from argo_engine.testing.mock_binance import MockBinance
from argo_engine.verify import verify_path
from tests.engine.helpers import rows
from tests.engine.strategies import ScheduledTrader

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
MINUTE = timedelta(minutes=1)


@pytest.fixture(params=["quote", "received"])
def mock(request: pytest.FixtureRequest) -> Iterator[MockBinance]:
    # "received" is Binance's default: a BUY pays its fee in the asset bought.
    with MockBinance(fee_asset=request.param) as server:
        yield server


class Session:
    """run_session in a thread; every bar the engine takes is reported on a queue."""

    def __init__(self, mock: MockBinance, out: Path) -> None:
        settings = load_settings(
            None,
            session={"data_output": str(out), "symbols": SYMBOLS, "interval": "1m"},
            feed={
                "kind": "binance",
                "binance_rest_url": mock.rest_url,
                "binance_ws_url": mock.ws_url,
            },
            broker={
                "kind": "binance-testnet",
                "base_url": mock.rest_url,
                "api_key": mock.api_key,
                "api_secret": mock.api_secret,
            },
        )
        assert isinstance(mock.clock, FakeClock)
        self.bars: queue.Queue[Bar] = queue.Queue()
        self.stop = threading.Event()
        self.error: BaseException | None = None

        def on_bar(run_id: str, bar: Bar) -> None:
            self.bars.put(bar)

        def run() -> None:
            try:
                run_session(
                    settings,
                    clock=mock.clock,
                    callbacks=EngineCallbacks(on_market_data=on_bar),
                    stop=self.stop,
                    strategy=ScheduledTrader("BTCUSDT", 0.001),
                )
            except BaseException as exc:  # handed to the test thread
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def take(self, n: int) -> list[Bar]:
        return [self.bars.get(timeout=30) for _ in range(n)]

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive()
        assert self.error is None, repr(self.error)


def test_session_on_binance_survives_a_dropped_socket_and_records_venue_fills(
    mock: MockBinance, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    start = mock.now()
    session = Session(mock, out)
    mock.wait_for_ws(1)
    mock.advance(3 * 60)  # 00:00-00:02 close; the strategy buys on BTC's 2nd bar
    taken = session.take(6)
    # The socket dies mid-stream (a partial kline gets through first); 00:03-00:05 close
    # while it is down and come back over REST; the strategy sells on BTC's 5th bar.
    mock.drop_ws_after(2)
    mock.advance(3 * 60)
    mock.wait_for_ws(2)
    taken += session.take(6)
    mock.advance(2 * 60)
    taken += session.take(4)
    session.finish()

    # Every closed kline of the window reached the files exactly once, with the venue's values.
    stored = rows(next(out.glob("*/run_*/market_data.parquet")), "SELECT * FROM t ORDER BY ALL")
    expected: list[tuple[Any, ...]] = []
    rest = BinanceFeed(symbols=SYMBOLS, interval="1m", rest_url=mock.rest_url, ws_url=mock.ws_url)
    for symbol in SYMBOLS:
        expected.extend(
            (b.time.replace(tzinfo=None), symbol, b.open, b.high, b.low, b.close, b.volume)
            for b in rest.history(symbol, start, start + 8 * MINUTE)
        )
    rest.close()
    got = [
        (r["time"], r["symbol"], r["open"], r["high"], r["low"], r["close"], r["volume"])
        for r in stored
    ]
    assert got == sorted(expected)
    assert len(got) == 16
    assert sorted((b.symbol, b.time.replace(tzinfo=None)) for b in taken) == sorted(
        (s, t) for t, s, *_ in expected
    )

    # The venue's executions are the trades on disk: quantity, price, commission and asset.
    trades = rows(next(out.glob("*/run_*/trades.parquet")), "SELECT * FROM t ORDER BY executed_at")
    venue = mock.exchange.trades
    assert [t["side"] for t in trades] == ["BUY", "SELL"]
    assert len(venue) == 2
    for ours, theirs in zip(trades, venue, strict=True):
        assert ours["symbol"] == theirs["symbol"] == "BTCUSDT"
        assert Decimal(str(ours["executed_qty"])) == Decimal(theirs["qty"])
        assert Decimal(str(ours["executed_price"])) == Decimal(theirs["price"])
        assert ours["commission_asset"] == theirs["commissionAsset"]
        # Our commission column is the fee's value in the quote asset.
        fee = Decimal(theirs["commission"])
        if theirs["commissionAsset"] == "BTC":
            fee *= Decimal(theirs["price"])
        assert ours["commission"] == pytest.approx(float(fee))
    # The SELL sold what the BUY left in the account: all of it, or (fee paid in BTC) the
    # holding floored to the lot step, never the account's other BTC.
    bought, sold = (Decimal(t["qty"]) for t in venue)
    if venue[0]["commissionAsset"] == "BTC":
        assert sold == Decimal("0.00099")
    else:
        assert sold == bought == Decimal("0.001")
    orders = rows(next(out.glob("*/run_*/orders.parquet")), "SELECT * FROM t ORDER BY timestamp")
    assert [(o["side"], o["status"]) for o in orders] == [("BUY", "FILLED"), ("SELL", "FILLED")]
    assert verify_path(out) == {}
