"""Operating sessions through a real Prefect server, work pool and worker on loopback.

What an operator does, asserted on what Prefect recorded and on the files:
(a) a parent flow-run process killed with SIGKILL mid-day: the worker marks it Crashed and its
crash hook leaves no child run or task Running; retried as the UI's Retry button does, it runs
again under the same flow run id with a new child run for its new ``run_N``, and the data
continues without loss or duplicate; (b) the daily deployment triggered twice at once: the
second run waits for a concurrency slot, then continues the session; (c) the live artifact of
the streaming day changes while it streams.
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
from prefect.client.schemas.actions import DeploymentUpdate
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
from prefect.states import Scheduled

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
            # 20 bars on the first date, 10 on the next: the retry crosses a date boundary.
            "start": "2025-10-01T23:59:40Z",
            "bars": 30,
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

    # (a) Retry the crashed parent as the UI's Retry button does: the same flow run, proposed
    # AwaitingRetry (not forced: the server's own rules for a deployment's retry apply). The
    # worker may still report the killed process a moment later, which puts a retry made
    # within that moment back to Crashed: the operator then presses Retry again.
    def retry_started() -> FlowRun | None:
        run = client.read_flow_run(parent.id)
        if run.run_count >= 2:
            return run
        if run.state is not None and run.state.is_final():
            result = client.set_flow_run_state(
                parent.id, Scheduled(name="AwaitingRetry", message="Retry from the UI")
            )
            assert result.status.value == "ACCEPT", result
        return None

    _until("the retried parent to start", retry_started, 120)
    retried = _until("the retried parent to finish", _final(client, parent.id), 300)
    assert retried.state_type == StateType.COMPLETED
    assert retried.run_count == 2
    assert retried.name == f"session-{sid}"
    assert f"session:{sid}" in retried.tags
    kids = {c.name: c for c in _children(client, parent)}
    # run_1 stays Crashed beside its continuation run_2: two runs, not one reused.
    assert set(kids) == {"2025-10-01-run_1", "2025-10-01-run_2", "2025-10-02-run_2"}
    assert kids["2025-10-01-run_1"].id == ghost.id
    assert kids["2025-10-01-run_1"].state_type == StateType.CRASHED
    assert kids["2025-10-01-run_2"].state_type == StateType.COMPLETED
    assert kids["2025-10-02-run_2"].state_type == StateType.COMPLETED
    assert all(f"session:{sid}" in c.tags for c in kids.values())
    assert _active_of_session(client, sid) == []
    # Nothing lost, nothing twice: every bar of the session once, over all its folders.
    files = [str(p) for p in sorted(out.glob("*/run_*/market_data.parquet"))]
    ((n, distinct),) = _rows(
        f"SELECT count(*), count(DISTINCT (symbol, time)) FROM read_parquet({files})"
    )
    assert n == distinct == 30
    _check_dates(out)


def test_daily_deployment_triggered_twice_at_once_runs_one_after_the_other(
    operated: tuple[SyncPrefectClient, Path],
) -> None:
    client, home = operated
    out = home / "daily"
    deployment = client.read_deployment_by_name("trading-session/daily")
    # The operator edits the deployment's defaults (5m bars); a trigger's options then merge
    # into them instead of replacing the whole block.
    defaults = dict(deployment.parameters)
    defaults["options"] = {**defaults["options"], "interval": "5m"}
    client.update_deployment(deployment.id, DeploymentUpdate(parameters=defaults))
    options = {"data_output": str(out), "pace": "fast"}
    runs = [
        client.create_flow_run_from_deployment(
            deployment.id, parameters={"options": options, "day": day}
        )
        for day in ("2025-10-01", "2025-10-02")
    ]
    done = [_until(f"run {r.name} to finish", _final(client, r.id), 300) for r in runs]
    assert [r.state_type for r in done] == [StateType.COMPLETED, StateType.COMPLETED]
    # One of them found the deployment's only slot taken and waited for it.
    waited = [
        r
        for r in runs
        if any(s.name == "AwaitingConcurrencySlot" for s in client.read_flow_run_states(r.id))
    ]
    assert len(waited) == 1
    # They ran one after the other, both into the session's one run_1, merged options and all.
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("*/run_*")) == [
        "2025-10-01/run_1",
        "2025-10-02/run_1",
    ]
    for day in ("2025-10-01", "2025-10-02"):
        stats = yaml.safe_load((out / day / "run_1" / "stats.yaml").read_text())
        assert stats["session_id"] == "daily-paper"
        run = yaml.safe_load((out / day / "run_1" / "run.yaml").read_text())
        assert (run["interval"], run["strategy"]) == ("5m", "rsi")
        assert run["symbols"] == ["BTCUSDT", "ETHUSDT"]
        bars = str(out / day / "run_1" / "market_data.parquet")
        assert _rows(f"SELECT count(*) FROM read_parquet('{bars}')") == [(2 * 288,)]
    _check_dates(out)
