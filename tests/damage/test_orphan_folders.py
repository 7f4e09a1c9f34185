"""Run folders whose run.yaml is unreadable: adopted by their session, or the start refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from argo_engine.clock import FakeClock
from argo_engine.errors import RecoveryError
from argo_engine.persistence.runs import find_session_runs, read_run_yaml
from argo_engine.session import run_session, start_session
from argo_engine.testing.feeds import ListFeed
from tests.engine.helpers import utc, wave_bars

BARS = wave_bars(["BTCUSDT"], utc(2025, 10, 1, 0, 0), 60)


def _finished(make_settings: Any, sid: str) -> Any:
    settings = make_settings(session={"symbols": ["BTCUSDT"], "session_id": sid})
    run_session(settings, clock=FakeClock(utc(2025, 10, 1)), feed=ListFeed(BARS))
    return settings


def _orphan(out: Path) -> Path:
    """A folder holding bars but no trace of its session, its run.yaml garbled."""
    folder = out / "2025-10-01" / "run_7"
    folder.mkdir(parents=True)
    source = out / "2025-10-01" / "run_1" / "market_data.parquet"
    (folder / "market_data.parquet").write_bytes(source.read_bytes())
    (folder / "run.yaml").write_text("{{{{")
    return folder


def test_untraceable_folder_in_a_shared_output_refuses_the_start(make_settings: Any) -> None:
    settings = _finished(make_settings, "alpha")
    out = Path(settings.session.data_output)
    folder = _orphan(out)
    with pytest.raises(RecoveryError, match=str(folder)):
        start_session(settings, session_id="beta", clock=FakeClock(utc(2025, 10, 1, 2)))
    assert (folder / "run.yaml").read_text() == "{{{{"  # nothing touched


def test_untraceable_folder_of_a_single_session_output_is_adopted(make_settings: Any) -> None:
    settings = _finished(make_settings, "alpha")
    out = Path(settings.session.data_output)
    folder = _orphan(out)
    start_session(settings, session_id="alpha", clock=FakeClock(utc(2025, 10, 1, 2)))
    info = read_run_yaml(folder)
    assert info is not None
    assert (info.session_id, info.run_number, info.strategy) == ("alpha", 7, "rsi")
    assert folder in [f for _, _, f in find_session_runs(out, "alpha")]


def test_folder_named_by_its_state_goes_to_its_own_session_only(make_settings: Any) -> None:
    settings = _finished(make_settings, "alpha")
    out = Path(settings.session.data_output)
    folder = out / "2025-10-01" / "run_1"
    (folder / "run.yaml").write_text("")
    # Another session's start leaves it alone (its state names alpha)...
    start_session(settings, session_id="beta", clock=FakeClock(utc(2025, 10, 1, 2)))
    assert (folder / "run.yaml").read_text() == ""
    # ...and alpha's start rebuilds it.
    start_session(settings, session_id="alpha", clock=FakeClock(utc(2025, 10, 1, 3)))
    info = read_run_yaml(folder)
    assert info is not None
    assert info.session_id == "alpha"
