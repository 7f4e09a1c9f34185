"""Synthetic and replay feeds: determinism, ordering, pacing with a fake clock, bad files."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from argo_engine.clock import FakeClock
from argo_engine.errors import ConfigurationError
from argo_engine.providers.replay import ReplayFeed
from argo_engine.providers.synthetic import SyntheticFeed
from tests.engine.helpers import wave_bars, write_replay

T0 = datetime(2025, 10, 1, 9, tzinfo=UTC)


def test_synthetic_is_deterministic_ordered_and_valid() -> None:
    a = list(SyntheticFeed(symbols=["BTCUSDT", "ETHUSDT"], interval="1m", start=T0, bars=300)
             .stream(threading.Event()))  # fmt: skip
    b = list(SyntheticFeed(symbols=["BTCUSDT", "ETHUSDT"], interval="1m", start=T0, bars=300)
             .stream(threading.Event()))  # fmt: skip
    c = list(SyntheticFeed(symbols=["BTCUSDT", "ETHUSDT"], interval="1m", start=T0, bars=300,
                           seed=7).stream(threading.Event()))  # fmt: skip
    assert a == b
    assert a != c
    assert len(a) == 600
    times = [x.time for x in a]
    assert times == sorted(times)
    assert a[0].time == T0
    assert a[-1].time == T0 + timedelta(minutes=299)
    for x in a:
        assert 0 < x.low <= min(x.open, x.close) <= max(x.open, x.close) <= x.high
        assert x.volume >= 0
    btc = [x for x in a if x.symbol == "BTCUSDT"]
    assert btc[1].open == btc[0].close  # a continuous walk


def test_synthetic_end_option_and_history() -> None:
    feed = SyntheticFeed(symbols=["BTCUSDT"], interval="5m", start=T0, end=T0 + timedelta(hours=1))
    bars = list(feed.stream(threading.Event()))
    assert len(bars) == 12
    hist = feed.history("BTCUSDT", T0 + timedelta(minutes=10), T0 + timedelta(minutes=30))
    assert hist == bars[2:6]
    with pytest.raises(ConfigurationError):
        SyntheticFeed(symbols=["BTCUSDT"], interval="1m", start=T0)
    with pytest.raises(ConfigurationError, match="interval"):
        SyntheticFeed(symbols=["BTCUSDT"], interval="7x", start=T0, bars=3)


def test_realtime_pace_waits_one_interval_per_bar_and_stops() -> None:
    clock = FakeClock(T0)
    feed = SyntheticFeed(symbols=["A", "B"], interval="1m", start=T0, bars=5, pace="realtime",
                         clock=clock)  # fmt: skip
    assert len(list(feed.stream(threading.Event()))) == 10
    assert clock.monotonic() == pytest.approx(4 * 60)
    stop = threading.Event()
    got = []
    for bar in SyntheticFeed(symbols=["A"], interval="1m", start=T0, bars=100, pace="realtime",
                             clock=FakeClock(T0)).stream(stop):  # fmt: skip
        got.append(bar)
        if len(got) == 3:
            stop.set()
    assert len(got) == 3


def test_replay_round_trip_filters_and_errors(tmp_path: Path) -> None:
    bars = wave_bars(["BTCUSDT", "ETHUSDT"], T0, 50)
    path = write_replay(tmp_path / "b.parquet", list(reversed(bars)))  # unsorted on disk
    feed = ReplayFeed(path=path)
    got = list(feed.stream(threading.Event()))
    assert got == sorted(bars, key=lambda b: (b.time, b.symbol))
    only = ReplayFeed(path=path, symbols=["ETHUSDT"], start=T0 + timedelta(minutes=10),
                      end=T0 + timedelta(minutes=20))  # fmt: skip
    sub = list(only.stream(threading.Event()))
    assert len(sub) == 10
    assert {b.symbol for b in sub} == {"ETHUSDT"}
    with pytest.raises(ConfigurationError, match="does not exist"):
        ReplayFeed(path=tmp_path / "missing.parquet")
    pq.write_table(pa.table({"time": [1], "symbol": ["X"]}), tmp_path / "bad.parquet")
    with pytest.raises(ConfigurationError, match="open, high, low, close, volume"):
        ReplayFeed(path=tmp_path / "bad.parquet")
    (tmp_path / "garbage.parquet").write_bytes(b"not parquet")
    with pytest.raises(ConfigurationError, match="not readable"):
        ReplayFeed(path=tmp_path / "garbage.parquet")


def test_replay_realtime_pacing(tmp_path: Path) -> None:
    bars = wave_bars(["BTCUSDT"], T0, 6)
    clock = FakeClock(T0)
    feed = ReplayFeed(path=write_replay(tmp_path / "b.parquet", bars), pace="realtime",
                      clock=clock)  # fmt: skip
    assert len(list(feed.stream(threading.Event()))) == 6
    assert clock.monotonic() == pytest.approx(5 * 60)
