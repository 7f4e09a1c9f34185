"""Order ids: unique across the sessions of a data output, and the sequence resumes after them.

Two sessions whose ids share a long prefix (generated ids started within the same ten
minutes, or names like ``btc-momentum-a`` / ``btc-momentum-b``) both write ``run_1`` when
their first dates differ. Their order ids must still differ: a venue account shared by both
keys its client order ids on them (see tests/integration/test_binance_recovery.py).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from argo_engine.clock import FakeClock
from argo_engine.domain.enums import OrderStatus, OrderType, PositionType, Side
from argo_engine.domain.market import Bar
from argo_engine.domain.orders import Order, OrderIntent
from argo_engine.engine.orders import _order_seq_of
from argo_engine.providers.binance.parsing import client_order_id
from argo_engine.session import new_session_id, open_engine, run_session, start_session
from argo_engine.settings import ArgoSettings, load_settings
from argo_engine.tools.catalog import connect
from tests.engine.helpers import utc, write_replay
from tests.engine.strategies import ScriptedOrders

SYMBOL = "BTCUSDT"


def _bars(day: int) -> list[Bar]:
    start = utc(2025, 10, day, 9, 0)
    return [
        Bar(SYMBOL, start + timedelta(minutes=i), 100.0, 100.0, 100.0, 100.0, 1.0) for i in range(4)
    ]


def _script(bars: list[Bar]) -> ScriptedOrders:
    return ScriptedOrders(
        {
            (SYMBOL, bars[1].time): [{"side": Side.BUY, "quantity": 1.0}],
            (SYMBOL, bars[2].time): [{"side": Side.SELL, "quantity": 1.0}],
        }
    )


def _settings(tmp_path: Path, out: Path, session_id: str, day: int) -> ArgoSettings:
    replay = write_replay(tmp_path / f"bars-{day}.parquet", _bars(day))
    return load_settings(
        None,
        session={"data_output": str(out), "symbols": [SYMBOL], "session_id": session_id},
        feed={"kind": "replay", "replay_file": str(replay)},
    )


def _generated_pair() -> tuple[str, str]:
    # Two sessions generated four minutes apart.
    first = new_session_id(FakeClock(utc(2025, 10, 1, 9, 1)))
    second = new_session_id(FakeClock(utc(2025, 10, 1, 9, 5)))
    return first, second


@pytest.mark.parametrize(
    "pair",
    [
        pytest.param(_generated_pair, id="generated"),
        pytest.param(lambda: ("btc-momentum-a", "btc-momentum-b"), id="named"),
        pytest.param(
            lambda: ("paper-btcusdt-rsi-14-fast", "paper-btcusdt-rsi-14-slow"), id="long-named"
        ),
    ],
)
def test_sessions_sharing_an_id_prefix_never_share_an_order_id(
    tmp_path: Path, pair: object
) -> None:
    assert callable(pair)
    first, second = pair()
    assert first[:12] == second[:12]  # the premise: what the ids used to start with
    out = tmp_path / "out"
    # Different first dates: both sessions are run_1 there.
    for session_id, day in ((first, 1), (second, 2)):
        settings = _settings(tmp_path, out, session_id, day)
        plan, _ = run_session(
            settings, clock=FakeClock(utc(2025, 10, day)), strategy=_script(_bars(day))
        )
        assert plan.run_number == 1
    con = connect(out)
    try:
        rows = con.execute("SELECT session_id, order_id FROM orders ORDER BY ALL").fetchall()
    finally:
        con.close()
    assert sorted({s for s, _ in rows}) == sorted([first, second])
    assert len(rows) == 4
    assert len({order_id for _, order_id in rows}) == 4
    # Venues take them as they are (Binance: 1-36 of [A-Za-z0-9._-]), so they stay readable.
    assert all(client_order_id(order_id) == order_id for _, order_id in rows)


@pytest.mark.parametrize(
    ("order_id", "run_number", "seq"),
    [
        ("s1-r1-000007", 1, 7),  # short session ids
        ("20251001T090-r2-000012", 2, 12),  # ids written before the full session part
        ("20251001T090-r2-000012", 1, 0),  # another run's
        ("btc-momentum-a-r3-000005", 3, 5),
        ("not-an-order-id", 1, 0),
    ],
)
def test_order_sequence_is_read_back_from_old_and_new_ids(
    order_id: str, run_number: int, seq: int
) -> None:
    assert _order_seq_of(order_id, run_number) == seq


def test_a_retry_numbers_its_next_order_after_ids_of_the_old_shape(tmp_path: Path) -> None:
    # A run folder written before order ids carried the whole session id: a retry of that run
    # reads its order ids back and numbers the next order after them.
    session_id = "20251001T090100-0a1b2c3d"
    bars = _bars(1)
    settings = _settings(tmp_path, tmp_path / "out", session_id, 1)
    clock = FakeClock(bars[0].time)
    plan = start_session(settings, session_id=session_id, clock=clock)
    day = date(2025, 10, 1)
    first = open_engine(settings, plan, day, clock=clock, warm_up=False)
    old_ids = [f"{session_id[:12]}-r1-{n:06d}" for n in (1, 2)]
    assert first.writers is not None
    for order_id in old_ids:
        first.writers.append_order(
            Order(
                order_id=order_id,
                symbol=SYMBOL,
                side=Side.BUY,
                order_type=OrderType.LIMIT,
                quantity=1.0,
                price=50.0,
                timestamp=bars[0].time,
                status=OrderStatus.CANCELLED,
                strategy_name="old",
                position_type=PositionType.LONG,
            )
        )
    first.writers.flush()
    first.writers.close()
    # The engine is gone without a stop; the retry reopens the run's folder.
    retry = open_engine(settings, plan, day, clock=clock, warm_up=False)
    retry.process_bar(bars[0])
    placed = retry.place_order(OrderIntent(symbol=SYMBOL, side=Side.BUY, quantity=1.0))
    retry.stop()
    assert placed.order_id not in old_ids
    assert _order_seq_of(placed.order_id, 1) == 3
