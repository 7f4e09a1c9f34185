"""Crash hygiene: no flow run or task run of a session is left shown as Running once it is dead.

Two mechanisms, because either alone misses a case:

- ``on_crashed`` / ``on_cancellation`` hooks of ``trading-session`` settle the parent's own
  task runs and every descendant flow run (the ``trading-day`` children and their tasks). After
  a ``kill -9`` of the flow-run process, the process worker marks the parent Crashed and runs
  the hook in the worker process; a crash or cancellation seen in-process runs it there.
- At every start, once the session lock is held (so no other live process runs the session),
  every run tagged ``session:<id>`` still shown as active is a ghost of a dead process and is
  marked Crashed: this covers a worker that died too, and in-process runs (``argo run``) whose
  process was killed, which no hook can see.

A parent retried after a crash then finds its old child's tracking task in a final state and
Prefect creates a **new** child flow run for the continuation (``run_3`` Crashed, ``run_4`` its
continuation), instead of reattaching to the ghost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
    TaskRunFilterState,
    TaskRunFilterStateType,
    TaskRunFilterTags,
)
from prefect.client.schemas.objects import State, StateType
from prefect.states import Cancelled, Crashed

log = logging.getLogger(__name__)

# States of a run that is (or claims to be) alive.
ACTIVE = [StateType.RUNNING, StateType.PENDING, StateType.CANCELLING]


_ACTIVE_TASK = TaskRunFilterState(type=TaskRunFilterStateType(any_=ACTIVE))


def _active_task_runs(client: SyncPrefectClient, flow_run_ids: list[UUID]) -> list[Any]:
    """The task runs of these flow runs still shown as active."""
    return list(
        client.read_task_runs(
            task_run_filter=TaskRunFilter(
                flow_run_id=TaskRunFilterFlowRunId(any_=flow_run_ids), state=_ACTIVE_TASK
            )
        )
    )


def session_tag(session_id: str) -> str:
    """The tag every flow run of a session carries (its task runs carry none)."""
    return f"session:{session_id}"


def settle_ghosts(session_id: str, own_flow_run_id: str | None) -> int:
    """Mark Crashed every active run of ``session_id`` but the caller's own flow run.

    Call only while holding the session lock: it proves that no other process runs the
    session, so anything still active is a ghost. The caller's own task runs left active by an
    earlier attempt of the same flow run (a retry after a crash) are ghosts too.

    Returns:
        How many flow and task runs were marked.
    """
    message = f"marked Crashed by the next start of session {session_id}: its process is gone"
    tag = session_tag(session_id)
    marked = 0
    with get_client(sync_client=True) as client:
        own = UUID(own_flow_run_id) if own_flow_run_id else None
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=[tag]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=ACTIVE)),
                id=FlowRunFilterId(not_any_=[own]) if own else None,
            )
        )
        for run in runs:
            client.set_flow_run_state(run.id, Crashed(message=message), force=True)
            marked += 1
        tasks = client.read_task_runs(
            task_run_filter=TaskRunFilter(tags=TaskRunFilterTags(all_=[tag]), state=_ACTIVE_TASK)
        )
        # Task runs of a trading date carry no tags (flows/day.py): found by their flow run.
        owners = [run.id for run in runs] + ([own] if own is not None else [])
        if owners:
            tasks += _active_task_runs(client, owners)
        for task_id in dict.fromkeys(t.id for t in tasks):
            client.set_task_run_state(task_id, Crashed(message=message), force=True)
            marked += 1
    if marked:
        log.warning(
            "session %s: %d ghost run(s) of a dead process marked Crashed", session_id, marked
        )
    return marked


def settle_descendants(
    client: SyncPrefectClient, flow_run_id: UUID, make_state: Callable[[], State[Any]]
) -> int:
    """Put every active task run of ``flow_run_id`` and of its descendants in a final state.

    Returns:
        How many flow and task runs were set.
    """
    settled = 0
    for task in _active_task_runs(client, [flow_run_id]):
        client.set_task_run_state(task.id, make_state(), force=True)
        settled += 1
    children = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=ACTIVE)),
        )
    )
    for child in children:
        client.set_flow_run_state(child.id, make_state(), force=True)
        settled += 1 + settle_descendants(client, child.id, make_state)
    return settled


def on_parent_crashed(flow: Any, flow_run: Any, state: State[Any]) -> None:
    """``on_crashed`` hook of ``trading-session``: its children and tasks crashed with it."""
    _settle(flow_run, lambda: Crashed(message=f"parent flow run {flow_run.name} crashed"))


def on_parent_cancelled(flow: Any, flow_run: Any, state: State[Any]) -> None:
    """``on_cancellation`` hook of ``trading-session``: its children and tasks are cancelled."""
    _settle(flow_run, lambda: Cancelled(message=f"parent flow run {flow_run.name} cancelled"))


def _settle(flow_run: Any, make_state: Callable[[], State[Any]]) -> None:
    try:
        with get_client(sync_client=True) as client:
            n = settle_descendants(client, flow_run.id, make_state)
        if n:
            log.warning("flow run %s: %d child run(s) and task(s) settled", flow_run.name, n)
    except Exception:
        # A hook's failure must not hide the parent's own state; the next start of the
        # session settles what is left (settle_ghosts).
        log.exception("could not settle the children of flow run %s", flow_run.name)
