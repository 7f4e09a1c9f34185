"""The trading-session and trading-day flows under a real (temporary) Prefect API."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
from prefect.logging.handlers import APILogWorker

from argo_engine import session
from argo_engine.clock import FakeClock
from argo_engine.errors import ConfigurationError, ProviderUnavailable
from argo_engine.options import RunOptions
from argo_engine.ports import MarketDataFeed
from argo_engine.testing.feeds import FailOnceFeed
from flows.session import trading_session
from tests.engine.helpers import session_rows, utc, wave_bars, write_replay

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _options(tmp_path: Path, **extra: Any) -> RunOptions:
    bars = wave_bars(["BTCUSDT", "ETHUSDT"], utc(2025, 10, 1, 20, 0), 2 * 1440 + 60, period=50)
    replay = write_replay(tmp_path / "bars.parquet", bars)
    return RunOptions(
        data_output=str(tmp_path / "out"),
        feed="replay",
        replay_file=str(replay),
        symbols=["BTCUSDT", "ETHUSDT"],
        **extra,
    )


async def _runs(parent_id: str | None = None, name: str | None = None) -> list[Any]:
    async with get_client() as client:
        if parent_id is not None:
            flt = FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id]))
            return list(await client.read_flow_runs(flow_run_filter=flt))
        return list(await client.read_flow_runs())


async def _task_runs(flow_run_ids: list[str]) -> list[Any]:
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId

    async with get_client() as client:
        flt = TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=flow_run_ids))
        return list(await client.read_task_runs(task_run_filter=flt))


async def _artifacts(prefix: str) -> list[Any]:
    async with get_client() as client:
        arts = await client.read_artifacts()
        return [a for a in arts if a.key and a.key.startswith(prefix)]


def test_three_date_session_runs_three_child_flows_under_one_parent(tmp_path: Path) -> None:
    state = trading_session(options=_options(tmp_path), session_id="flowtest", return_state=True)
    assert state.is_completed()
    summaries = state.result()
    assert [s["date"] for s in summaries] == ["2025-10-01", "2025-10-02", "2025-10-03"]
    assert {s["run_id"] for s in summaries} == {"run_1"}
    parent_id = str(state.state_details.flow_run_id)
    children = asyncio.run(_runs(parent_id))
    day_runs = [r for r in children if r.name.endswith("-run_1")]
    assert sorted(r.name for r in day_runs) == [
        "2025-10-01-run_1",
        "2025-10-02-run_1",
        "2025-10-03-run_1",
    ]
    assert all(r.state.is_completed() for r in day_runs)
    # The session's tags are on each date's flow run; its task runs carry none (a task run's
    # tags cost a concurrency-slot round trip to the API each).
    assert all("session:flowtest" in r.tags for r in day_runs)
    tasks = asyncio.run(_task_runs([str(r.id) for r in day_runs]))
    assert len(tasks) == 4 * 3
    assert all(t.tags == [] for t in tasks)
    arts = asyncio.run(_artifacts("stats-flowtest-"))
    assert sorted(a.key for a in arts) == [
        "stats-flowtest-2025-10-01",
        "stats-flowtest-2025-10-02",
        "stats-flowtest-2025-10-03",
    ]
    assert all("flowtest.html" in str(a.data) for a in arts)
    # Each day's chart is that day's equity (drawn from its own folder), not the session's.
    for art in arts:
        encoded = str(art.data).split("data:image/svg+xml;base64,")[1].split(")")[0]
        day = art.key.removeprefix("stats-flowtest-")
        assert f"Equity on {day}" in base64.b64decode(encoded).decode()
    (report_art,) = asyncio.run(_artifacts("report-flowtest"))
    out = tmp_path / "out"
    # The report's path is shown as text: a browser opens no file:// link from the UI.
    report_path = str((out / ".reports" / "flowtest.html").resolve())
    assert all(report_path in str(a.data) for a in [*arts, report_art])
    assert not any("file://" in str(a.data) for a in [*arts, report_art])
    # Equity, drawdown, PnL per date and one chart per symbol (plotly; rendered in a browser by
    # tests/tools/test_report_browser.py).
    assert (out / ".reports" / "flowtest.html").read_text().count('class="plotly-graph-div"') >= 4
    for s in summaries:
        folder = out / s["date"] / "run_1"
        assert (folder / "stats.yaml").exists()
        assert s["problems"] == []
        doc = yaml.safe_load((folder / "stats.yaml").read_text())
        assert doc["session_id"] == "flowtest"
    assert sum(s["fills"] for s in summaries) > 0
    assert len(session_rows(out, "market_data")) == 2 * (2 * 1440 + 60)


def test_stream_retry_after_transient_error_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    # Reference: the same session without faults, in-process.
    (tmp_path / "ref").mkdir()
    ref_opts = _options(tmp_path / "ref")
    session.run_session(ref_opts.to_settings(), clock=FakeClock(utc(2025, 10, 1)))
    ref_trades = session_rows(tmp_path / "ref" / "out", "trades")

    failing: list[FailOnceFeed] = []

    def wrap(feed: MarketDataFeed) -> MarketDataFeed:
        wrapped = FailOnceFeed(feed, after=700, error=ProviderUnavailable("feed hiccup"))
        # Only the first streaming attempt fails; feeds built after the failure (the retry's,
        # later days') stream normally.
        wrapped.armed = not any(f.failed for f in failing)
        failing.append(wrapped)
        return wrapped

    session.FEED_WRAPPERS.append(wrap)
    try:
        state = trading_session(
            options=_options(tmp_path), session_id="retrytest", return_state=True
        )
    finally:
        session.FEED_WRAPPERS.remove(wrap)
    assert state.is_completed()
    assert any(f.failed for f in failing)
    summaries = state.result()
    assert {s["run_id"] for s in summaries} == {"run_1"}
    out = tmp_path / "out"
    md = session_rows(out, "market_data")
    assert len(md) == len(set(md)) == 2 * (2 * 1440 + 60)
    trades = session_rows(out, "trades")
    assert len(trades) == len(ref_trades) > 0
    # Same fills: compare every column but the ids (session ids differ).
    strip = [t[1:12] for t in trades]
    assert strip == [t[1:12] for t in ref_trades]


def test_daily_deployment_mode_continues_run_number_and_cumulative_stats(tmp_path: Path) -> None:
    options = RunOptions(
        data_output=str(tmp_path / "out"),
        feed="synthetic",
        symbols=["BTCUSDT", "ETHUSDT"],
        interval="5m",
    )
    first = trading_session(options=options, session_id="daily-x", day="2025-10-01",
                            continue_run=True)  # fmt: skip
    second = trading_session(options=options, session_id="daily-x", day="2025-10-02",
                             continue_run=True)  # fmt: skip
    assert [s["date"] for s in first + second] == ["2025-10-01", "2025-10-02"]
    assert {s["run_id"] for s in first + second} == {"run_1"}
    out = tmp_path / "out"
    md = session_rows(out, "market_data")
    assert len(md) == 2 * 2 * 288  # two full days of 5m bars for two symbols
    day1 = yaml.safe_load((out / "2025-10-01" / "run_1" / "stats.yaml").read_text())
    day2 = yaml.safe_load((out / "2025-10-02" / "run_1" / "stats.yaml").read_text())
    assert day2["session_start"] == day1["session_start"]
    n1 = day1["cumulative"]["trade_result"]["number_of_trades"]
    n2 = day2["daily"]["trade_result"]["number_of_trades"]
    assert n1 > 0
    assert n2 > 0
    assert day2["cumulative"]["trade_result"]["number_of_trades"] == n1 + n2


async def _log_names(flow_run_ids: list[str]) -> set[str]:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    async with get_client() as client:
        logs = await client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=flow_run_ids))
        )
        return {log.name for log in logs}


def test_engine_logs_reach_the_prefect_run_logs(tmp_path: Path) -> None:
    state = trading_session(
        options=_options(tmp_path, end="2025-10-01T23:00:00Z"),
        session_id="logtest",
        return_state=True,
    )
    assert state.is_completed()
    # Run logs travel through Prefect's batching log worker: drain it (blocking until every
    # queued record reached the API) before reading, instead of hoping the batch went out.
    APILogWorker.drain_all(timeout=120)
    parent_id = str(state.state_details.flow_run_id)
    children = [str(r.id) for r in asyncio.run(_runs(parent_id))]
    names = asyncio.run(_log_names([parent_id, *children]))
    assert any(name.startswith("argo_engine") for name in names), names


@pytest.mark.parametrize(
    ("parameters", "named"),
    [
        ({"day": "2025-13-40"}, "(parameter day)"),
        ({"max_days": 0}, "(parameter max_days)"),
        ({"max_days": -1}, "(parameter max_days)"),
        ({"session_id": "../x"}, "(parameter session_id)"),
        ({"interval": "7m"}, "session.interval"),
        ({"end": "2025-09-01T00:00:00Z"}, "--end"),
        ({"strategy": "nosuch"}, "--strategy"),
        ({"params": {"period": "abc"}}, "'period'"),
    ],
)
def test_bad_parameters_fail_before_any_folder_naming_the_parameter(
    tmp_path: Path, parameters: dict[str, Any], named: str
) -> None:
    flow_params = {k: v for k, v in parameters.items() if k in ("day", "max_days", "session_id")}
    option_values = {k: v for k, v in parameters.items() if k not in flow_params}
    options = _options(tmp_path).model_copy(update=option_values)
    state = trading_session(options=options, **flow_params, return_state=True)

    assert state.is_failed()
    with pytest.raises(ConfigurationError) as info:
        state.result()
    assert named in info.value.message
    assert "parameter" in info.value.message
    assert not (tmp_path / "out").exists()
