"""A venue that cannot answer (TransientError) while a session changes trading date.

Two ways a session moves from one trading date to the next:

- In process, on the first bar of the new date (``TradingEngine._roll``): the closing date is
  finalized and the new date's folder is created. A new folder holds nothing to reconcile,
  so the broker is not asked anything there; a venue that is down cannot break the change.
- Across a crash: the crashed date's folder is reopened, the fills written after its last
  state save are applied again and every order it left PENDING is resolved with the venue
  (``open_orders`` / ``recover``), then the date is closed and the next one opened. The
  venue answering 503 there must leave the date to a retry (a Prefect task retry, a restart
  of the session), which must end exactly as if the venue had answered at once.

The venue is a fake behind the Broker port that outlives each broker object (as an exchange
outlives our processes). In-process and deterministic: a FakeClock that never advances,
synchronous flushes, and a crash is an engine abandoned mid-stream (what kill -9 leaves).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

import duckdb
import pytest
import yaml

from argo_engine import session
from argo_engine.clock import FakeClock
from argo_engine.domain.enums import OrderStatus, OrderType, Side
from argo_engine.domain.market import Bar
from argo_engine.domain.orders import Fill, Order
from argo_engine.domain.positions import Position
from argo_engine.engine.core import load_state
from argo_engine.errors import ProviderUnavailable, TransientError
from argo_engine.persistence.runs import find_session_runs
from argo_engine.ports import Account, Broker, OrderUpdate
from argo_engine.settings import ArgoSettings
from argo_engine.testing.feeds import ListFeed
from argo_engine.verify import verify_folder, verify_path
from tests.engine.helpers import utc

SYMBOL = "BTCUSDT"
SID = "venue"
D1, D2 = date(2025, 10, 1), date(2025, 10, 2)
RATE = 0.001
CAPITAL = 1000.0
# The retries of the trading-day tasks (flows/tasks.py), transient errors only.
TASK_RETRIES = 3


def minute(i: int) -> datetime:
    return utc(2025, 10, 1, 23, 56) + timedelta(minutes=i)


# Bars 0-3 end D1 (23:56-23:59), bars 4-8 start D2 (00:00-00:04). Bar 3 reaches 106 (a SELL
# at 105 fills there), bar 6 dips to 94 (a BUY at 95 fills there).
BARS = [
    Bar(SYMBOL, minute(i), 100.0, 106.0 if i == 3 else 100.0, 94.0 if i == 6 else 100.0, 100.0, 1.0)
    for i in range(9)
]

Plan = dict[int, list[tuple[Side, OrderType, float]]]
# A MARKET BUY, then (after the state save that the crash tests take at bar 1) a LIMIT SELL
# at 105 that the venue fills on bar 3; on D2 a LIMIT BUY at 95 (fills on bar 6) and a
# MARKET SELL.
CRASH_SCRIPT: Plan = {
    1: [(Side.BUY, OrderType.MARKET, 0.0)],
    2: [(Side.SELL, OrderType.LIMIT, 105.0)],
    5: [(Side.BUY, OrderType.LIMIT, 95.0)],
    7: [(Side.SELL, OrderType.MARKET, 0.0)],
}
# A LIMIT BUY placed on D1 rests across the date change and fills on D2.
CARRIED_SCRIPT: Plan = {
    1: [(Side.BUY, OrderType.MARKET, 0.0)],
    2: [(Side.BUY, OrderType.LIMIT, 95.0)],
    7: [(Side.SELL, OrderType.MARKET, 0.0)],
}


@dataclass
class Venue:
    """The exchange: its book outlives every broker object (process) of the session.

    Attributes:
        orders: Latest state of every order it received, by order id.
        fills: The fill of every filled order, by order id (orders fill whole).
        submitted: Every order id ever sent to it, in order.
        failures: Per broker method, how many of its next calls answer 503.
        calls: Per broker method, how many calls it answered or failed.
        last_bar: Time of the last bar it traded.
        connections: Broker objects connected to it and not closed.
    """

    orders: dict[str, Order] = field(default_factory=dict)
    fills: dict[str, Fill] = field(default_factory=dict)
    submitted: list[str] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    last_bar: datetime | None = None
    connections: int = 0

    def call(self, method: str) -> None:
        """Count a call of a broker method; raise if it is set to fail."""
        self.calls[method] += 1
        if self.failures.get(method, 0) > 0:
            self.failures[method] -= 1
            raise ProviderUnavailable(f"HTTP 503 from the venue ({method})")

    def execute(self, order: Order, price: float, at: datetime) -> Fill:
        """Fill ``order`` whole at ``price``."""
        fill = order.fill(
            trade_id=f"{order.order_id}-t1",
            executed_at=at,
            executed_qty=order.quantity,
            executed_price=price,
            commission=round(RATE * price * order.quantity, 10),
        )
        self.orders[order.order_id] = order.with_status(OrderStatus.FILLED)
        self.fills[order.order_id] = fill
        return fill

    def trade(self, bar: Bar) -> None:
        """Let the market move: resting LIMIT orders the bar crosses fill (once per bar)."""
        if self.last_bar is not None and bar.time <= self.last_bar:
            return
        self.last_bar = bar.time
        for order in list(self.orders.values()):
            if order.status is not OrderStatus.PENDING or order.symbol != bar.symbol:
                continue
            crossed = bar.low <= order.price if order.side is Side.BUY else bar.high >= order.price
            if crossed:
                self.execute(order, order.price, bar.time)


class FakeVenueBroker:
    """A venue broker (no local book: the engine asks it after a crash) over a :class:`Venue`.

    It tracks the orders this process sent or recovered and reports their changes when
    polled, as the Binance broker does; its saved state is the list of tracked orders.
    """

    name = "fake-venue"

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self._tracked: dict[str, Order] = {}
        self._open = True
        venue.connections += 1

    def submit(self, order: Order, bar: Bar | None) -> Sequence[OrderUpdate]:
        venue = self.venue
        venue.call("submit")
        venue.submitted.append(order.order_id)
        venue.orders[order.order_id] = order
        if order.order_type is OrderType.MARKET:
            assert bar is not None
            fill = venue.execute(order, bar.close, bar.time)
            return [OrderUpdate(venue.orders[order.order_id], (fill,))]
        self._tracked[order.order_id] = order
        return [OrderUpdate(order)]

    def cancel(self, order_id: str) -> Sequence[OrderUpdate]:
        self.venue.call("cancel")
        order = self._tracked.pop(order_id, None)
        if order is None:
            return []
        cancelled = order.with_status(OrderStatus.CANCELLED, reason="cancelled")
        self.venue.orders[order_id] = cancelled
        return [OrderUpdate(cancelled)]

    def on_bar(self, bar: Bar) -> Sequence[OrderUpdate]:
        self.venue.call("on_bar")
        self.venue.trade(bar)
        updates: list[OrderUpdate] = []
        for order_id in list(self._tracked):
            now = self.venue.orders[order_id]
            if now.status is OrderStatus.PENDING:
                continue
            del self._tracked[order_id]
            fill = self.venue.fills.get(order_id)
            updates.append(OrderUpdate(now, (fill,) if fill is not None else ()))
        return updates

    def open_orders(self) -> list[Order]:
        self.venue.call("open_orders")
        return list(self._tracked.values())

    def recover(self, orders: list[Order]) -> Sequence[OrderUpdate]:
        self.venue.call("recover")
        updates: list[OrderUpdate] = []
        for order in orders:
            now = self.venue.orders.get(order.order_id)
            if now is None:
                failed = order.with_status(OrderStatus.FAILED, reason="not_at_venue")
                updates.append(OrderUpdate(failed))
            elif now.status is OrderStatus.PENDING:
                self._tracked[order.order_id] = now
                updates.append(OrderUpdate(now))
            else:
                fill = self.venue.fills.get(order.order_id)
                updates.append(OrderUpdate(now, (fill,) if fill is not None else ()))
        return updates

    def positions(self) -> list[Position]:
        return []

    def account(self) -> Account:
        return Account(cash=CAPITAL, equity=CAPITAL)

    def save_state(self) -> dict[str, Any]:
        return {"tracked": [o.to_dict() for o in self._tracked.values()]}

    def restore_state(self, state: dict[str, Any]) -> None:
        self._tracked = {o["order_id"]: Order.from_dict(o) for o in state.get("tracked", [])}

    def close(self) -> None:
        if self._open:
            self._open = False
            self.venue.connections -= 1


def _broker(venue: Venue) -> Broker:
    broker: Broker = FakeVenueBroker(venue)  # checks the fake against the port
    return broker


def _settings(make_settings: Any, out: Path, script: Plan) -> ArgoSettings:
    orders = {
        BARS[i].time.isoformat(): [[str(s), str(t), p] for s, t, p in specs]
        for i, specs in script.items()
    }
    settings: ArgoSettings = make_settings(
        session={
            "data_output": out,
            "symbols": [SYMBOL],
            "session_id": SID,
            "initial_capital": CAPITAL,
        },
        strategy={
            "name": "tests.recovery.strategies:TimedOrdersStrategy",
            "params": {"orders": orders},
        },
        feed={"prefetch_days": 0},
        # Synchronous flushes: the crash below leaves the same files every time.
        persistence={"background_flush": False},
    )
    return settings


T = TypeVar("T")


def retried(
    step: Callable[[], T], attempts: list[int], between: Callable[[], None] | None = None
) -> T:
    """Run ``step`` again on a TransientError, as the flows do (at most TASK_RETRIES more).

    ``between`` is called after each failure, before the retry.
    """
    for attempt in range(1, TASK_RETRIES + 2):
        try:
            result = step()
        except TransientError:
            if attempt > TASK_RETRIES:
                raise
            if between is not None:
                between()
            continue
        attempts.append(attempt)
        return result
    raise AssertionError  # pragma: no cover


# -- outcomes ------------------------------------------------------------------------------------


def _rows(out: Path, table: str, cols: str) -> list[tuple[Any, ...]]:
    """Rows of every folder's ``table``, its ``date/run_N`` in front, sorted."""
    con = duckdb.connect()
    try:
        return con.execute(
            f"SELECT regexp_extract(filename, '([0-9-]{{10}}/run_[0-9]+)/[^/]+$', 1), {cols} "
            f"FROM read_parquet("
            f"'{out}/*/run_*/{table}.parquet', filename = true) ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()


ORDER_COLS = "order_id, side, order_type, quantity, price, timestamp, status, reason"
FILL_COLS = (
    "trade_id, order_id, side, executed_at, executed_qty, executed_price, commission, pnl, "
    "position_type"
)


def _stats(out: Path) -> dict[str, Any]:
    """Per ``date/run_N`` folder: the figures of its stats.yaml (no paths, no wall times)."""
    found = {}
    for path in sorted(out.glob("*/run_*/stats.yaml")):
        doc = yaml.safe_load(path.read_text())
        found[f"{path.parent.parent.name}/{path.parent.name}"] = {
            key: doc[key]
            for key in (
                "id",
                "date",
                "trade_result",
                "trade_pnl",
                "total_fees",
                "daily",
                "cumulative",
            )
        }
    return found


@dataclass
class Outcome:
    """What a session left: files, figures, and what the venue saw."""

    orders: list[tuple[Any, ...]]
    fills: list[tuple[Any, ...]]
    bars: list[tuple[Any, ...]]
    stats: dict[str, Any]
    submitted: list[str]
    verify: dict[str, list[str]]
    unrecovered: list[Path]


def outcome(out: Path, venue: Venue) -> Outcome:
    return Outcome(
        orders=_rows(out, "orders", ORDER_COLS),
        fills=_rows(out, "trades", FILL_COLS),
        bars=_rows(out, "market_data", "time"),
        stats=_stats(out),
        submitted=list(venue.submitted),
        verify=verify_path(out),
        unrecovered=[f for *_, f in find_session_runs(out, SID) if session.needs_recovery(f)],
    )


# -- an in-process date change -------------------------------------------------------------------


def test_an_in_process_date_change_asks_the_venue_nothing(
    make_settings: Any, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    settings = _settings(make_settings, out, CARRIED_SCRIPT)
    # A venue whose order queries would all answer 503: the session must not need them.
    venue = Venue(failures={"open_orders": 10**6, "recover": 10**6})
    clock = FakeClock(minute(0))
    plan = session.start_session(settings, session_id=SID, clock=clock, first_date=D1)
    _, summaries = session.run_session(
        settings, plan=plan, clock=clock, feed=ListFeed(BARS), broker=_broker(venue)
    )

    assert [s.date for s in summaries] == [D1.isoformat(), D2.isoformat()]
    assert venue.calls["open_orders"] == venue.calls["recover"] == 0
    result = outcome(out, venue)
    assert result.verify == {}
    assert result.unrecovered == []
    buy, limit, sell = venue.submitted
    # The LIMIT BUY rested over the date change: PENDING when D1 closed, FILLED on D2.
    assert [(r[0], r[1], r[7]) for r in result.orders] == [
        (f"{D1}/run_1", buy, "FILLED"),
        (f"{D1}/run_1", limit, "PENDING"),
        (f"{D2}/run_1", limit, "FILLED"),
        (f"{D2}/run_1", sell, "FILLED"),
    ]
    day_of = {r[2]: (r[0], r[4], r[6]) for r in result.fills}
    assert day_of == {
        buy: (f"{D1}/run_1", minute(1).replace(tzinfo=None), 100.0),
        limit: (f"{D2}/run_1", minute(6).replace(tzinfo=None), 95.0),
        sell: (f"{D2}/run_1", minute(7).replace(tzinfo=None), 100.0),
    }
    assert [r[0] for r in result.bars] == [f"{D1}/run_1"] * 4 + [f"{D2}/run_1"] * 5
    # FIFO, fees included: the SELL of 1 at 100 closes the lot bought at 100; the one bought
    # at 95 on D2 stays open.
    realized = 100 - 100 - 0.1 - 0.1
    d1, d2 = result.stats[f"{D1}/run_1"], result.stats[f"{D2}/run_1"]
    assert d1["daily"]["trade_result"]["number_of_trades"] == 1
    assert d2["daily"]["trade_result"]["number_of_trades"] == 2
    assert d2["cumulative"]["trade_result"]["number_of_trades"] == 3
    assert d1["daily"]["trade_pnl"]["realized_pnl"] == 0
    assert d2["daily"]["trade_pnl"]["realized_pnl"] == pytest.approx(realized)
    assert d2["cumulative"]["trade_pnl"]["realized_pnl"] == pytest.approx(realized)
    assert d2["cumulative"]["total_fees"] == pytest.approx(0.1 + 0.095 + 0.1)


# -- a date change across a crash ----------------------------------------------------------------


def crash_on_d1(settings: ArgoSettings, clock: FakeClock, venue: Venue) -> Path:
    """Run 1 streams bars 0-2 of D1 and dies right after placing its LIMIT SELL.

    Its state was saved after the MARKET BUY (bar 1): the SELL is known to its journal (a
    PENDING intent) and to the venue only. The venue fills it on bar 3 while the process is
    down. Returns run 1's D1 folder.
    """
    plan = session.start_session(settings, session_id=SID, clock=clock, first_date=D1)
    engine = session.open_engine(
        settings, plan, D1, clock=clock, feed=ListFeed(BARS), broker=_broker(venue)
    )
    engine.start()
    for bar in BARS[:3]:
        engine.process_bar(bar)
        if bar is BARS[1]:
            engine.flush()  # the periodic state save
    folder = engine.folder
    assert folder is not None
    # kill -9: nothing more of run 1 runs.
    venue.trade(BARS[3])
    return folder


Restart = Literal["day_tasks", "session"]


def restart(
    settings: ArgoSettings,
    clock: FakeClock,
    venue: Venue,
    how: Restart,
    between: Callable[[], None] | None = None,
) -> list[int]:
    """Go on after the crash; returns the attempts each retried step took.

    ``day_tasks``: the trading-day flow of run 1 is run again for D1, then D2 (each task
    retried on TransientError as the tasks are). ``session``: the session is started again
    (recovering run 1's folder first, then run 2 streams D1's last bar and rolls into D2),
    started once more when that fails with a TransientError. ``between`` is called after
    each failed attempt.
    """
    attempts: list[int] = []
    if how == "session":

        def start() -> session.SessionPlan:
            return session.start_session(
                settings,
                session_id=SID,
                clock=clock,
                first_date=D1,
                broker_factory=lambda: _broker(venue),
            )

        plan = retried(start, attempts, between)
        assert plan.run_number == 2
        session.run_session(
            settings, plan=plan, clock=clock, feed=ListFeed(BARS), broker=_broker(venue)
        )
        return attempts
    run_1 = session.SessionPlan(SID, 1, D1, minute(0), resumed=False)
    for day in (D1, D2):
        for step in (session.prefetch_day, session.stream_day, session.finalize_day):
            task = partial(_day_task, step, settings, run_1, day, clock, venue)
            retried(task, attempts, between)
    return attempts


def _day_task(
    step: Callable[..., session.DaySummary],
    settings: ArgoSettings,
    plan: session.SessionPlan,
    day: date,
    clock: FakeClock,
    venue: Venue,
) -> session.DaySummary:
    # Each attempt builds its own feed and broker, as a new task run does.
    return step(settings, plan, day, clock=clock, feed=ListFeed(BARS), broker=_broker(venue))


@pytest.mark.parametrize("how", ["day_tasks", "session"])
@pytest.mark.parametrize("failing", ["open_orders", "recover"])
def test_a_venue_failing_once_while_a_crashed_date_is_recovered_changes_nothing(
    make_settings: Any, tmp_path: Path, how: Restart, failing: str
) -> None:
    results: dict[bool, Outcome] = {}
    for flaky in (False, True):
        out = tmp_path / ("flaky" if flaky else "steady")
        settings = _settings(make_settings, out, CRASH_SCRIPT)
        clock = FakeClock(minute(0))
        venue = Venue()
        crashed = crash_on_d1(settings, clock, venue)
        state = load_state(crashed)
        assert state is not None
        # Preconditions: the crash left D1 to recover, the LIMIT SELL unknown to the state.
        assert session.needs_recovery(crashed)
        assert state["open_orders"] == []
        _, limit_sell = venue.submitted
        assert venue.orders[limit_sell].status is OrderStatus.FILLED
        if flaky:
            venue.failures[failing] = 1
        after_failure: list[tuple[bool, list[str]]] = []

        def inspect(folder: Path = crashed, seen: list[Any] = after_failure) -> None:
            seen.append((session.needs_recovery(folder), verify_folder(folder)))

        attempts = restart(settings, clock, venue, how, inspect)
        if flaky:
            # Between the failure and the retry, D1 still tells that it needs recovery (and
            # verify does not pass it).
            [(needs, problems)] = after_failure
            assert needs
            assert problems
            # The venue failed once, at the first step that reopened D1; one retry sufficed.
            assert venue.failures[failing] == 0
            assert sorted(attempts)[-1] == 2
            assert attempts.count(2) == 1
        else:
            assert set(attempts) == {1}
        # Every broker was closed, the failed attempt's too; only the killed run's stays.
        assert venue.connections == 1
        results[flaky] = outcome(out, venue)

    steady, flaky_run = results[False], results[True]
    # Nothing was sent twice (no intent decided again on a bar streamed again), and the same
    # orders were sent as without the failure.
    assert flaky_run.submitted == steady.submitted
    buy, limit_sell, limit_buy, sell = flaky_run.submitted
    # Every folder holds the same rows and figures as without the failure.
    assert flaky_run.orders == steady.orders
    assert flaky_run.fills == steady.fills
    assert flaky_run.bars == steady.bars
    assert flaky_run.stats == steady.stats
    assert flaky_run.verify == {}
    assert flaky_run.unrecovered == []
    # The LIMIT SELL the crash left PENDING ends FILLED where it was recorded (run 1's D1),
    # with the venue's one fill, counted once; no order is left PENDING.
    latest: dict[str, str] = {}
    for where, order_id, *_, status, _reason in flaky_run.orders:
        latest[order_id] = status
        if order_id == limit_sell:
            assert (where, status) == (f"{D1}/run_1", "FILLED")
    assert latest == dict.fromkeys((buy, limit_sell, limit_buy, sell), "FILLED")
    trades = [(r[0], r[2]) for r in flaky_run.fills]
    assert sorted(o for _, o in trades) == sorted([buy, limit_sell, limit_buy, sell])
    assert (f"{D1}/run_1", limit_sell) in trades
    assert len({r[1] for r in flaky_run.fills}) == len(flaky_run.fills)
    # Each bar stored once per session (a new run resumes after the crashed one's last bar).
    assert len(flaky_run.bars) == len({r[1] for r in flaky_run.bars}) == len(BARS)
    # The final cumulative figures count all four fills and both round trips.
    last = flaky_run.stats[max(flaky_run.stats)]
    assert last["date"] == D2.isoformat()
    assert last["cumulative"]["trade_result"]["number_of_trades"] == 4
    realized = (105 - 100 - 0.1 - 0.105) + (100 - 95 - 0.095 - 0.1)
    assert last["cumulative"]["trade_pnl"]["realized_pnl"] == pytest.approx(realized)
