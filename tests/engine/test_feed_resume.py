"""A trading date reopened on its own (the Prefect path) starts its feed after the stored bars.

Each trading-day task opens the engine again with a new feed. A feed with ``resume_after``
(synthetic, replay) must then start after the last stored bar, not yield the session's
history again for the engine to skip, and the session must store exactly what one
uninterrupted run stores.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from argo_engine.clock import FakeClock
from argo_engine.domain.market import Bar
from argo_engine.providers.replay import ReplayFeed
from argo_engine.providers.synthetic import SyntheticFeed
from argo_engine.session import (
    finalize_day,
    prefetch_day,
    run_session,
    start_session,
    stream_day,
)
from argo_engine.settings import ArgoSettings, load_settings
from tests.engine.helpers import session_rows, write_replay

START = datetime(2025, 10, 1, tzinfo=UTC)
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
DAYS = 3
BARS = DAYS * 1440


class _Counting:
    """Counts the bars each stream of the feed it is mixed into yields."""

    yielded = 0

    def stream(self, stop: threading.Event) -> Iterator[Bar]:
        for bar in super().stream(stop):  # type: ignore[misc]
            self.yielded += 1
            yield bar


class CountingSynthetic(_Counting, SyntheticFeed):
    """The synthetic feed, counting."""


class CountingReplay(_Counting, ReplayFeed):
    """The replay feed, counting."""


def _synthetic() -> CountingSynthetic:
    return CountingSynthetic(symbols=SYMBOLS, interval="1m", start=START, bars=BARS)


def _settings(out: Path) -> ArgoSettings:
    return load_settings(
        None,
        session={"data_output": str(out), "symbols": SYMBOLS, "initial_capital": 100_000.0},
        feed={"kind": "synthetic", "start": START.isoformat(), "bars": BARS},
        broker={"commission": "zero"},
        strategy={"name": "rsi"},
        persistence={"background_flush": False},
    )


@pytest.mark.parametrize("kind", ["synthetic", "replay"])
def test_each_date_streams_only_its_own_bars_and_stores_what_one_run_does(
    tmp_path: Path, kind: str
) -> None:
    if kind == "synthetic":

        def feed() -> CountingSynthetic | CountingReplay:
            return _synthetic()
    else:
        path = write_replay(tmp_path / "bars.parquet", list(_synthetic().stream(threading.Event())))

        def feed() -> CountingSynthetic | CountingReplay:
            return CountingReplay(path=path, symbols=SYMBOLS)

    clock = FakeClock(START)
    whole = _settings(tmp_path / "whole")
    run_session(
        whole,
        plan=start_session(whole, session_id="whole", clock=clock, first_date=START.date()),
        feed=feed(),
        clock=clock,
    )

    by_date = _settings(tmp_path / "by-date")
    plan = start_session(by_date, session_id="by-date", clock=clock, first_date=START.date())
    yielded = []
    for n in range(DAYS):
        day = date(2025, 10, 1 + n)
        prefetch_day(by_date, plan, day, clock=clock)
        one = feed()
        summary = stream_day(by_date, plan, day, clock=clock, feed=one)
        finalize_day(by_date, plan, day, clock=clock)
        assert summary.bars == 1440 * len(SYMBOLS)
        yielded.append(one.yielded)
    # A date's feed yields its own bars and, but for the last date, the next date's first
    # bar, which ends the stream unconsumed (without resume_after: 2,881, 5,761, 8,640).
    per_date = 1440 * len(SYMBOLS)
    assert yielded == [per_date + 1] * (DAYS - 1) + [per_date]
    for table in ("market_data", "orders", "trades"):
        whole_rows = session_rows(tmp_path / "whole", table)
        assert whole_rows, table
        assert _without_ids(whole_rows) == _without_ids(session_rows(tmp_path / "by-date", table))


def test_a_row_without_time_is_rejected_once_over_a_date_by_date_session(tmp_path: Path) -> None:
    # The sort puts it last: the last date's stream reaches it, every earlier date stops at
    # its end first; a resumed date neither fails on it nor rejects it twice.
    t0 = datetime(2025, 10, 1, 23, 50, tzinfo=UTC)
    bars = [
        Bar("BTCUSDT", t0 + timedelta(minutes=i), 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, 1.0)
        for i in range(20)
    ]
    path = write_replay(tmp_path / "bars.parquet", bars)
    table = pq.read_table(path)
    times = table.column("time").to_pylist()
    times[3] = None
    pq.write_table(table.set_column(0, "time", pa.array(times, pa.timestamp("us"))), path)
    settings = load_settings(
        None,
        session={"data_output": str(tmp_path / "out"), "symbols": ["BTCUSDT"]},
        feed={"kind": "replay", "replay_file": str(path)},
        strategy={"name": "rsi"},
        persistence={"background_flush": False},
    )
    clock = FakeClock(t0)
    plan = start_session(settings, session_id="nulls", clock=clock, first_date=t0.date())
    got = []
    for day in (date(2025, 10, 1), date(2025, 10, 2)):
        prefetch_day(settings, plan, day, clock=clock)
        summary = stream_day(settings, plan, day, clock=clock)
        finalize_day(settings, plan, day, clock=clock)
        got.append((summary.bars, summary.rejected_bars))
    assert got == [(9, 0), (10, 1)]
    assert len(session_rows(tmp_path / "out", "market_data")) == 19


def _without_ids(rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """Rows with the session id (a prefix of order and trade ids) taken out."""
    return [
        tuple(v.replace("by-date", "whole") if isinstance(v, str) else v for v in row)
        for row in rows
    ]
