"""Which saved state a restart resumes from: the one furthest along the market."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import orjson

from argo_engine.engine.core import STATE_FILE, STATE_VERSION
from argo_engine.persistence.runs import RunInfo, write_run_yaml
from argo_engine.persistence.schema import JOURNAL_DIR
from argo_engine.session import find_resume_state

DAY = date(2025, 10, 1)


def _run_with_state(out: Path, n: int, last_bar: str, saved_at: str) -> None:
    folder = out / DAY.isoformat() / f"run_{n}"
    (folder / JOURNAL_DIR).mkdir(parents=True)
    write_run_yaml(
        folder,
        RunInfo(
            session_id="s",
            run_id=f"run_{n}",
            run_number=n,
            date=DAY,
            strategy="rsi",
            symbols=("BTCUSDT",),
            interval="1m",
            start_time=datetime(2025, 10, 1, tzinfo=UTC),
        ),
    )
    state = {
        "version": STATE_VERSION,
        "run_number": n,
        "saved_at": saved_at,
        "last_time": {"BTCUSDT": last_bar},
    }
    (folder / JOURNAL_DIR / STATE_FILE).write_bytes(orjson.dumps(state))


def test_a_wall_clock_set_back_between_starts_does_not_pick_an_older_state(
    tmp_path: Path,
) -> None:
    # run_1 counted bars up to 10:00; run_2 resumed from it and counted up to 12:00, but its
    # host's clock was an hour behind, so its saves carry earlier wall-clock times.
    _run_with_state(tmp_path, 1, "2025-10-01T10:00:00+00:00", "2026-11-30T09:00:00+00:00")
    _run_with_state(tmp_path, 2, "2025-10-01T12:00:00+00:00", "2026-11-30T08:30:00+00:00")
    state = find_resume_state(tmp_path, "s", 3, DAY)
    assert state is not None
    assert state["run_number"] == 2


def test_equal_progress_goes_to_the_later_run_then_the_later_save(tmp_path: Path) -> None:
    _run_with_state(tmp_path, 1, "2025-10-01T10:00:00+00:00", "2026-11-30T09:00:00+00:00")
    _run_with_state(tmp_path, 2, "2025-10-01T10:00:00+00:00", "2026-11-30T08:00:00+00:00")
    state = find_resume_state(tmp_path, "s", 3, DAY)
    assert state is not None
    assert state["run_number"] == 2
    # The run's own folder of that date is left to the engine (it reloads it itself).
    state = find_resume_state(tmp_path, "s", 2, DAY)
    assert state is not None
    assert state["run_number"] == 1
