"""Prefetch downloads only what the data output does not hold yet (requests counted)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from argo_engine.clock import FakeClock
from argo_engine.persistence.writers import RunWriters
from argo_engine.prefetch import missing_ranges, prefetch
from argo_engine.providers.binance.data import BinanceFeed
from argo_engine.testing.mock_binance import MockBinance

T0 = datetime(2025, 10, 3, tzinfo=UTC)
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def test_missing_ranges() -> None:
    step = timedelta(minutes=1)
    t = [T0 + i * step for i in range(10)]
    assert missing_ranges({t[2], t[3], t[7]}, t[0], t[9], "1m") == [
        (t[0], t[2]),
        (t[4], t[7]),
        (t[8], t[9]),
    ]
    assert missing_ranges(set(t), t[0], t[9], "1m") == []


def test_missing_ranges_step_calendar_months() -> None:
    months = [datetime(2024, m, 1, tzinfo=UTC) for m in range(10, 13)] + [
        datetime(2025, m, 1, tzinfo=UTC) for m in range(1, 4)
    ]
    # Nov 2024 and Feb 2025 stored: the gaps are Oct, Dec-Jan (across the year end), Mar.
    assert missing_ranges({months[1], months[4]}, months[0], months[5], "1M") == [
        (months[0], months[1]),
        (months[2], months[4]),
    ]


def _cached(out: Path) -> int:
    con = duckdb.connect()
    (n,) = con.execute(f"SELECT count(*) FROM read_parquet('{out}/.prefetch/*.parquet')").fetchone()  # type: ignore[misc]
    return int(n)


def test_second_prefetch_downloads_only_the_missing_bars(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # One day of BTC bars is already stored by an earlier run (2025-10-01).
    with MockBinance(clock=FakeClock(T0 + timedelta(days=1, minutes=5))) as mock:
        feed = BinanceFeed(symbols=SYMBOLS, interval="1m", rest_url=mock.rest_url,
                           ws_url=mock.ws_url, clock=FakeClock(T0))  # fmt: skip
        stored = feed.history("BTCUSDT", T0 - timedelta(days=2), T0 - timedelta(days=1))
        writers = RunWriters(out / "2025-10-01" / "run_1", clock=FakeClock(T0))
        for bar in stored:
            writers.append_bar(bar)
        writers.finalize()
        writers.close()
        mock.clear_requests()
        progress: list[tuple[str, int, int]] = []
        got = prefetch(out, feed, SYMBOLS, "1m", T0, 2, on_progress=lambda *a: progress.append(a))
        # BTC: only the second day (1440 bars, 2 pages); ETH: both days (2880 bars, 3 pages).
        assert got == {"BTCUSDT": 1440, "ETHUSDT": 2880}
        assert mock.count("/api/v3/klines", "GET") == 5
        assert _cached(out) == 1440 + 2880
        assert progress[-1] == ("ETHUSDT", 2880, 2880)
        # Restart one day later: only the new day is downloaded, nothing twice.
        mock.clear_requests()
        got = prefetch(out, feed, SYMBOLS, "1m", T0 + timedelta(days=1), 2)
        assert got == {"BTCUSDT": 1440, "ETHUSDT": 1440}
        assert mock.count("/api/v3/klines", "GET") == 4
        con = duckdb.connect()
        (dups,) = con.execute(
            f"SELECT count(*) - count(DISTINCT (symbol, time)) FROM read_parquet("
            f"['{out}/.prefetch/BTCUSDT-1m.parquet', '{out}/.prefetch/ETHUSDT-1m.parquet'])"
        ).fetchone()  # type: ignore[misc]
        assert dups == 0
        feed.close()
