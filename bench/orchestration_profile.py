"""Where a Prefect-run session's per-date time goes, read back from the Prefect API.

Used by ``python -m bench orchestration --profile``: after the long session's server-mode
run, its child flow runs (one per trading date) and their task runs are read from the API,
and the median duration of each piece over the first and the last dates is reported:

- ``child_run``: a date's child flow run, start to end;
- ``gap``: from one child's end to the next one's start (the parent's own work between dates);
- one figure per task (``prefetch_and_recover``, ``stream_session``, ``finalize_day``,
  ``publish_stats``): the task run's start to end.

Flat means each figure of the last dates equals that of the first ones.
"""

from __future__ import annotations

import statistics
from datetime import datetime
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterStartTime,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from prefect.client.schemas.sorting import FlowRunSort

_PAGE = 200  # the API's largest page


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def profile(since: datetime, first: int, last: int) -> dict[str, dict[str, float]]:
    """Medians per piece over the ``first`` and the ``last`` dates of runs started after ``since``.

    Args:
        since: Start time before the session's run (its runs only are read).
        first: Dates at the start to take the median over (the first date is left out: it
            pays one-time set-up).
        last: Dates at the end to take the median over.

    Returns:
        ``{piece: {"first": s, "last": s}}``.
    """
    with get_client(sync_client=True) as client:
        runs: list[Any] = []
        while True:
            page = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since)),
                sort=FlowRunSort.START_TIME_ASC,
                limit=_PAGE,
                offset=len(runs),
            )
            runs += page
            if len(page) < _PAGE:
                break
        children = [r for r in runs if r.parent_task_run_id is not None]
        tasks: dict[Any, list[Any]] = {}
        for i in range(0, len(children), 50):
            ids = [c.id for c in children[i : i + 50]]
            got: list[Any] = []
            while True:
                page = client.read_task_runs(
                    task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=ids)),
                    limit=_PAGE,
                    offset=len(got),
                )
                got += page
                if len(page) < _PAGE:
                    break
            for task in got:
                tasks.setdefault(task.flow_run_id, []).append(task)
    rows: list[dict[str, float]] = []
    previous_end = None
    for child in children:
        row: dict[str, float] = {}
        took = _seconds(child.start_time, child.end_time)
        if took is not None:
            row["child_run"] = took
        gap = _seconds(previous_end, child.start_time)
        if gap is not None:
            row["gap"] = gap
        previous_end = child.end_time
        for task in tasks.get(child.id, []):
            took = _seconds(task.start_time, task.end_time)
            if took is not None:
                name = task.name.rsplit("-", 1)[0]  # "stream_session-a1b" -> "stream_session"
                row[name] = row.get(name, 0.0) + took
        rows.append(row)
    head, tail = rows[1 : 1 + first], rows[-last:] if last else []
    pieces = dict.fromkeys(k for row in rows for k in row)
    out: dict[str, dict[str, float]] = {}
    for piece in pieces:
        a = [r[piece] for r in head if piece in r]
        b = [r[piece] for r in tail if piece in r]
        if a and b:
            out[piece] = {
                "first": round(statistics.median(a), 3),
                "last": round(statistics.median(b), 3),
            }
    return out
