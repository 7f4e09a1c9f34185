from __future__ import annotations

from typing import Any

import pytest

from argo_engine.clock import FakeClock
from argo_engine.session import run_session
from argo_engine.settings import load_settings
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
