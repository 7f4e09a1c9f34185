from __future__ import annotations

from typing import Any

import pytest

from argo_engine.clock import FakeClock
from argo_engine.session import open_engine, run_session, start_session
from argo_engine.settings import ArgoSettings, load_settings
from tests.engine.helpers import utc, wave_bars, write_replay


@pytest.fixture(scope="package")
def fixture_output(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A generated 3-day, 2-run data output: two sessions over the same three dates."""
    root = tmp_path_factory.mktemp("tools")
    bars = wave_bars(["BTCUSDT", "ETHUSDT"], utc(2025, 10, 1, 20, 0), 2 * 1440 + 120, period=45)
    replay = write_replay(root / "bars.parquet", bars)
    out = root / "out"
    sessions = []
    for name, strategy in (("alpha", "rsi"), ("beta", "ma_cross")):
        settings = load_settings(
            None,
            session={"data_output": str(out), "symbols": ["BTCUSDT", "ETHUSDT"],
                     "session_id": name},
            feed={"kind": "replay", "replay_file": str(replay)},
            strategy={"name": strategy},
        )  # fmt: skip
        plan, _ = run_session(settings, clock=FakeClock(utc(2025, 10, 1)))
        sessions.append((name, plan.run_number))
    return {"out": out, "sessions": sessions}


@pytest.fixture(scope="package")
def resumed_session(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 5-date session of the synthetic feed and paper broker, started twice.

    The first start stops at noon of 2025-10-02; the second resumes the session there (a new
    run, run_2), so 2025-10-02 has two runs of the session. Capital 25,000 (not the default).
    """
    out = tmp_path_factory.mktemp("resumed") / "out"
    clock = FakeClock(utc(2025, 10, 1))

    def settings(start: str, end: str) -> ArgoSettings:
        return load_settings(
            None,
            session={"data_output": str(out), "symbols": ["BTCUSDT", "ETHUSDT"],
                     "session_id": "multi", "initial_capital": 25_000.0},
            feed={"kind": "synthetic", "start": start, "end": end},
        )  # fmt: skip

    run_session(settings("2025-10-01T09:00Z", "2025-10-02T12:00Z"), clock=clock)
    second = settings("2025-10-02T12:00Z", "2025-10-05T06:00Z")
    run_session(second, plan=start_session(second, session_id="multi", clock=clock), clock=clock)
    return {"out": out, "session": "multi", "two_runs": "2025-10-02", "capital": 25_000.0}


@pytest.fixture(scope="package")
def crashed_session(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 3-date session killed 10 hours in (an engine abandoned without a stop, as kill -9
    leaves it) and started again: 2025-10-02 has the crashed run_1 and the new run_2."""
    root = tmp_path_factory.mktemp("crashed")
    bars = wave_bars(["BTCUSDT", "ETHUSDT"], utc(2025, 10, 1, 20, 0), 2 * 1440 + 120, period=45)
    settings = load_settings(
        None,
        session={"data_output": str(root / "out"), "symbols": ["BTCUSDT", "ETHUSDT"],
                 "session_id": "crashed", "initial_capital": 10_000.0},
        feed={"kind": "replay", "replay_file": str(write_replay(root / "bars.parquet", bars))},
    )  # fmt: skip
    clock = FakeClock(utc(2025, 10, 1))
    plan = start_session(settings, session_id="crashed", clock=clock)
    engine = open_engine(settings, plan, plan.first_date, clock=clock)
    engine.start()
    for bar in bars[: 2 * 600]:
        clock.advance(0.001)
        engine.process_bar(bar)
    assert engine.writers is not None
    engine.writers.wait()
    resumed = start_session(settings, session_id="crashed", clock=clock)
    run_session(settings, plan=resumed, clock=clock)
    return {"out": root / "out", "session": "crashed", "two_runs": "2025-10-02",
            "capital": 10_000.0}  # fmt: skip
