"""Route the engine's stdlib logs into Prefect run logs (the engine never imports prefect)."""

from __future__ import annotations

import logging

from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging.handlers import APILogHandler


class EngineRunLogHandler(APILogHandler):
    """Send ``argo_engine`` records to the API, only from inside a flow or task run."""

    def emit(self, record: logging.LogRecord) -> None:
        """Forward the record when a run context exists (in-process CLI runs have none)."""
        if FlowRunContext.get() is None and TaskRunContext.get() is None:
            return
        super().emit(record)


def attach_engine_logs() -> None:
    """Attach the handler once; engine INFO records reach the run logs."""
    logger = logging.getLogger("argo_engine")
    if not any(isinstance(h, EngineRunLogHandler) for h in logger.handlers):
        logger.addHandler(EngineRunLogHandler())
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
