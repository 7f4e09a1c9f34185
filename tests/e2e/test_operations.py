"""Operating sessions through a real Prefect server, work pool and worker on loopback.

What an operator does, asserted on what Prefect recorded and on the files:
a parent flow-run process killed with SIGKILL mid-day: the worker marks it Crashed and its crash
hook leaves no child run or task Running; before that, the live artifact of the streaming day
changed while it streamed. (The retry of the parent and two triggers through the deployment at
once are not covered here yet.)
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pytest
import yaml
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    ArtifactFilterType,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
    FlowRunFilterTags,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from prefect.client.schemas.objects import FlowRun, StateType

from argo_engine.persistence.session_lock import lock_path, read_holder
from argo_engine.verify import verify_path
from tests.e2e.servers import deploy_all, prefect_server, worker

pytestmark = pytest.mark.e2e

T = TypeVar("T")
ACTIVE = {StateType.RUNNING, StateType.PENDING, StateType.CANCELLING}


@pytest.fixture(scope="module")
def operated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SyncPrefectClient, Path]]:
    home = tmp_path_factory.mktemp("operations")
    # The worker polls every second, so runs start promptly.
    with prefect_server(home, PREFECT_WORKER_QUERY_SECONDS="1") as env:
        deploy_all(env)
        # Two slots: only the deployment's own concurrency limit may serialize runs.
        with worker(env, home / "worker.log", limit=2):
            client = SyncPrefectClient(api=env["PREFECT_API_URL"])
            with client:
                yield client, home


def _until(what: str, probe: Callable[[], T | None], timeout: float = 240) -> T:
    # The server and the worker are other processes: their API is the only signal they give.
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _children(client: SyncPrefectClient, parent: FlowRun) -> list[FlowRun]:
    return client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id])
        )
    )


def _active_of_session(client: SyncPrefectClient, session_id: str) -> list[str]:
    runs = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"session:{session_id}"]))
    )
    active = [f"flow {r.name}" for r in runs if r.state_type in ACTIVE]
    ids = [r.id for r in runs]
    tasks = client.read_task_runs(
        task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=ids))
    )
    active += [f"task {t.name}" for t in tasks if t.state_type in ACTIVE]
    return active


def _final(client: SyncPrefectClient, run_id: Any) -> Callable[[], FlowRun | None]:
    def probe() -> FlowRun | None:
        run = client.read_flow_run(run_id)
        return run if run.state is not None and run.state.is_final() else None

    return probe


def _rows(sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _check_dates(out: Path) -> None:
    """Every date's trades over all its run folders agree with its last stats.yaml."""
    for day in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        folders = sorted(day.glob("run_*"), key=lambda p: int(p.name.split("_")[1]))
        files = [str(f / "trades.parquet") for f in folders]
        ((n,),) = _rows(f"SELECT count(*) FROM read_parquet({files})")
        stats = yaml.safe_load((folders[-1] / "stats.yaml").read_text())
        assert stats["daily"]["trade_result"]["number_of_trades"] == n, day.name
    assert verify_path(out) == {}


def test_killed_parent_retried_gets_new_child_runs_and_loses_nothing(
    operated: tuple[SyncPrefectClient, Path],
) -> None:
    client, home = operated
    out = home / "killed"
    sid = "killed-1"
    params = {
        "options": {
            "data_output": str(out),
            "feed": "synthetic",
            "broker": "paper",
            "symbols": ["BTCUSDT"],
            "interval": "1s",
            "pace": "realtime",
            "start": "2025-10-01T23:59:30Z",
            "bars": 50,
        },
        "session_id": sid,
    }
    deployment = client.read_deployment_by_name("trading-session/manual")
    parent = client.create_flow_run_from_deployment(deployment.id, parameters=params)

    # (c) The live view of the streaming date changes while it streams.
    key = "live-killed-1-2025-10-01"

    def live_data() -> str | None:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
        return str(arts[0].data) if arts and "| bars |" in str(arts[0].data) else None

    first = _until("the live artifact", live_data)
    second = _until(
        "a change of the live artifact", lambda: ((d := live_data()) != first and d) or None
    )
    assert first != second
    progress = client.read_artifacts(
        artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["progress"]))
    )
    assert any(0.0 < float(a.data) < 100.0 for a in progress)  # type: ignore[arg-type]

    # Kill -9 the flow-run process: the session lock names it.
    holder = read_holder(lock_path(out, sid))
    assert holder is not None
    assert holder.flow_run_id == str(parent.id)
    os.kill(holder.pid, signal.SIGKILL)
    crashed = _until("the parent Crashed", _final(client, parent.id))
    assert crashed.state_type == StateType.CRASHED
    # The crash hook (run by the worker) settles the children and tasks: nothing stays Running.
    _until("no run left active", lambda: _active_of_session(client, sid) == [] or None, 60)
    [ghost] = _children(client, parent)
    assert ghost.name == "2025-10-01-run_1"
    assert ghost.state_type == StateType.CRASHED
