"""Prefect tasks: each a few lines delegating to ``argo_engine.session``."""

from __future__ import annotations

import base64
import signal
import threading
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from argo_engine import session
from argo_engine.options import RunOptions
from argo_engine.reporting import day_markdown, trades_table
from argo_engine.tools.report import equity_svg, write_report
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
def publish_stats(summary: dict[str, Any], session_id: str) -> str:
    """Publish the day's stats as a markdown artifact and its trades as a table artifact."""
    day = summary["date"]
    key = _artifact_key(f"stats-{session_id}-{day}")
    data_output = Path(summary["folder"]).parent.parent
    report = write_report(data_output, session_id, data_output / ".reports" / f"{session_id}.html")
    chart = base64.b64encode(equity_svg(data_output, session_id).encode()).decode()
    markdown = (
        day_markdown(summary, session_id)
        + f"\n![equity curve](data:image/svg+xml;base64,{chart})\n"
        + f"\nFull report: [{report.name}]({report.resolve().as_uri()})\n"
    )
    create_markdown_artifact(
        key=key,
        markdown=markdown,
        description=f"argo stats for {day} ({summary['run_id']})",
    )
    create_table_artifact(
        key=_artifact_key(f"trades-{session_id}-{day}"),
        table=trades_table(Path(summary["folder"])),
        description=f"trades of {day} ({summary['run_id']})",
    )
    return key


def _artifact_key(text: str) -> str:
    # Artifact keys allow lowercase letters, digits and dashes only.
    cleaned = "".join(c if c.isalnum() else "-" for c in text.lower())
    return "-".join(part for part in cleaned.split("-") if part)[:100]
