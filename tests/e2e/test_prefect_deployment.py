"""End to end: a real Prefect server, a process work pool and worker, a deployment run.

Everything runs on 127.0.0.1 with PREFECT_HOME in a temp dir; the deployment comes from
deployments/prefect.yaml exactly as a user deploys it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import yaml

from tests.e2e.servers import deploy_all, prefect_bin, run_cli, worker
from tests.e2e.servers import prefect_server as start_prefect_server

pytestmark = pytest.mark.e2e


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[dict[str, str]]:
    with start_prefect_server(tmp_path) as env:
        yield env


def test_deployment_run_through_worker_writes_the_run_folders(
    prefect_server: dict[str, str], tmp_path: Path
) -> None:
    env = prefect_server
    deploy_all(env)
    out = tmp_path / "out"
    with worker(env, tmp_path / "worker.log"):
        params = {
            "options": {
                "data_output": str(out),
                "feed": "synthetic",
                "broker": "paper",
                "symbols": ["BTCUSDT", "ETHUSDT"],
                "bars": 300,
                "start": "2025-10-01T22:00:00Z",
            },
            "session_id": "e2e-session",
        }
        run_cli(
            [
                prefect_bin(),
                "deployment",
                "run",
                "trading-session/manual",
                "--params",
                json.dumps(params),
                "--watch",
                "--watch-timeout",
                "400",
            ],
            env,
            timeout=450,
        )
    days = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert days == ["2025-10-01", "2025-10-02"], (tmp_path / "worker.log").read_text()[-3000:]
    total_bars = 0
    for day in days:
        folder = out / day / "run_1"
        for name in ("orders", "trades", "marks", "logs", "market_data"):
            assert (folder / f"{name}.parquet").exists()
        stats = yaml.safe_load((folder / "stats.yaml").read_text())
        assert stats["session_id"] == "e2e-session"
        con = duckdb.connect()
        (n,) = con.execute(
            f"SELECT count(*) FROM read_parquet('{folder / 'trades.parquet'}')"
        ).fetchone()  # type: ignore[misc]
        (b,) = con.execute(
            f"SELECT count(*) FROM read_parquet('{folder / 'market_data.parquet'}')"
        ).fetchone()  # type: ignore[misc]
        con.close()
        assert stats["daily"]["trade_result"]["number_of_trades"] == n
        total_bars += b
    assert total_bars == 600
