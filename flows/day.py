"""The ``trading-day`` flow: one trading date of a session, as four tasks."""

from __future__ import annotations

from typing import Any

from prefect import flow

from argo_engine.options import RunOptions
from flows.tasks import finalize_day, prefetch_and_recover, publish_stats, stream_session


@flow(name="trading-day", flow_run_name="{day}-run_{run_number}", log_prints=True)
def trading_day(
    options: RunOptions, plan: dict[str, Any], day: str, run_number: int
) -> dict[str, Any]:
    """Prefetch/recover, stream until the date ends, finalize, publish stats.

    Args:
        options: Run options (no secrets; those come from the worker's settings).
        plan: The session plan (``SessionPlan.to_dict()``).
        day: Trading date, ISO.
        run_number: N of run_N (only for the run name; the plan is authoritative).

    Returns:
        The finalized day summary, with ``ended`` and ``next_date`` from the stream.
    """
    prefetch_and_recover(options, plan, day)
    streamed = stream_session(options, plan, day)
    final = finalize_day(options, plan, day)
    publish_stats(final, plan["session_id"], options.to_settings().session.initial_capital)
    return {
        **final,
        "ended": streamed["ended"],
        "next_date": streamed["next_date"],
        "bars": streamed["bars"],
        "orders": streamed["orders"],
        "fills": streamed["fills"],
        "rejected_bars": streamed["rejected_bars"],
    }
