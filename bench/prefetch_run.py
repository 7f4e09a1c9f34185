"""The prefetch benchmark proper: REST kline download through BinanceFeed.history."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from argo_engine.clock import FakeClock
from argo_engine.providers.binance.data import BinanceFeed
from argo_engine.testing.mock_binance import MockBinance, MockSymbol

START = datetime(2025, 10, 1, tzinfo=UTC)


def run(days: int, n_symbols: int) -> dict[str, Any]:
    """Download ``days`` of 1m klines for ``n_symbols`` symbols from the mock over loopback."""
    names = [f"C{i:02d}USDT" for i in range(n_symbols)]
    symbols = tuple(MockSymbol(n, n[:3], "USDT", 100.0 + i) for i, n in enumerate(names))
    end = START + timedelta(days=days)
    server_clock = FakeClock(end + timedelta(minutes=1))
    with MockBinance(clock=server_clock, symbols=symbols) as mock:
        feed = BinanceFeed(
            symbols=names, interval="1m", rest_url=mock.rest_url, ws_url=mock.ws_url,
            clock=FakeClock(end),
        )  # fmt: skip
        t0 = time.perf_counter()
        total = sum(len(feed.history(name, START, end)) for name in names)
        wall = time.perf_counter() - t0
        feed.close()
    expected = days * 1440 * n_symbols
    return {
        "bars": total,
        "bars_ok": total == expected,
        "wall_s": round(wall, 3),
        "bars_per_s": round(total / wall, 1),
    }
