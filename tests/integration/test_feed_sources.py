"""Synthetic and replay feeds: determinism, ordering, pacing with a fake clock, bad files."""

from __future__ import annotations

import random
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


@pytest.mark.parametrize("cut", [1, 2, 2 * 1439, 2 * 1440, 2 * 1440 + 1, 2 * 2881 + 1, 2 * 3000])
def test_synthetic_resume_continues_the_uninterrupted_walk(cut: int) -> None:
    """After resume_after(last stored bars), the stream is the tail of an uninterrupted one.

    Cuts fall inside the first day's segment, on and around a segment boundary (1,440 bars of
    1m), with the two symbols one bar apart, and at the very end.
    """

    def feed() -> SyntheticFeed:
        return SyntheticFeed(symbols=["BTCUSDT", "ETHUSDT"], interval="1m", start=T0, bars=3000)

    full = list(feed().stream(threading.Event()))
    last = {bar.symbol: bar for bar in full[:cut]}
    resumed = feed()
    resumed.resume_after(last)
    assert list(resumed.stream(threading.Event())) == full[cut:]
    # The walk stays continuous across the day's segment boundary.
    btc = [x for x in full if x.symbol == "BTCUSDT"]
    assert btc[1440].open == btc[1439].close


def test_synthetic_resume_ignores_bars_it_cannot_continue() -> None:
    """A symbol without a stored bar, or a bar off the feed's grid, starts from the beginning."""
    full = list(SyntheticFeed(symbols=["A", "B"], interval="1m", start=T0, bars=50)
                .stream(threading.Event()))  # fmt: skip
    off_grid = full[20]._replace(time=full[20].time + timedelta(seconds=30))
    feed = SyntheticFeed(symbols=["A", "B"], interval="1m", start=T0, bars=50)
    feed.resume_after({"A": off_grid})
    assert list(feed.stream(threading.Event())) == full
    feed.resume_after({"B": full[41]})  # B's bar 20: A from the start, B from bar 21
    got = list(feed.stream(threading.Event()))
    assert [b for b in got if b.symbol == "A"] == [b for b in full if b.symbol == "A"]
    assert [b for b in got if b.symbol == "B"] == [b for b in full if b.symbol == "B"][21:]


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


def test_replay_keeps_time_symbol_order_whatever_the_file_order(tmp_path: Path) -> None:
    # The feed streams a file in file order only when it is already strictly in (time, symbol)
    # order; each layout below is almost in order and must still come out sorted.
    bars = wave_bars(["AAAUSDT", "BBBUSDT", "CCCUSDT"], T0, 40)
    ordered = sorted(bars, key=lambda b: (b.time, b.symbol))
    layouts = {
        "in order": ordered,
        # times in order, symbols descending within each time
        "symbols reversed": sorted(bars, key=lambda b: (b.time, [-ord(ch) for ch in b.symbol])),
        # one late row at the end of the file
        "one late row": ordered[1:] + ordered[:1],
        # two rows swapped across a time boundary in the middle of the file
        "swapped": [*ordered[:50], ordered[51], ordered[50], *ordered[52:]],
    }
    for name, layout in layouts.items():
        path = write_replay(tmp_path / f"{name}.parquet", layout)
        got = list(ReplayFeed(path=path).stream(threading.Event()))
        assert got == ordered, name
        # a filtered read of the same file keeps the order too
        sub = list(ReplayFeed(path=path, symbols=["CCCUSDT", "AAAUSDT"]).stream(threading.Event()))
        assert sub == [b for b in ordered if b.symbol != "BBBUSDT"], name


def test_replay_sorts_files_with_duplicate_keys_or_null_times(tmp_path: Path) -> None:
    bars = wave_bars(["AAAUSDT", "BBBUSDT"], T0, 10)
    ordered = sorted(bars, key=lambda b: (b.time, b.symbol))
    # A duplicate (time, symbol) is passed through (the engine rejects it), after its twin.
    with_dup = ordered[:5] + ordered[4:]
    got = list(ReplayFeed(path=write_replay(tmp_path / "dup.parquet", with_dup)).stream(
        threading.Event()))  # fmt: skip
    assert [(b.time, b.symbol) for b in got] == [(b.time, b.symbol) for b in with_dup]
    # A row without a time is streamed last (as the sort puts it), never first.
    table = pq.read_table(write_replay(tmp_path / "plain.parquet", ordered))
    times = table.column("time").to_pylist()
    times[0] = None
    nulls = tmp_path / "null.parquet"
    pq.write_table(table.set_column(0, "time", pa.array(times, pa.timestamp("us"))), nulls)
    got = list(ReplayFeed(path=nulls).stream(threading.Event()))
    assert got[:-1] == ordered[1:]
    assert got[-1].time is None
    assert got[-1].symbol == ordered[0].symbol


@pytest.mark.parametrize("layout", ["in order", "shuffled"])
@pytest.mark.parametrize("bound", [None, 30])
def test_replay_resume_continues_after_the_stored_bars(
    tmp_path: Path, layout: str, bound: int | None
) -> None:
    """After resume_after(last stored bars), the stream is the tail of a full one.

    With symbols one bar apart, with a ``bars`` bound (counted from the file's start), for a
    file in (time, symbol) order (streamed in file order) and one that is not (sorted); a row
    without a time still comes last.
    """
    bars = wave_bars(["AAAUSDT", "BBBUSDT"], T0, 40)
    rows = bars if layout == "in order" else random.Random(3).sample(bars, len(bars))
    path = write_replay(tmp_path / "bars.parquet", rows)
    if layout == "shuffled":
        table = pq.read_table(path)
        times = table.column("time").to_pylist()
        times[5] = None
        pq.write_table(table.set_column(0, "time", pa.array(times, pa.timestamp("us"))), path)

    def feed() -> ReplayFeed:
        return ReplayFeed(path=path, symbols=["AAAUSDT", "BBBUSDT"], bars=bound)

    full = list(feed().stream(threading.Event()))
    timed = [b for b in full if b.time is not None]
    for cut in (1, 2, 21, len(timed) - 1):
        last = {b.symbol: b for b in timed[:cut]}
        resumed = feed()
        resumed.resume_after(last)
        got = list(resumed.stream(threading.Event()))
        # What the engine skips of the resumed stream: the bars of a symbol up to its own last.
        kept = [
            b for b in got if b.time is None or b.symbol not in last or b.time > last[b.symbol].time
        ]
        assert kept == full[cut:], (cut, layout, bound)
        if len(last) == 2:  # resumed: at most the other symbol's bar of the cut time again
            assert len(got) - len(kept) <= 1
    # Without a stored bar for every symbol the stream starts at the beginning.
    partial = feed()
    partial.resume_after({"AAAUSDT": timed[10]})
    assert list(partial.stream(threading.Event())) == full


def test_replay_realtime_pacing(tmp_path: Path) -> None:
    bars = wave_bars(["BTCUSDT"], T0, 6)
    clock = FakeClock(T0)
    feed = ReplayFeed(path=write_replay(tmp_path / "b.parquet", bars), pace="realtime",
                      clock=clock)  # fmt: skip
    assert len(list(feed.stream(threading.Event()))) == 6
    assert clock.monotonic() == pytest.approx(5 * 60)
