"""The ``trading-day`` flow: one trading date of a session, as four tasks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect import flow
from prefect.context import SettingsContext, TagsContext, get_settings_context
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, Settings

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
    # The run's tags (strategy, symbols, session) stay on this flow run, not on its task runs:
    # Prefect acquires a concurrency slot for each tag of a task run before it starts, one API
    # round trip per task (0.15-0.25 s each, 4 per date) for limits this project never sets.
    with TagsContext(current_tags=set()):
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


@contextmanager
def without_heartbeats() -> Iterator[None]:
    """Run the ``trading-day`` child flows entered inside this block without heartbeats.

    Prefect starts a heartbeat thread for every flow run; it sleeps in 1 s steps and the run
    waits for it to wake when it ends, which cost each trading date about 0.5-1 s (half of
    Prefect's whole per-date floor). The parent ``trading-session`` run keeps its heartbeats,
    started before this block: a dead session is detected from the parent, and its children
    are marked by the crash hygiene of the session flow (docs/operations.md).
    """
    context = get_settings_context()
    # Deriving the settings costs about 0.1 s (pydantic-settings revalidates them all): once
    # per parent settings object, not once per date.
    if _DERIVED and _DERIVED[0][0] is context.settings:
        settings = _DERIVED[0][1]
    else:
        settings = context.settings.copy_with_update(
            updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
        )
        _DERIVED[:] = [(context.settings, settings)]
    with SettingsContext(profile=context.profile, settings=settings):
        yield


_DERIVED: list[tuple[Settings, Settings]] = []
