"""Stats definitions of DESIGN.md on hand-worked examples, plus a property test."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from argo_engine.domain.enums import PositionType, Side
from argo_engine.domain.ledger import Ledger, PnlMethod
from argo_engine.domain.market import Bar
from argo_engine.domain.orders import Fill
from argo_engine.engine.stats import StatsTracker, StrategyInfo

T0 = datetime(2025, 10, 1, 9, tzinfo=UTC)


def fill(
    side: Side,
    qty: float,
    price: float,
    fee: float = 0.0,
    minutes: int = 0,
    ptype: PositionType = PositionType.LONG,
    symbol: str = "BTCUSDT",
) -> Fill:
    at = T0 + timedelta(minutes=minutes)
    return Fill(
        trade_id=f"t{minutes}-{side}-{qty}",
        order_id=f"o{minutes}",
        symbol=symbol,
        side=side,
        quantity=qty,
        price=price,
        timestamp=at,
        executed_at=at,
        executed_qty=qty,
        executed_price=price,
        commission=fee,
        position_type=ptype,
    )


def tracker(method: PnlMethod = PnlMethod.FIFO, capital: float = 10_000.0) -> StatsTracker:
    return StatsTracker(
        session_id="s",
        run_id="run_1",
        symbols=["BTCUSDT"],
        initial_capital=capital,
        pnl_method=method,
        session_start=T0,
        strategy=StrategyInfo("id", "1", "rsi"),
        trading_date=date(2025, 10, 1),
    )


def bar(close: float, minutes: int, symbol: str = "BTCUSDT") -> Bar:
    return Bar(symbol, T0 + timedelta(minutes=minutes), close, close, close, close, 1.0)


def test_fifo_long_with_fees_pro_rated() -> None:
    s = tracker(PnlMethod.FIFO)
    s.record_fill(fill(Side.BUY, 2, 100, fee=2.0, minutes=0))  # lot A: 2 @ 100, fee 1/unit
    s.record_fill(fill(Side.BUY, 1, 110, fee=1.0, minutes=1))  # lot B: 1 @ 110, fee 1/unit
    # SELL 2 @ 120 fee 2: matches lot A fully: 2*120 - 2 - (2*100 + 2) = 36
    f = s.record_fill(fill(Side.SELL, 2, 120, fee=2.0, minutes=10))
    assert f.pnl == pytest.approx(36.0)
    # SELL 1 @ 105 fee 0.5: lot B: 105 - 0.5 - (110 + 1) = -6.5
    f = s.record_fill(fill(Side.SELL, 1, 105, fee=0.5, minutes=20))
    assert f.pnl == pytest.approx(-6.5)
    c = s.cumulative_block()
    assert c["trade_result"]["number_of_trades"] == 4
    assert c["trade_result"]["number_of_winning_trades"] == 1
    assert c["trade_result"]["number_of_losing_trades"] == 1
    assert c["trade_result"]["win_rate"] == pytest.approx(0.5)
    assert c["trade_pnl"]["realized_pnl"] == pytest.approx(29.5)
    assert c["trade_pnl"]["maximum_profit"] == pytest.approx(36.0)
    assert c["trade_pnl"]["maximum_loss"] == pytest.approx(-6.5)
    assert c["total_fees"] == pytest.approx(5.5)
    # Holding: lot A 0 -> 10 min (600 s), lot B 1 -> 20 min (1140 s).
    assert c["trade_holding_time"] == {"min": 600, "max": 1140, "avg": 870}


def test_average_cost_long() -> None:
    s = tracker(PnlMethod.AVERAGE_COST)
    s.record_fill(fill(Side.BUY, 2, 100, fee=2.0, minutes=0))
    s.record_fill(fill(Side.BUY, 1, 110, fee=1.0, minutes=1))
    # Basis incl. fees = 202 + 111 = 313 for 3 units -> 104.333.. per unit.
    f = s.record_fill(fill(Side.SELL, 2, 120, fee=2.0, minutes=10))
    assert f.pnl == pytest.approx(240 - 2 - 2 * 313 / 3)
    f = s.record_fill(fill(Side.SELL, 1, 105, fee=0.5, minutes=20))
    assert f.pnl == pytest.approx(105 - 0.5 - 313 / 3)
    assert s.realized_pnl == pytest.approx(240 - 2 + 105 - 0.5 - 313)


def test_short_round_trip_loses_1002() -> None:
    s = tracker()
    s.record_fill(fill(Side.BUY, 100, 100, fee=1.0, ptype=PositionType.SHORT))
    f = s.record_fill(fill(Side.SELL, 100, 110, fee=1.0, minutes=5, ptype=PositionType.SHORT))
    # Short: entry 100*100 - 1 = 9999 received; cover 100*110 + 1 = 11001 paid.
    assert f.pnl == pytest.approx(-1002.0)


def test_short_unrealized_and_partial_close() -> None:
    s = tracker(capital=100_000)
    s.record_fill(fill(Side.BUY, 10, 50, fee=1.0, ptype=PositionType.SHORT))
    s.on_bar(bar(45, 1))
    # Remaining basis = 500 - 1 = 499 received; liability 10*45 = 450: unrealized 49.
    assert s.unrealized_pnl == pytest.approx(49.0)
    f = s.record_fill(fill(Side.SELL, 4, 45, fee=0.4, minutes=2, ptype=PositionType.SHORT))
    # 4 units: (50 - 0.1)*4 - (45*4 + 0.4) = 199.6 - 180.4 = 19.2
    assert f.pnl == pytest.approx(19.2)


def test_drawdown_fraction_and_abs_and_daily_reset() -> None:
    s = tracker(capital=1_000.0)
    s.record_fill(fill(Side.BUY, 10, 100))  # all-in: equity follows 10 * close
    for i, close in enumerate([100, 110, 99, 104, 121, 115]):
        s.on_bar(bar(close, i + 1))
    c = s.cumulative_block()["trade_result"]
    # Equity: 1000, 1100, 990, 1040, 1210, 1150 -> worst drop 1100 -> 990 = 110 (10%).
    assert c["max_drawdown"] == pytest.approx(0.10)
    assert c["max_drawdown_abs"] == pytest.approx(110.0)
    final = s.roll_day(date(2025, 10, 2))
    assert final["trade_result"]["max_drawdown"] == pytest.approx(0.10)
    s.on_bar(bar(112, 10))  # equity 1120 < 1150: 30 down on the new day's own peak
    d = s.daily_block()["trade_result"]
    assert d["max_drawdown_abs"] == pytest.approx(30.0)
    assert d["max_drawdown"] == pytest.approx(30 / 1150)
    assert s.daily_block()["trade_result"]["number_of_trades"] == 0
    assert s.cumulative_block()["trade_result"]["number_of_trades"] == 1


def test_win_rate_zero_without_closing_fills_and_state_round_trip() -> None:
    s = tracker()
    s.record_fill(fill(Side.BUY, 1, 100, fee=0.1))
    assert s.cumulative_block()["trade_result"]["win_rate"] == 0.0
    state = s.to_state()
    import json

    restored = StatsTracker.from_state(
        json.loads(json.dumps(state)),
        session_id="s",
        run_id="run_1",
        symbols=["BTCUSDT"],
        initial_capital=10_000.0,
        pnl_method=PnlMethod.FIFO,
        session_start=T0,
        strategy=StrategyInfo("id", "1", "rsi"),
        trading_date=date(2025, 10, 1),
    )
    for t in (s, restored):
        t.record_fill(fill(Side.SELL, 1, 120, fee=0.1, minutes=3))
    assert restored.cumulative_block() == s.cumulative_block()
    assert restored.daily_block() == s.daily_block()


def test_document_key_layout(tmp_path: Path) -> None:
    s = tracker()
    doc = s.document(now=T0, run_folder=tmp_path)
    assert list(doc) == [
        "id",
        "session_id",
        "date",
        "session_start",
        "last_updated",
        "symbols",
        "trade_result",
        "trade_pnl",
        "trade_holding_time",
        "total_fees",
        "orders_file_path",
        "trades_file_path",
        "marks_file_path",
        "logs_file_path",
        "market_data_file_path",
        "strategy",
        "daily",
        "cumulative",
    ]
    for block in (doc["daily"], doc["cumulative"]):
        assert list(block) == ["trade_result", "trade_pnl", "trade_holding_time", "total_fees"]
        assert list(block["trade_result"])[:5] == [
            "number_of_trades",
            "number_of_winning_trades",
            "number_of_losing_trades",
            "win_rate",
            "max_drawdown",
        ]
        assert list(block["trade_pnl"]) == [
            "realized_pnl",
            "unrealized_pnl",
            "total_pnl",
            "maximum_loss",
            "maximum_profit",
        ]
        assert list(block["trade_holding_time"]) == ["min", "max", "avg"]
    assert list(doc["strategy"]) == ["id", "version", "name"]
    assert doc["trades_file_path"] == str(tmp_path / "trades.parquet")
    for key in ("trade_result", "trade_pnl", "trade_holding_time", "total_fees"):
        assert doc[key] == doc["cumulative"][key]


# -- property: realized + unrealized == mark-to-market equity change -------------------------

steps = st.lists(
    st.tuples(
        st.sampled_from(["BUY", "SELL"]),
        st.sampled_from([PositionType.LONG, PositionType.SHORT]),
        st.floats(min_value=0.01, max_value=5.0),
        st.floats(min_value=1.0, max_value=500.0),
        st.floats(min_value=0.0, max_value=2.0),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(steps=steps, method=st.sampled_from(list(PnlMethod)), last=st.floats(1.0, 500.0))
def test_realized_plus_unrealized_equals_mark_to_market(
    steps: list[tuple[str, PositionType, float, float, float]], method: PnlMethod, last: float
) -> None:
    ledger = Ledger(method)
    cash = 0.0
    realized = 0.0
    qty = {PositionType.LONG: 0.0, PositionType.SHORT: 0.0}
    for i, (side_name, ptype, q, price, fee) in enumerate(steps):
        side = Side(side_name)
        if side is Side.SELL:
            q = min(q, qty[ptype])  # sells never exceed the position
            if q <= 1e-9:
                continue
        out = ledger.apply(
            symbol="X",
            side=side,
            position_type=ptype,
            qty=q,
            price=price,
            fee=fee,
            time=T0 + timedelta(minutes=i),
        )
        realized += out.pnl
        long = ptype is PositionType.LONG
        notional = q * price
        if side is Side.BUY:
            cash += -(notional + fee) if long else notional - fee
            qty[ptype] += q
        else:
            cash += notional - fee if long else -(notional + fee)
            qty[ptype] -= q
    mtm = cash + qty[PositionType.LONG] * last - qty[PositionType.SHORT] * last
    total = realized + ledger.unrealized({"X": last})
    assert total == pytest.approx(mtm, rel=1e-6, abs=1e-6)
