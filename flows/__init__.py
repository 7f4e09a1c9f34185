"""Prefect flows over argo_engine: ``trading-session`` (parent) and ``trading-day`` (child).

Flow bodies only sequence calls into ``argo_engine.session``; tasks exchange small summaries and
state passes through the run folders.
"""

import os

# The engine logs through stdlib logging; route it into Prefect run logs.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "argo_engine")
