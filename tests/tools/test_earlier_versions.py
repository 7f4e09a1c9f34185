"""Run folders written by an earlier version (trades.parquet without base_commission)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from argo_engine.clock import FakeClock
from argo_engine.persistence.schema import TRADES
from argo_engine.session import run_session
from argo_engine.tools.catalog import connect
from argo_engine.verify import verify_path
from tests.engine.helpers import utc, wave_bars, write_replay
from tests.engine.strategies import ScheduledTrader


def run(make_settings: Any, tmp_path: Path, session_id: str) -> Path:
    """A short paper session (one buy, one sell) into ``tmp_path / "out"``; its run folder."""
    bars = wave_bars(["BTCUSDT"], utc(2025, 10, 1, 9, 0), 10)
    settings = make_settings(
        session={"symbols": ["BTCUSDT"], "session_id": session_id},
        feed={"kind": "replay", "replay_file": str(write_replay(tmp_path / "bars.pq", bars))},
    )
    plan, _ = run_session(
        settings,
        clock=FakeClock(utc(2025, 10, 1, 8, 0)),
        strategy=ScheduledTrader("BTCUSDT", 1.0),
    )
    return tmp_path / "out" / "2025-10-01" / f"run_{plan.run_number}"


def downgrade(folder: Path) -> None:
    """Rewrite trades.parquet as earlier versions wrote it: without the added columns."""
    path = folder / "trades.parquet"
    old = folder / "old.parquet"
    added = ", ".join(name for name, _ in TRADES.added)
    duckdb.connect().execute(
        f"COPY (SELECT * EXCLUDE ({added}) FROM read_parquet('{path}')) TO '{old}'"
    )
    old.replace(path)


@pytest.mark.parametrize("upgraded_runs", [0, 1], ids=["all-old", "old-and-new"])
def test_verify_and_the_catalog_read_trades_of_an_earlier_version(
    make_settings: Any, tmp_path: Path, upgraded_runs: int
) -> None:
    folders = [run(make_settings, tmp_path, f"s{i}") for i in range(2)]
    for folder in folders[upgraded_runs:]:
        downgrade(folder)

    assert verify_path(tmp_path / "out") == {}
    con = connect(tmp_path / "out")
    got = con.execute(
        "SELECT run, side, base_commission FROM trades ORDER BY run, executed_at"
    ).fetchall()
    assert got == [(f"run_{n}", side, 0.0) for n in (1, 2) for side in ("BUY", "SELL")]


def test_verify_still_reports_a_trades_file_missing_an_original_column(
    make_settings: Any, tmp_path: Path
) -> None:
    folder = run(make_settings, tmp_path, "s")
    path = folder / "trades.parquet"
    old = folder / "old.parquet"
    duckdb.connect().execute(
        f"COPY (SELECT * EXCLUDE (commission_asset, base_commission) "
        f"FROM read_parquet('{path}')) TO '{old}'"
    )
    old.replace(path)
    [problems] = verify_path(tmp_path / "out").values()
    assert [p for p in problems if "columns" in p] == [
        f"{path}: columns {list(TRADES.columns[:-2])} differ from {list(TRADES.columns)}"
    ]
