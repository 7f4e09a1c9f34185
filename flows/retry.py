"""Retry policy: retry only what argo_engine classifies as transient."""

from __future__ import annotations

from typing import Any

from argo_engine.errors import TransientError


def transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn``: True only when the task failed with a TransientError."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # a result that cannot even be loaded is not a transient failure
        return False
    return isinstance(exc, TransientError)
