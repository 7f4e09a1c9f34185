"""End to end: a real Prefect server, a process work pool and worker, a deployment run.

Everything runs on 127.0.0.1 with PREFECT_HOME in a temp dir; the deployment comes from
deployments/prefect.yaml exactly as a user deploys it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prefect_bin() -> str:
    exe = Path(sys.executable).with_name("prefect")
    return str(exe) if exe.exists() else shutil.which("prefect") or "prefect"


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[dict[str, str]]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ARGO_"))}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        ARGO_PROJECT_DIR=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115
    server = subprocess.Popen(
        [_prefect_bin(), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            # Polling a real server's health endpoint: the only readiness signal it offers.
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp_path / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        yield env
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def _run(args: list[str], env: dict[str, str], timeout: float = 300) -> str:
    proc = subprocess.run(
        args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_deployment_run_through_worker_writes_the_run_folders(
    prefect_server: dict[str, str], tmp_path: Path
) -> None:
    env = prefect_server
    prefect = _prefect_bin()
    _run([prefect, "work-pool", "create", "argo-pool", "--type", "process"], env)
    _run(
        [
            prefect,
            "--no-prompt",
            "deploy",
            "--all",
            "--prefect-file",
            str(ROOT / "deployments" / "prefect.yaml"),
        ],
        env,
    )
    worker_log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        [prefect, "worker", "start", "--pool", "argo-pool", "--limit", "1"],
        env=env,
        cwd=ROOT,
        stdout=worker_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    out = tmp_path / "out"
    try:
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
        _run(
            [
                prefect,
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
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
        worker_log.close()
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
