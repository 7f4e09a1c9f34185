"""Where a session's HTML report goes, and writing it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argo_engine.tools.report import SessionReport

#: Folder of ``{data_output}`` that holds the sessions' HTML reports.
REPORTS_DIR = ".reports"


def report_path(data_output: Path, session_id: str) -> Path:
    """Where a session's HTML report is written at the end of every start of it."""
    return Path(data_output) / REPORTS_DIR / f"{session_id}.html"


def write_session_report(
    data_output: Path,
    session_id: str,
    initial_capital: float = 100_000.0,
    *,
    loaded: SessionReport | None = None,
) -> Path:
    """Write the session's HTML report to :func:`report_path` (both ``argo run`` paths).

    Args:
        data_output: Root of the run folders.
        session_id: The session.
        initial_capital: Equity the session started with, when no run folder records it.
        loaded: The session's figures, when the caller already gathered them.

    Returns:
        The report's path.
    """
    from argo_engine.tools.report import write_report

    out = report_path(data_output, session_id)
    return write_report(Path(data_output), session_id, out, initial_capital, loaded=loaded)
