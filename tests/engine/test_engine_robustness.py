"""Bad strategies, corrupt files and resumed sessions: recorded, never fatal, nothing lost."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from argo_engine.clock import FakeClock
from argo_engine.domain.enums import EngineStatus
from argo_engine.engine.callbacks import EngineCallbacks
from argo_engine.session import run_session
from argo_engine.testing.feeds import ListFeed
from argo_engine.verify import verify_path
from tests.engine.strategies import GarbageStrategy, OneOfEachStrategy, SlowStrategy

from .helpers import rows, utc, wave_bars, write_replay


def _folder(settings: Any, plan: Any, day: str = "2025-10-01") -> Path:
    return Path(settings.session.data_output) / day / f"run_{plan.run_number}"


def test_garbage_orders_are_recorded_not_fatal(make_settings: Any) -> None:
    bars = wave_bars(["BTCUSDT"], utc(2025, 10, 1, 0, 0), 30)
    settings = make_settings(session={"symbols": ["BTCUSDT"]})
    errors: list[Any] = []
    plan, _ = run_session(
        settings,
        clock=FakeClock(utc(2025, 10, 1)),
        feed=ListFeed(bars),
        strategy=GarbageStrategy(),
        callbacks=EngineCallbacks(on_strategy_error=lambda b, e: errors.append(e)),
    )
    folder = _folder(settings, plan)
    assert len(rows(folder / "market_data.parquet")) == 30
    orders = rows(folder / "orders.parquet")
    reasons = sorted({o["reason"] for o in orders})
    assert reasons == ["invalid_quantity", "invalid_symbol"]
    assert all(o["status"] == "REJECTED" for o in orders)
    assert len(errors) == 10  # the dict "orders": StrategyError, bar skipped
    assert all("OrderIntent" in str(e) for e in errors)
    assert verify_path(folder) == {}


def test_slow_strategy_is_recorded(make_settings: Any) -> None:
    clock = FakeClock(utc(2025, 10, 1))
    bars = wave_bars(["BTCUSDT"], utc(2025, 10, 1, 0, 0), 30)
    settings = make_settings(session={"symbols": ["BTCUSDT"]}, strategy={"slow_bar_s": 2.0})
    errors: list[Any] = []
    plan, _ = run_session(
        settings,
        clock=clock,
        feed=ListFeed(bars),
        strategy=SlowStrategy(clock),
        callbacks=EngineCallbacks(on_strategy_error=lambda b, e: errors.append(e)),
    )
    assert len(errors) == 3
    logged = rows(_folder(settings, plan) / "logs.parquet", "SELECT * FROM t WHERE level='warning'")
    assert len(logged) == 3


def test_resume_fires_prefetch_gap_filling_and_provider_callbacks(
    make_settings: Any, tmp_path: Path
) -> None:
    bars = wave_bars(["BTCUSDT", "ETHUSDT"], utc(2025, 10, 1, 0, 0), 300)
    replay = write_replay(tmp_path / "b.parquet", bars)
    first = make_settings(
        session={"session_id": "resume-me"},
        feed={"kind": "replay", "replay_file": str(replay), "end": "2025-10-01T02:00:00Z"},
    )
    run_session(first, clock=FakeClock(utc(2025, 10, 1)))
    seen: dict[str, list[Any]] = defaultdict(list)
    callbacks = EngineCallbacks(
        on_prefetch_progress=lambda *a: seen["progress"].append(a),
        on_status_update=lambda s: seen["status"].append(s),
        on_provider_status_change=lambda s: seen["provider"].append(dict(s)),
    )
    second = make_settings(
        session={"session_id": "resume-me"}, feed={"kind": "replay", "replay_file": str(replay)}
    )
    plan, _ = run_session(second, clock=FakeClock(utc(2025, 10, 1, 3)), callbacks=callbacks)
    assert plan.run_number == 2
    assert sorted(p[0] for p in seen["progress"]) == ["BTCUSDT", "ETHUSDT"]
    assert all(p[1] == p[2] > 0 for p in seen["progress"])
    assert seen["status"] == [
        EngineStatus.PREFETCHING,
        EngineStatus.GAP_FILLING,
        EngineStatus.RUNNING,
        EngineStatus.STOPPED,
    ]
    assert [p["market_data_status"] for p in seen["provider"]] == ["connected", "disconnected"]
    out = Path(second.session.data_output)
    md = rows(out / "2025-10-01" / "run_2" / "market_data.parquet")
    assert len(md) == 2 * 180  # 02:00 -> 05:00: only what run_1 had not stored
    assert len(rows(out / "2025-10-01" / "run_1" / "market_data.parquet")) == 2 * 120


def test_corrupt_stats_yaml_and_state_are_moved_aside(make_settings: Any) -> None:
    bars = wave_bars(["BTCUSDT"], utc(2025, 10, 1, 0, 0), 60)
    settings = make_settings(session={"symbols": ["BTCUSDT"], "session_id": "corrupt"})
    plan, _ = run_session(settings, clock=FakeClock(utc(2025, 10, 1)), feed=ListFeed(bars[:30]))
    folder = _folder(settings, plan)
    (folder / "stats.yaml").write_text("daily: [unclosed\n  : :")
    (folder / ".journal" / "engine-state.json").write_bytes(b"{not json")
    from argo_engine.session import SessionPlan, open_engine

    engine = open_engine(
        settings,
        SessionPlan.from_dict(plan.to_dict()),
        plan.first_date,
        clock=FakeClock(utc(2025, 10, 1, 1)),
        feed=ListFeed(bars),
    )
    engine.run()
    engine.stop()
    names = sorted(p.name for p in folder.iterdir())
    assert any(n.startswith("stats.yaml.corrupt-") for n in names)
    assert any(p.name.startswith("engine-state.json.corrupt-")
               for p in (folder / ".journal").iterdir())  # fmt: skip
    assert len(rows(folder / "market_data.parquet")) == 60
    logged = rows(folder / "logs.parquet", "SELECT * FROM t WHERE message LIKE 'unreadable%'")
    assert len(logged) == 2
    assert verify_path(folder) == {}


def test_paper_order_outcomes_are_never_durable_before_their_intents(make_settings: Any) -> None:
    # Paper keeps its book in-process: an intent is fsynced together with its outcome. After
    # every bar nothing the bar journaled about bars, orders or fills may await an fsync.
    from datetime import date

    from argo_engine.session import open_engine, start_session

    bars = wave_bars(["BTCUSDT"], utc(2025, 10, 1, 0, 0), 5)
    settings = make_settings(session={"symbols": ["BTCUSDT"]})
    clock = FakeClock(utc(2025, 10, 1))
    plan = start_session(settings, clock=clock, first_date=date(2025, 10, 1))
    engine = open_engine(
        settings,
        plan,
        plan.first_date,
        clock=clock,
        feed=ListFeed(bars),
        strategy=OneOfEachStrategy(),
    )
    engine.start()
    placed: list[str] = []
    for bar in bars:
        engine.process_bar(bar)
        assert engine.writers is not None
        assert not engine.writers.awaiting_fsync
        placed = [f"{o.order_type}:{o.status}" for o in engine.open_orders()]
    engine.stop()
    assert placed == ["LIMIT:PENDING"]
    folder = _folder(settings, plan)
    statuses = sorted((o["order_type"], o["status"]) for o in rows(folder / "orders.parquet"))
    assert statuses == [("LIMIT", "PENDING"), ("MARKET", "FILLED")]
    assert len(rows(folder / "trades.parquet")) == 1
