"""The README's main command, run as a user runs it (a subprocess in an empty folder)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

FILES = {
    "stats.yaml",
    "orders.parquet",
    "trades.parquet",
    "marks.parquet",
    "logs.parquet",
    "market_data.parquet",
    "run.yaml",
}


def _argo(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARGO_", "PREFECT_"))}
    env["PREFECT_HOME"] = str(cwd / ".prefect")
    exe = Path(sys.executable).with_name("argo")
    return subprocess.run(
        [str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def _check_layout(out: Path, bars_per_symbol: int) -> None:
    days = sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert days, "no trading date folder"
    total = 0
    for day in days:
        folder = day / "run_1"
        assert {p.name for p in folder.iterdir() if not p.name.startswith(".")} == FILES
        con = duckdb.connect()
        (orders,) = con.execute(
            f"SELECT count(*) FROM read_parquet('{folder / 'orders.parquet'}')"
        ).fetchone()  # type: ignore[misc]
        (trades,) = con.execute(
            f"SELECT count(*) FROM read_parquet('{folder / 'trades.parquet'}')"
        ).fetchone()  # type: ignore[misc]
        (bars,) = con.execute(
            f"SELECT count(*) FROM read_parquet('{folder / 'market_data.parquet'}')"
        ).fetchone()  # type: ignore[misc]
        con.close()
        stats = yaml.safe_load((folder / "stats.yaml").read_text())
        assert stats["daily"]["trade_result"]["number_of_trades"] == trades
        assert orders > 0
        assert trades > 0
        total += bars
    assert total == 2 * bars_per_symbol


def test_argo_run_no_prefect(tmp_path: Path) -> None:
    proc = _argo(["run", "--no-prefect", "--bars", "600"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check_layout(tmp_path / "data" / "live-trading", 600)
    assert "Session summary" in proc.stdout


@pytest.mark.e2e
def test_readme_main_command_runs_the_prefect_flow(tmp_path: Path) -> None:
    proc = _argo(["run", "--bars", "600"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "data" / "live-trading"
    _check_layout(out, 600)
    # The flow names the session: the id printed is the one in the run folder, and the
    # report the flow wrote at its end is where the output says.
    lines = proc.stdout.splitlines()
    (session_id,) = [x.removeprefix("session:").strip() for x in lines if x.startswith("session:")]
    assert (
        yaml.safe_load((out / "2025-10-01" / "run_1" / "run.yaml").read_text())["session_id"]
        == session_id
    )
    (report,) = [x.removeprefix("report:").strip() for x in lines if x.startswith("report:")]
    assert tmp_path / report == out / ".reports" / f"{session_id}.html"
    assert (tmp_path / report).stat().st_size > 0


def test_bad_option_gives_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    proc = _argo(["run", "--no-prefect", "--timezone", "Mars/Olympus"], tmp_path)
    assert proc.returncode == 2
    assert "session.timezone" in proc.stderr
    assert not (tmp_path / "data").exists()
    proc = _argo(["run", "--no-prefect", "--strategy", "nope"], tmp_path)
    assert proc.returncode == 2
    assert "unknown strategy 'nope'" in proc.stderr
    proc = _argo(["run", "--no-prefect", "--param", "period=-3"], tmp_path)
    assert proc.returncode == 2
    assert "'period'" in proc.stderr
    assert not (tmp_path / "data").exists()
