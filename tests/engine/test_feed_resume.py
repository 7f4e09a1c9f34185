"""A trading date reopened on its own (the Prefect path) starts its feed after the stored bars.

Each trading-day task opens the engine again with a new feed. A feed with ``resume_after``
must then start after the last stored bar, not regenerate the session's history for the
engine to skip, and the session must store exactly what one uninterrupted run stores.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

from argo_engine.clock import FakeClock
from argo_engine.domain.market import Bar
from argo_engine.providers.synthetic import SyntheticFeed
from argo_engine.session import (
    finalize_day,
    prefetch_day,
    run_session,
    start_session,
    stream_day,
)
from argo_engine.settings import ArgoSettings, load_settings
from tests.engine.helpers import session_rows

START = datetime(2025, 10, 1, tzinfo=UTC)
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
DAYS = 3
BARS = DAYS * 1440


class CountingFeed(SyntheticFeed):
    """The synthetic feed, counting the bars each stream yields."""

    yielded = 0

    def stream(self, stop: threading.Event) -> Iterator[Bar]:
        for bar in super().stream(stop):
            self.yielded += 1
            yield bar


def _feed() -> CountingFeed:
    return CountingFeed(symbols=SYMBOLS, interval="1m", start=START, bars=BARS)


def _settings(out: Path) -> ArgoSettings:
    return load_settings(
        None,
        session={"data_output": str(out), "symbols": SYMBOLS, "initial_capital": 100_000.0},
        feed={"kind": "synthetic", "start": START.isoformat(), "bars": BARS},
        broker={"commission": "zero"},
        strategy={"name": "rsi"},
        persistence={"background_flush": False},
    )


def test_each_date_streams_only_its_own_bars_and_stores_what_one_run_does(
    tmp_path: Path,
) -> None:
    clock = FakeClock(START)
    whole = _settings(tmp_path / "whole")
    run_session(
        whole,
        plan=start_session(whole, session_id="whole", clock=clock, first_date=START.date()),
        feed=_feed(),
        clock=clock,
    )

    by_date = _settings(tmp_path / "by-date")
    plan = start_session(by_date, session_id="by-date", clock=clock, first_date=START.date())
    yielded = []
    for n in range(DAYS):
        day = date(2025, 10, 1 + n)
        prefetch_day(by_date, plan, day, clock=clock)
        feed = _feed()
        summary = stream_day(by_date, plan, day, clock=clock, feed=feed)
        finalize_day(by_date, plan, day, clock=clock)
        assert summary.bars == 1440 * len(SYMBOLS)
        yielded.append(feed.yielded)
    # A date's feed yields its own bars and, but for the last date, the next date's first
    # bar, which ends the stream unconsumed (without resume_after: 2,881, 5,761, 8,640).
    per_date = 1440 * len(SYMBOLS)
    assert yielded == [per_date + 1] * (DAYS - 1) + [per_date]
    for table in ("market_data", "orders", "trades"):
        whole_rows = session_rows(tmp_path / "whole", table)
        assert whole_rows, table
        assert _without_ids(whole_rows) == _without_ids(session_rows(tmp_path / "by-date", table))


def _without_ids(rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """Rows with the session id (a prefix of order and trade ids) taken out."""
    return [
        tuple(v.replace("by-date", "whole") if isinstance(v, str) else v for v in row)
        for row in rows
    ]
