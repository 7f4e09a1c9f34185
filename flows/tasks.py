"""Prefect tasks: each a few lines delegating to ``argo_engine.session``."""

from __future__ import annotations

import base64
import signal
import threading
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from argo_engine import session
from argo_engine.options import RunOptions
from argo_engine.reporting import day_markdown, trades_table
from argo_engine.tools.report import day_equity_svg, equity_svg, load_session_report
from flows.live import LiveDayView
from flows.logs import attach_engine_logs
from flows.retry import transient_only

attach_engine_logs()

RETRY_DELAYS = [1.0, 5.0, 15.0]


def _plan(plan: dict[str, Any]) -> session.SessionPlan:
    return session.SessionPlan.from_dict(plan)


@task(
    name="prefetch_and_recover",
    cache_policy=NO_CACHE,
    retries=3,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient_only,
)
def prefetch_and_recover(options: RunOptions, plan: dict[str, Any], day: str) -> dict[str, Any]:
    """Open the day's run folder, restore state and warm the strategy up from stored bars."""
    summary = session.prefetch_day(options.to_settings(), _plan(plan), date.fromisoformat(day))
    return asdict(summary)


@task(
    name="stream_session",
    cache_policy=NO_CACHE,
    retries=3,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient_only,
)
def stream_session(options: RunOptions, plan: dict[str, Any], day: str) -> dict[str, Any]:
    """Run the engine loop for one trading date.

    A retry (transient errors only) recovers from the run folder first and continues the same
    run_N. Cancellation (SIGTERM) or SIGINT sets the stop event: the engine flushes and returns.
    """
    stop = threading.Event()
    restore = _install_stop(stop)
    settings = options.to_settings()
    the_plan, the_day = _plan(plan), date.fromisoformat(day)
    # The day's figures in the UI while it streams, read off the bar path by its own thread.
    view = LiveDayView(the_plan.session_id, day, session.day_bounds(settings, the_day))
    try:
        summary = session.stream_day(settings, the_plan, the_day, stop=stop, observe=view.observe)
    finally:
        restore()
    get_run_logger().info(
        "streamed %s bars, %s orders, %s fills on %s (%s)",
        summary.bars,
        summary.orders,
        summary.fills,
        day,
        summary.ended,
    )
    return asdict(summary)


def _install_stop(stop: threading.Event) -> Any:
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum: int, frame: object) -> None:
        stop.set()

    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


@task(
    name="finalize_day",
    cache_policy=NO_CACHE,
    retries=3,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient_only,
)
def finalize_day(options: RunOptions, plan: dict[str, Any], day: str) -> dict[str, Any]:
    """Flush, write the final daily stats.yaml, drain the journal and verify the folder."""
    summary = session.finalize_day(options.to_settings(), _plan(plan), date.fromisoformat(day))
    if summary.problems:
        get_run_logger().warning("integrity problems in %s: %s", summary.folder, summary.problems)
    return asdict(summary)


@task(
    name="publish_stats",
    cache_policy=NO_CACHE,
    retries=3,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient_only,
)
def publish_stats(
    summary: dict[str, Any], session_id: str, initial_capital: float = 100_000.0
) -> str:
    """Publish the day's stats as a markdown artifact and its trades as a table artifact.

    Only the day's own files are read (its trades; daily and cumulative figures come from the
    day's stats.yaml through ``summary``), so day 140 costs what day 1 costs. The session's
    full HTML report is written once, by ``publish_report`` at the end of the session flow.
    """
    day = summary["date"]
    key = _artifact_key(f"stats-{session_id}-{day}")
    trades = trades_table(Path(summary["folder"]))
    markdown = (
        day_markdown(summary, session_id)
        + f"\n![equity of the day]({_svg_uri(_day_chart(summary, trades, initial_capital))})\n"
        + f"\nFull report (written when the session flow ends; `argo report --session "
        f"{session_id}` builds it at any time): {_report_link(summary, session_id)}\n"
    )
    create_markdown_artifact(
        key=key,
        markdown=markdown,
        description=f"argo stats for {day} ({summary['run_id']})",
    )
    create_table_artifact(
        key=_artifact_key(f"trades-{session_id}-{day}"),
        table=trades,
        description=f"trades of {day} ({summary['run_id']})",
    )
    return key


@task(name="publish_report", cache_policy=NO_CACHE)
def publish_report(data_output: str, session_id: str, initial_capital: float = 100_000.0) -> str:
    """Write the session's HTML report and publish its equity curve as a markdown artifact.

    Called once at the end of the session flow: it reads every folder of the session, which is
    what made it unaffordable once per day.
    """
    root = Path(data_output)
    loaded = load_session_report(root, session_id, initial_capital)
    # The same writer and path as `argo run --no-prefect` at the end of a session.
    report = session.write_session_report(root, session_id, initial_capital, loaded=loaded)
    chart = equity_svg(loaded.curve)
    key = _artifact_key(f"report-{session_id}")
    create_markdown_artifact(
        key=key,
        markdown=(
            f"# Session `{session_id}`\n\n![equity]({_svg_uri(chart)})\n\n"
            f"Full report: {_path_text(report)}\n"
        ),
        description=f"argo report of session {session_id}",
    )
    return str(report)


def _day_chart(summary: dict[str, Any], trades: list[dict[str, Any]], capital: float) -> str:
    daily = summary.get("daily", {}).get("trade_pnl", {})
    cumulative = summary.get("cumulative", {}).get("trade_pnl", {})
    # Equity before the day = capital + realized PnL of the earlier dates.
    before = float(cumulative.get("realized_pnl", 0.0) or 0.0) - float(
        daily.get("realized_pnl", 0.0) or 0.0
    )
    fills = [(datetime.fromisoformat(str(t["executed_at"])), float(t["pnl"])) for t in trades]
    unrealized = float(cumulative.get("unrealized_pnl", 0.0) or 0.0)
    return day_equity_svg(fills, capital + before, unrealized, f"Equity on {summary['date']}")


def _svg_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def _report_link(summary: dict[str, Any], session_id: str) -> str:
    # A run folder is {data_output}/{date}/run_N.
    return _path_text(session.report_path(Path(summary["folder"]).parent.parent, session_id))


def _path_text(path: Path) -> str:
    # A browser opens no file:// link from an http(s) page such as the Prefect UI: the path
    # is shown as text to copy, on the machine that ran the flow.
    return f"`{path.resolve()}` (on the worker's machine)"


def _artifact_key(text: str) -> str:
    # Artifact keys allow lowercase letters, digits and dashes only.
    cleaned = "".join(c if c.isalnum() else "-" for c in text.lower())
    return "-".join(part for part in cleaned.split("-") if part)[:100]
