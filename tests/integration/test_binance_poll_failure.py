"""The Binance broker's order poll answered with 503s on one bar: the session goes on.

The real broker sends signed REST requests to the mock server on 127.0.0.1; bars come from a
list (the feed is not what is tested). While a LIMIT BUY rests, the open-orders poll of one
bar fails on every attempt of the client's retry policy; the venue fills the order a few bars
later, and the next polls must report it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from argo_engine.clock import FakeClock
from argo_engine.domain.enums import LogLevel
from argo_engine.domain.market import Bar
from argo_engine.engine.callbacks import EngineCallbacks
from argo_engine.engine.core import load_state
from argo_engine.errors import ProviderUnavailable
from argo_engine.providers.binance.client import RetryPolicy
from argo_engine.providers.binance.trading import BinanceBroker
from argo_engine.session import open_engine, start_session
from argo_engine.settings import ArgoSettings
from argo_engine.testing.feeds import ListFeed
from argo_engine.testing.mock_binance import MockBinance
from tests.engine.helpers import rows
from tests.recovery.strategies import SeenBarsConfig, SeenBarsStrategy

SYMBOL = "BTCUSDT"
ATTEMPTS = 3
FAIL_BAR = 4  # the strategy rests its BUY on bar 2 (index 1)
CROSS_BAR = 6  # the venue's price crosses the limit here


@pytest.fixture
def mock() -> Iterator[MockBinance]:
    with MockBinance() as server:
        server.set_price(SYMBOL, 60_000.0)
        yield server


def test_a_failed_poll_is_logged_the_bar_reaches_the_strategy_and_the_fill_comes_later(
    mock: MockBinance, make_settings: object, tmp_path: Path
) -> None:
    clock = mock.clock
    assert isinstance(clock, FakeClock)
    t0 = clock.now()
    bars = [
        Bar(SYMBOL, t0 + timedelta(minutes=i), 60_000.0, 60_010.0, 59_990.0, 60_000.0, 1.0)
        for i in range(10)
    ]
    assert callable(make_settings)
    settings: ArgoSettings = make_settings(
        session={"symbols": [SYMBOL], "session_id": "poll503"}, feed={"prefetch_days": 0}
    )
    broker = BinanceBroker(
        base_url=mock.rest_url,
        api_key=SecretStr(mock.api_key),
        api_secret=SecretStr(mock.api_secret),
        symbols=[SYMBOL],
        clock=clock,
        poll_interval_s=0.0,  # poll on every bar
        retry=RetryPolicy(max_attempts=ATTEMPTS),
    )
    strategy = SeenBarsStrategy()
    strategy.initialize(SeenBarsConfig(entry_bar=2, limit_price=59_000.0, quantity=0.001))

    def on_market_data(run_id: str, bar: Bar) -> None:
        # Before the broker's reaction to the bar: arm the venue's failures for it.
        if bar.time == bars[FAIL_BAR].time:
            mock.fail_next("/api/v3/openOrders", status=503, count=ATTEMPTS)
        elif bar.time == bars[CROSS_BAR].time:
            mock.set_price(SYMBOL, 58_900.0)

    errors: list[BaseException] = []
    plan = start_session(settings, session_id="poll503", clock=clock, first_date=t0.date())
    engine = open_engine(
        settings,
        plan,
        t0.date(),
        clock=clock,
        callbacks=EngineCallbacks(on_market_data=on_market_data, on_error=errors.append),
        feed=ListFeed(bars),
        broker=broker,
        strategy=strategy,
    )
    try:
        result = engine.run()
        folder = engine.folder
        assert folder is not None
        state = load_state(folder)
        assert state is not None
    finally:
        engine.stop()
        broker.close()

    assert result.bars == len(bars)
    assert state["cache"]["seen"] == [b.time.isoformat() for b in bars]
    assert [type(e) for e in errors] == [ProviderUnavailable]
    # Every attempt of the failed bar's poll reached the venue; later bars polled again.
    failed = [r for r in mock.requests("/api/v3/openOrders") if r.status == 503]
    assert len(failed) == ATTEMPTS
    logs = rows(folder / "logs.parquet", "SELECT * FROM t")
    [warning] = [r for r in logs if "order poll" in r["message"]]
    assert warning["level"] == str(LogLevel.WARNING)
    assert warning["timestamp"] == bars[FAIL_BAR].time.replace(tzinfo=None)
    # The venue's fill is on disk once, and the order ended FILLED.
    trades = rows(folder / "trades.parquet", "SELECT * FROM t")
    assert [(t["side"], t["executed_price"]) for t in trades] == [("BUY", 59_000.0)]
    orders = rows(folder / "orders.parquet", "SELECT * FROM t")
    assert [(o["side"], o["status"]) for o in orders] == [("BUY", "FILLED")]
    market_data = rows(folder / "market_data.parquet", "SELECT * FROM t")
    assert len(market_data) == len({r["time"] for r in market_data}) == len(bars)
