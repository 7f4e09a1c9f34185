"""Crash recovery of paper orders: resting LIMIT orders rest again, ended ones stay ended,
intents the broker never took are FAILED and never sent.

A crash is simulated in process: the engine is driven bar by bar and then dropped without
``stop()`` or ``flush()``, so exactly what its writers made durable survives (as after
SIGKILL). The state snapshot is taken explicitly (``engine.flush()``) at a chosen bar; the
FakeClock never advances, so no other snapshot or parquet write happens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import duckdb
import pytest
import yaml

from argo_engine.clock import FakeClock
from argo_engine.domain.enums import OrderStatus, OrderType, PositionType, Side
from argo_engine.domain.ledger import PnlMethod
from argo_engine.domain.market import Bar
from argo_engine.domain.orders import Order, OrderIntent
from argo_engine.engine.callbacks import EngineCallbacks
from argo_engine.engine.core import ACCEPTED_FILE, TradingEngine
from argo_engine.persistence.schema import JOURNAL_DIR
from argo_engine.ports import OrderUpdate
from argo_engine.providers.commission import FixedRateCommission
from argo_engine.providers.paper import PaperBroker
from argo_engine.session import SessionPlan, open_engine, start_session
from argo_engine.settings import ArgoSettings
from argo_engine.strategies.base import Strategy, StrategyConfig, StrategyContext
from argo_engine.testing.feeds import ListFeed
from argo_engine.verify import verify_path
from tests.engine.helpers import rows, utc

SYMBOL = "BTCUSDT"
SID = "resting"
DAY = date(2025, 10, 1)
T0 = utc(2025, 10, 1, 9, 0)
N_BARS = 20
CAPITAL = 250.0
RATE = 0.001

Mode = Literal["new_run", "retry"]
Action = tuple[str, float]


def minute(i: int) -> datetime:
    return T0 + timedelta(minutes=i)


def make_bars() -> list[Bar]:
    """Flat at 100; minute 12 dips to 94 (crosses a BUY at 95), 15 spikes to 106 (SELL 105)."""
    lows = {12: 94.0}
    highs = {15: 106.0}
    return [
        Bar(SYMBOL, minute(i), 100.0, highs.get(i, 100.0), lows.get(i, 100.0), 100.0, 1.0)
        for i in range(N_BARS)
    ]


BARS = make_bars()


class _Cfg(StrategyConfig):
    pass


class ScriptStrategy(Strategy):
    """Places the orders of a script keyed by bar minute (restart-invariant by construction).

    Actions: ``("market_buy" | "market_sell", qty)``, ``("limit_buy" | "limit_sell", price)``
    (1 unit) and ``("cancel", 0)`` (every open order).
    """

    name = "script"
    strategy_id = "tests.recovery.script"
    config_model = _Cfg

    def __init__(self, script: Mapping[int, Sequence[Action]]) -> None:
        self.script = script

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
        for kind, value in self.script.get((bar.time - T0) // timedelta(minutes=1), ()):
            if kind == "cancel":
                for order in ctx.open_orders(SYMBOL):
                    ctx.cancel_order(order.order_id)
                continue
            how, _, side = kind.partition("_")
            limit = how == "limit"
            ctx.place_order(
                OrderIntent(
                    symbol=SYMBOL,
                    side=Side.BUY if side == "buy" else Side.SELL,
                    quantity=1.0 if limit else value,
                    order_type=OrderType.LIMIT if limit else OrderType.MARKET,
                    price=value if limit else None,
                )
            )


class CountingPaperBroker(PaperBroker):
    """The paper broker, remembering every order id it was sent."""

    def __init__(self) -> None:
        super().__init__(
            initial_cash=CAPITAL, commission=FixedRateCommission(RATE), pnl_method=PnlMethod.FIFO
        )
        self.submitted: list[str] = []

    def submit(self, order: Order, bar: Bar | None) -> list[OrderUpdate]:
        self.submitted.append(order.order_id)
        return super().submit(order, bar)


class Killed(BaseException):
    """Stands for SIGKILL inside a bar: nothing after the raise point runs."""


def settings_for(
    make_settings: Any, out: Path, paper_fsync: Literal["per_order", "batched"] = "per_order"
) -> ArgoSettings:
    # Most tests here pin what is durable the moment an order call returns: per_order.
    settings: ArgoSettings = make_settings(
        session={
            "data_output": out,
            "symbols": [SYMBOL],
            "session_id": SID,
            "initial_capital": CAPITAL,
        },
        broker={"commission": "fixed_rate", "commission_rate": RATE},
        feed={"prefetch_days": 0},
        persistence={"paper_fsync": paper_fsync},
    )
    return settings


def open_run(
    settings: ArgoSettings,
    clock: FakeClock,
    script: Mapping[int, Sequence[Action]],
    plan: SessionPlan | None = None,
    *,
    broker: PaperBroker | None = None,
    callbacks: EngineCallbacks | None = None,
) -> tuple[SessionPlan, TradingEngine]:
    """Start (or, given ``plan``, retry) a run: what a process start does before streaming."""
    plan = plan or start_session(settings, session_id=SID, clock=clock, first_date=DAY)
    engine = open_engine(
        settings,
        plan,
        DAY,
        clock=clock,
        feed=ListFeed(BARS),
        strategy=ScriptStrategy(script),
        broker=broker or CountingPaperBroker(),
        callbacks=callbacks,
    )
    engine.start()
    return plan, engine


def book(engine: TradingEngine, *, with_prices: bool = False) -> dict[str, Any]:
    """The paper broker's whole state: cash, ledger, resting orders and reservations."""
    state = engine.broker.save_state()
    if not with_prices:
        # Last prices come from bars; bars not yet durable at the crash are streamed again.
        state.pop("last")
    return state


def run_crashing(
    settings: ArgoSettings,
    clock: FakeClock,
    script: Mapping[int, Sequence[Action]],
    plan: SessionPlan | None = None,
    *,
    snapshot_after: int,
    crash_after: int,
    broker: PaperBroker | None = None,
    callbacks: EngineCallbacks | None = None,
) -> tuple[SessionPlan, TradingEngine]:
    """Run bars up to ``crash_after``, saving the state after ``snapshot_after``; then "die".

    Returns the plan and the engine as it was at the crash (for comparisons only: it is never
    used again, as a killed process would not be).
    """
    plan, engine = open_run(settings, clock, script, plan, broker=broker, callbacks=callbacks)
    for i, bar in enumerate(BARS[: crash_after + 1]):
        engine.process_bar(bar)
        if i == snapshot_after:
            engine.flush()  # the periodic state save
    return plan, engine


def restart(
    settings: ArgoSettings,
    clock: FakeClock,
    script: Mapping[int, Sequence[Action]],
    plan: SessionPlan,
    mode: Mode,
    *,
    broker: PaperBroker | None = None,
) -> tuple[SessionPlan, TradingEngine]:
    """Start again with the same session id: a new run_N, or a retry of the crashed run_N."""
    if mode == "new_run":
        # Recovers the crashed run_1 folder first, then allocates run_2.
        plan = start_session(settings, session_id=SID, clock=clock, first_date=DAY)
        assert plan.run_number == 2
    return open_run(settings, clock, script, plan, broker=broker)


def reference(
    settings: ArgoSettings, clock: FakeClock, script: Mapping[int, Sequence[Action]], at: int
) -> dict[str, Any]:
    """An uninterrupted run: its book after bar ``at`` and at the end, its files and stats."""
    _, engine = open_run(settings, clock, script)
    for bar in BARS[: at + 1]:
        engine.process_bar(bar)
    at_crash = book(engine)
    engine.run()
    final = book(engine, with_prices=True)
    engine.stop()
    out = Path(settings.session.data_output)
    return {
        "at_crash": at_crash,
        "final": final,
        "fills": all_rows(out, "trades", FILL_COLS),
        "orders": all_rows(out, "orders", ORDER_COLS),
        "stats": final_stats(out),
    }


FILL_COLS = "side, executed_at, executed_qty, executed_price, commission, pnl, position_type"
ORDER_COLS = "side, order_type, quantity, price, timestamp, status, reason"


def all_rows(out: Path, table: str, cols: str, where: str = "true") -> list[tuple[Any, ...]]:
    """Rows of every run folder's ``table`` (latest status per order in its folder)."""
    con = duckdb.connect()
    try:
        return con.execute(
            f"SELECT {cols} FROM read_parquet('{out}/*/run_*/{table}.parquet') "
            f"WHERE {where} ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()


def final_orders(out: Path) -> list[tuple[Any, ...]]:
    """Each order's latest row across run folders (the run where it ended wins)."""
    con = duckdb.connect()
    try:
        return con.execute(
            f"SELECT {ORDER_COLS} FROM read_parquet('{out}/*/run_*/orders.parquet', "
            "filename = true) QUALIFY row_number() OVER (PARTITION BY timestamp, side, "
            "order_type, price ORDER BY filename DESC) = 1 ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()


def final_stats(out: Path) -> dict[str, Any]:
    latest = max(out.glob("*/run_*/stats.yaml"), key=lambda p: p.parent.name)
    cumulative: dict[str, Any] = yaml.safe_load(latest.read_text())["cumulative"]
    return cumulative


def placed_ids(orders: list[Order], kind: OrderType, side: Side) -> list[str]:
    return [o.order_id for o in orders if o.order_type is kind and o.side is side]


# A market buy before the snapshot; after it a resting BUY 95 (reserves 95.095 of 149.9 cash)
# and a resting SELL 105 (reserves the one unit held). Minutes 8 and 9 only pass if those
# reservations were lost: a market buy needs 100.1 cash, a market sell the reserved unit.
RESTING = {
    2: [("market_buy", 1.0)],
    5: [("limit_buy", 95.0), ("limit_sell", 105.0)],
    8: [("market_buy", 1.0)],
    9: [("market_sell", 1.0)],
}


@pytest.mark.parametrize("mode", ["new_run", "retry"])
def test_accepted_limit_order_rests_again_and_fills_once(
    make_settings: Any, tmp_path: Path, mode: Mode
) -> None:
    clock = FakeClock(T0)
    ref = reference(settings_for(make_settings, tmp_path / "ref"), clock, RESTING, at=7)
    settings = settings_for(make_settings, tmp_path / "out")
    out = Path(settings.session.data_output)
    placed: list[Order] = []
    plan, _ = run_crashing(
        settings,
        clock,
        RESTING,
        snapshot_after=3,  # the saved state predates both LIMIT orders
        crash_after=7,
        callbacks=EngineCallbacks(on_order_placed=placed.append),
    )
    [buy_id] = placed_ids(placed, OrderType.LIMIT, Side.BUY)
    [sell_id] = placed_ids(placed, OrderType.LIMIT, Side.SELL)
    assert (out / DAY.isoformat() / "run_1" / JOURNAL_DIR / ACCEPTED_FILE).stat().st_size > 0

    broker = CountingPaperBroker()
    _, engine = restart(settings, clock, RESTING, plan, mode, broker=broker)
    # Before the strategy runs again: both orders rest, reservations exactly as at the crash.
    assert [o.order_id for o in engine.open_orders()] == [buy_id, sell_id]
    assert [o.order_id for o in engine.broker.open_orders()] == [buy_id, sell_id]
    assert book(engine) == ref["at_crash"]
    engine.run()
    final = book(engine, with_prices=True)
    engine.stop()

    assert buy_id not in broker.submitted
    assert sell_id not in broker.submitted
    assert final == ref["final"]
    assert final["resting"] == []
    assert final["reserved"] == {}
    trades = all_rows(out, "trades", "order_id, executed_at, executed_price")
    assert [t for t in trades if t[0] == buy_id] == [(buy_id, minute(12).replace(tzinfo=None), 95)]
    assert [t for t in trades if t[0] == sell_id] == [
        (sell_id, minute(15).replace(tzinfo=None), 105)
    ]
    assert all_rows(out, "trades", FILL_COLS) == ref["fills"]
    # The run that saw the fills records them FILLED (a retry: the one orders.parquet).
    filled_in = out / DAY.isoformat() / f"run_{2 if mode == 'new_run' else 1}"
    statuses = {r["order_id"]: r["status"] for r in rows(filled_in / "orders.parquet")}
    assert statuses[buy_id] == statuses[sell_id] == "FILLED"
    assert final_orders(out) == ref["orders"]
    assert not all_rows(out, "orders", "order_id", "status = 'FAILED'")
    assert all_rows(out, "orders", "reason", "status = 'REJECTED'") == [
        ("insufficient_buying_power",),
        ("insufficient_position",),
    ]
    stats = final_stats(out)
    assert stats["trade_result"] == ref["stats"]["trade_result"]
    assert stats["trade_pnl"]["realized_pnl"] == pytest.approx(
        ref["stats"]["trade_pnl"]["realized_pnl"]
    )
    assert stats["total_fees"] == pytest.approx(ref["stats"]["total_fees"])
    assert verify_path(out) == {}
    assert not (filled_in / JOURNAL_DIR / ACCEPTED_FILE).exists()


CANCELLED = {2: [("market_buy", 1.0)], 5: [("limit_buy", 95.0)], 7: [("cancel", 0.0)]}


@pytest.mark.parametrize("mode", ["new_run", "retry"])
@pytest.mark.parametrize("snapshot_after", [3, 6], ids=["state-before-order", "state-resting"])
def test_order_cancelled_before_the_crash_stays_cancelled(
    make_settings: Any, tmp_path: Path, mode: Mode, snapshot_after: int
) -> None:
    clock = FakeClock(T0)
    ref = reference(settings_for(make_settings, tmp_path / "ref"), clock, CANCELLED, at=8)
    settings = settings_for(make_settings, tmp_path / "out")
    out = Path(settings.session.data_output)
    placed: list[Order] = []
    plan, _ = run_crashing(
        settings,
        clock,
        CANCELLED,
        snapshot_after=snapshot_after,
        crash_after=8,
        callbacks=EngineCallbacks(on_order_placed=placed.append),
    )
    [limit_id] = placed_ids(placed, OrderType.LIMIT, Side.BUY)

    _, engine = restart(settings, clock, CANCELLED, plan, mode)
    assert engine.open_orders() == []
    assert engine.broker.open_orders() == []
    assert book(engine) == ref["at_crash"]
    assert book(engine)["reserved"] == {}
    engine.run()  # minute 12 crosses 95: a resurrected order would fill there
    final = book(engine, with_prices=True)
    engine.stop()

    assert final == ref["final"]
    assert not all_rows(out, "trades", "order_id", f"order_id = '{limit_id}'")
    assert all_rows(out, "orders", "status, reason", f"order_id = '{limit_id}'") == [
        ("CANCELLED", "cancelled")
    ]
    assert all_rows(out, "trades", FILL_COLS) == ref["fills"]
    assert verify_path(out) == {}


@pytest.mark.parametrize("mode", ["new_run", "retry"])
@pytest.mark.parametrize("kind", [OrderType.LIMIT, OrderType.MARKET])
def test_intent_the_broker_never_received_fails_and_is_never_sent(
    make_settings: Any, tmp_path: Path, mode: Mode, kind: OrderType
) -> None:
    clock = FakeClock(T0)
    settings = settings_for(make_settings, tmp_path / "out")
    out = Path(settings.session.data_output)
    action = ("limit_buy", 95.0) if kind is OrderType.LIMIT else ("market_buy", 1.0)
    script = {2: [("market_buy", 1.0)], 5: [action]}
    placed: list[Order] = []

    def die_before_submit(order: Order) -> None:
        placed.append(order)
        if order.timestamp == minute(5):
            # The intent row is durable; the process dies before the broker hears of it.
            raise Killed

    before = CountingPaperBroker()
    plan = start_session(settings, session_id=SID, clock=clock, first_date=DAY)
    with pytest.raises(Killed):
        run_crashing(
            settings,
            clock,
            script,
            plan,
            snapshot_after=3,
            crash_after=N_BARS - 1,
            broker=before,
            callbacks=EngineCallbacks(on_order_placed=die_before_submit),
        )
    intent = placed[-1]
    assert intent.order_type is kind
    assert intent.order_id not in before.submitted
    cash_at_crash = before.cash

    after = CountingPaperBroker()
    _, engine = restart(settings, clock, script, plan, mode, broker=after)
    assert engine.open_orders() == []
    state = book(engine)
    assert state["resting"] == []
    assert state["reserved"] == {}
    assert state["cash"] == cash_at_crash
    engine.run()  # minute 12 crosses 95; the bar at minute 5 is not traded again
    engine.stop()

    assert intent.order_id not in after.submitted
    [(status, reason, message)] = all_rows(
        out, "orders", "status, reason, message", f"order_id = '{intent.order_id}'"
    )
    assert (status, reason) == ("FAILED", "lost_on_restart")
    assert "not sent again" in message
    assert not all_rows(out, "trades", "order_id", f"order_id = '{intent.order_id}'")
    assert len(all_rows(out, "trades", "order_id")) == 1  # the market buy of minute 2
    assert verify_path(out) == {}


def test_paper_replay_order_rests_with_the_submit_reservation_and_drops_ended() -> None:
    order = Order(
        order_id="o1",
        symbol=SYMBOL,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=1.0,
        price=95.0,
        timestamp=minute(0),
        status=OrderStatus.PENDING,
        strategy_name="t",
        position_type=PositionType.LONG,
    )
    live = CountingPaperBroker()
    live.submit(order, BARS[0])
    restored = CountingPaperBroker()
    restored.replay_order(order)
    restored.replay_order(order)  # already resting: unchanged
    assert restored.save_state() == live.save_state()
    assert restored.save_state()["reserved"] == {"o1": pytest.approx(95.095)}
    assert restored.submitted == []
    restored.replay_order(replace(order, status=OrderStatus.CANCELLED))
    assert restored.open_orders() == []
    assert restored.save_state()["reserved"] == {}
    restored.replay_order(replace(order, order_id="o2", order_type=OrderType.MARKET))
    assert restored.open_orders() == []  # a MARKET order never rests


# Market orders only: nothing is journaled as accepted, so in batched mode every order and
# fill waits for the next flush together with its bar.
MARKETS = {
    2: [("market_buy", 1.0)],
    6: [("market_sell", 1.0)],
    9: [("market_buy", 1.0)],
    13: [("market_sell", 1.0)],
}


@pytest.mark.parametrize("mode", ["new_run", "retry"])
def test_batched_paper_orders_are_lost_with_their_bars_and_redone_once(
    make_settings: Any, tmp_path: Path, mode: Mode
) -> None:
    clock = FakeClock(T0)
    ref = reference(settings_for(make_settings, tmp_path / "ref", "batched"), clock, MARKETS, at=10)
    settings = settings_for(make_settings, tmp_path / "out", "batched")
    out = Path(settings.session.data_output)
    plan, crashed = run_crashing(settings, clock, MARKETS, snapshot_after=3, crash_after=10)
    # The crashed process had filled the orders of minutes 6 and 9 in memory...
    assert crashed.stats is not None
    assert crashed.stats.daily_block()["trade_result"]["number_of_trades"] == 3
    # ...but its files hold nothing after the flush of minute 3: those fills went down with
    # the bars they were decided on (a clean prefix, never a fill without its bar).
    folder = out / DAY.isoformat() / "run_1"
    journal = folder / JOURNAL_DIR / "durable.jsonl"
    assert not journal.exists() or journal.stat().st_size == 0
    assert len(rows(folder / "market_data.parquet")) == 4
    assert len(rows(folder / "trades.parquet")) == 1

    _, engine = restart(settings, clock, MARKETS, plan, mode)
    engine.run()
    final = book(engine, with_prices=True)
    engine.stop()

    assert final == ref["final"]
    assert all_rows(out, "trades", FILL_COLS) == ref["fills"]
    assert final_orders(out) == ref["orders"]
    assert not all_rows(out, "orders", "order_id", "status = 'FAILED'")
    bars = all_rows(out, "market_data", "time")
    assert len(bars) == len(set(bars)) == N_BARS
    stats = final_stats(out)
    assert stats["trade_result"] == ref["stats"]["trade_result"]
    assert stats["trade_pnl"]["realized_pnl"] == pytest.approx(
        ref["stats"]["trade_pnl"]["realized_pnl"]
    )
    assert verify_path(out) == {}
