"""A broker's order poll failing transiently on a bar loses that bar for nobody.

The trading-day flow's path is driven in process: ``prefetch_day``, then ``stream_day`` retried
on TransientError as the ``stream_session`` task is (three retries), then ``finalize_day``.
The broker is the paper broker standing for a venue whose order poll (``on_bar``) fails once
with a 5xx while an order rests. The strategy records every bar it is given in its cache,
which the engine saves with its state, so the record spans a retry. Deterministic: a
FakeClock that never advances, so no periodic flush happens in between.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from argo_engine import session
from argo_engine.clock import FakeClock
from argo_engine.domain.enums import LogLevel
from argo_engine.domain.ledger import PnlMethod
from argo_engine.domain.market import Bar
from argo_engine.engine.callbacks import EngineCallbacks
from argo_engine.engine.core import load_state
from argo_engine.errors import ProviderUnavailable, TransientError
from argo_engine.ports import OrderUpdate
from argo_engine.providers.commission import FixedRateCommission
from argo_engine.providers.paper import PaperBroker
from argo_engine.settings import ArgoSettings
from argo_engine.testing.feeds import ListFeed
from tests.engine.helpers import utc

SYMBOL = "BTCUSDT"
DAY = date(2025, 10, 1)
T0 = utc(2025, 10, 1, 9, 0)
CAPITAL = 250.0
RATE = 0.001
# The stream_session task's retries (flows/tasks.py), transient errors only.
TASK_RETRIES = 3
# The strategy rests a BUY 1 @ 95 on its third bar (minute 2); minute 12 dips to 94.
FILL_MINUTE = 12


def minute(i: int) -> datetime:
    return T0 + timedelta(minutes=i)


BARS = [
    Bar(SYMBOL, minute(i), 100.0, 100.0, 94.0 if i == FILL_MINUTE else 100.0, 100.0, 1.0)
    for i in range(20)
]


@dataclass
class Fault:
    """One poll failure at a bar time, shared by the brokers of every attempt (a retry
    builds a new broker, as a new task run would)."""

    at: datetime | None
    fired: bool = False


class FlakyVenueBroker(PaperBroker):
    """The paper broker as a venue whose order poll answers 503 once, at ``fault.at``.

    What the venue did meanwhile is not undone by our failed poll: a resting order the failed
    bar crossed has filled, and the next successful poll reports it (with its own time).
    """

    def __init__(self, fault: Fault) -> None:
        super().__init__(
            initial_cash=CAPITAL, commission=FixedRateCommission(RATE), pnl_method=PnlMethod.FIFO
        )
        self.fault = fault
        self._unpolled: list[Bar] = []

    def on_bar(self, bar: Bar) -> list[OrderUpdate]:
        if not self.fault.fired and bar.time == self.fault.at and self.open_orders():
            self.fault.fired = True
            self._unpolled.append(bar)
            raise ProviderUnavailable("HTTP 503 from GET /api/v3/openOrders")
        updates: list[OrderUpdate] = []
        for missed in self._unpolled:
            updates.extend(super().on_bar(missed))
        self._unpolled.clear()
        updates.extend(super().on_bar(bar))
        return updates


def _settings(make_settings: Any, out: Path) -> ArgoSettings:
    settings: ArgoSettings = make_settings(
        session={
            "data_output": out,
            "symbols": [SYMBOL],
            "session_id": "flaky",
            "initial_capital": CAPITAL,
        },
        strategy={"name": "tests.recovery.strategies:SeenBarsStrategy"},
        broker={"commission": "fixed_rate", "commission_rate": RATE},
        feed={"prefetch_days": 0},
    )
    return settings


@dataclass
class DayRun:
    seen: list[str]
    attempts: int
    errors: list[BaseException]
    folder: Path
    problems: list[str]


def run_trading_day(settings: ArgoSettings, fault: Fault) -> DayRun:
    """The trading-day flow's tasks, the stream retried on transient errors like the task."""
    clock = FakeClock(T0)
    plan = session.start_session(settings, session_id="flaky", clock=clock, first_date=DAY)
    errors: list[BaseException] = []
    callbacks = EngineCallbacks(on_error=errors.append)
    session.prefetch_day(
        settings, plan, DAY, clock=clock, feed=ListFeed(BARS), broker=FlakyVenueBroker(fault)
    )
    attempts = 0
    while True:
        attempts += 1
        try:
            summary = session.stream_day(
                settings,
                plan,
                DAY,
                clock=clock,
                callbacks=callbacks,
                feed=ListFeed(BARS),
                broker=FlakyVenueBroker(fault),
            )
            break
        except TransientError:
            if attempts > TASK_RETRIES:
                raise
    folder = Path(summary.folder)
    state = load_state(folder)
    assert state is not None
    final = session.finalize_day(settings, plan, DAY, clock=clock)
    return DayRun(state["cache"]["seen"], attempts, errors, folder, final.problems)


def _rows(folder: Path, table: str, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    try:
        return con.execute(
            sql.replace("FROM T", f"FROM read_parquet('{folder / (table + '.parquet')}')")
        ).fetchall()
    finally:
        con.close()


FILL_COLS = "side, executed_at, executed_qty, executed_price, commission, pnl, position_type"


@pytest.mark.parametrize(
    "fail_minute",
    [
        pytest.param(7, id="poll-with-nothing-to-report"),
        pytest.param(FILL_MINUTE, id="poll-that-would-report-a-fill"),
    ],
)
def test_a_failed_order_poll_loses_no_bar_for_the_strategy_and_stores_none_twice(
    make_settings: Any, tmp_path: Path, fail_minute: int
) -> None:
    reference = run_trading_day(_settings(make_settings, tmp_path / "ref"), Fault(at=None))
    fault = Fault(at=minute(fail_minute))
    flaky = run_trading_day(_settings(make_settings, tmp_path / "out"), fault)
    assert fault.fired
    every_bar = [b.time.isoformat() for b in BARS]
    assert reference.seen == every_bar
    # The strategy was given every bar, the failed one included, exactly once and in order.
    assert flaky.seen == every_bar
    # Each bar is stored exactly once.
    assert _rows(flaky.folder, "market_data", "SELECT count(*), count(DISTINCT time) FROM T") == [
        (len(BARS), len(BARS))
    ]
    # The order the failed poll was asked about still filled, once, as it did without it.
    fills = _rows(flaky.folder, "trades", f"SELECT {FILL_COLS} FROM T ORDER BY ALL")
    assert len(fills) == 1
    assert fills == _rows(reference.folder, "trades", f"SELECT {FILL_COLS} FROM T ORDER BY ALL")
    # Statistics counted every bar and fill once: the same as without the failure.
    stats = yaml.safe_load((flaky.folder / "stats.yaml").read_text())
    ref_stats = yaml.safe_load((reference.folder / "stats.yaml").read_text())
    assert stats["daily"] == ref_stats["daily"]
    assert stats["cumulative"] == ref_stats["cumulative"]
    assert flaky.problems == []
    # The failure was reported (on_error, and a log row stamped with the bar's time), and the
    # session went on without a task retry.
    assert [type(e) for e in flaky.errors] == [ProviderUnavailable]
    assert flaky.attempts == 1
    logs = _rows(flaky.folder, "logs", "SELECT timestamp, level, message FROM T")
    ((when, level, message),) = [row for row in logs if "order poll" in str(row[2])]
    assert when == minute(fail_minute).replace(tzinfo=None)
    assert level == str(LogLevel.WARNING)
    assert "503" in message
