"""What a strategy sees through ``ctx.account()`` after a restart is what an uninterrupted run saw.

In-process and deterministic: the engine is driven bar by bar with a FakeClock, waits for its
flusher after each bar, and is then abandoned without a stop (what a kill -9 leaves on disk).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from argo_engine.clock import FakeClock
from argo_engine.domain.enums import OrderType, Side
from argo_engine.domain.market import Bar
from argo_engine.domain.orders import OrderIntent
from argo_engine.session import open_engine, run_session, start_session
from argo_engine.settings import ArgoSettings, load_settings
from argo_engine.strategies.base import Strategy, StrategyConfig, StrategyContext
from tests.engine.helpers import session_rows, utc, write_replay

BTC, ETH = "BTCUSDT", "ETHUSDT"
T0 = utc(2025, 10, 1, 9, 0)
# BTC stays at 10; ETH jumps from 100 to 150 at t3. Bars stream as (time, symbol): BTC first.
ETH_CLOSES = [100.0, 100.0, 100.0, 150.0, 150.0, 150.0]
BARS = [
    bar
    for i, eth in enumerate(ETH_CLOSES)
    for bar in (
        Bar(BTC, T0 + timedelta(minutes=i), 10.0, 10.0, 10.0, 10.0, 1.0),
        Bar(ETH, T0 + timedelta(minutes=i), eth, eth, eth, eth, 1.0),
    )
]


class _Cfg(StrategyConfig):
    pass


class AccountProbe(Strategy):
    """Buys 1 ETH at market on ETH's t1 bar, rests a far LIMIT BUY on ETH's t3 bar, sells the
    ETH at market on BTC's t4 bar.

    Records what ``ctx.account()`` reports on every bar it sees.
    """

    name = "account-probe"
    strategy_id = "tests.account_probe"
    config_model = _Cfg

    def __init__(self) -> None:
        self.seen: dict[tuple[str, datetime], tuple[float, float]] = {}

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> None:
        account = ctx.account()
        self.seen[(bar.symbol, bar.time)] = (account.equity, account.unrealized_pnl)
        if bar.symbol != ETH:
            if bar.time == T0 + timedelta(minutes=4):
                ctx.place_order(OrderIntent(symbol=ETH, side=Side.SELL, quantity=1.0))
            return
        if bar.time == T0 + timedelta(minutes=1):
            ctx.place_order(OrderIntent(symbol=ETH, side=Side.BUY, quantity=1.0))
        elif bar.time == T0 + timedelta(minutes=3):
            # Its acceptance (per_order) makes every bar so far durable without a new state.
            ctx.place_order(
                OrderIntent(
                    symbol=ETH, side=Side.BUY, quantity=1.0, order_type=OrderType.LIMIT, price=1.0
                )
            )


def _settings(tmp_path: Path, name: str) -> ArgoSettings:
    return load_settings(
        None,
        session={
            "data_output": str(tmp_path / name),
            "symbols": [BTC, ETH],
            "session_id": "s1",
            "initial_capital": 1000.0,
        },
        feed={"kind": "replay", "replay_file": str(write_replay(tmp_path / "bars.parquet", BARS))},
        broker={"commission": "zero"},
        persistence={"paper_fsync": "per_order"},
    )


@pytest.mark.parametrize("resume", ["retry", "new_run"])
def test_account_on_the_first_bars_after_a_restart_marks_every_symbol_at_its_last_close(
    tmp_path: Path, resume: str
) -> None:
    # The last state saved before the crash knows ETH at 100 at most; ETH's t3 bar (150)
    # reaches the journal without a new state (with the LIMIT's acceptance). After a crash
    # there, the first bar after the restart is BTC's t4: the account must value the ETH held
    # at 150 (equity 1,050, as the uninterrupted run sees it), not at the saved state's price;
    # and a MARKET SELL of ETH placed on that BTC bar fills at ETH's last close, 150.
    reference = AccountProbe()
    run_session(_settings(tmp_path, "straight"), clock=FakeClock(T0), strategy=reference)

    settings = _settings(tmp_path, "crashed")
    clock = FakeClock(T0)
    plan = start_session(settings, session_id="s1", clock=clock)
    before = AccountProbe()
    engine = open_engine(settings, plan, T0.date(), clock=clock, strategy=before)
    engine.start()
    for bar in BARS[:8]:
        clock.advance(0.001)
        engine.process_bar(bar)
        assert engine.writers is not None
        engine.writers.wait()
    # Crash after ETH's t3 bar; the session resumes in the same run (a Prefect retry) or in a
    # new one (a new start), and runs to the end.
    resumed = plan if resume == "retry" else start_session(settings, session_id="s1", clock=clock)
    after = AccountProbe()
    run_session(settings, plan=resumed, clock=clock, strategy=after)

    # Zero fees and round prices: the figures are exact.
    assert reference.seen[(BTC, T0 + timedelta(minutes=4))] == (1050.0, 50.0)
    rest = [k for k in reference.seen if k not in before.seen]
    assert rest[0] == (BTC, T0 + timedelta(minutes=4))
    assert after.seen == {k: reference.seen[k] for k in rest}
    sells = [
        [(r[1], r[8], r[10]) for r in session_rows(tmp_path / name, "trades") if r[2] == "SELL"]
        for name in ("straight", "crashed")
    ]
    # (symbol, executed_price, pnl), by their places in the trades schema of DESIGN.md.
    assert sells[0] == sells[1] == [(ETH, 150.0, 50.0)]
