"""The session API that the CLI and the Prefect flows call.

Each function takes settings and small identifiers, does its work through the run folder, and
returns a small serializable summary, so that any step can be retried or run in another
process: state passes through the files, never through live objects.

The package only re-exports; the code lives in its modules, each importing the ones before it
in this list and none after:

- ``plan``: :class:`SessionPlan`, :class:`DaySummary`, :func:`new_session_id`.
- ``dates``: :func:`first_trading_date`, :func:`current_trading_date`, :func:`day_bounds`.
- ``resume``: :func:`find_resume_state` (the saved state a start resumes from).
- ``stored_bars``: :func:`stored_bars` (stored market data for warm-up).
- ``factory``: :func:`open_engine` (build an engine, open a date, warm up), with
  :data:`OBSERVERS` and :data:`FEED_WRAPPERS`.
- ``recovery``: :func:`needs_recovery`, :func:`recover_stale_runs` (crashed run folders).
- ``orphans``: :func:`adopt_orphan_folders` (run folders with an unreadable run.yaml).
- ``start``: :func:`start_session`, :func:`continue_session`, :func:`discard_unused_start`.
- ``trading_date``: :func:`prefetch_day`, :func:`stream_day`, :func:`finalize_day`,
  :func:`verify_run_folder` (the steps of one trading date).
- ``run``: :func:`run_session` (a whole session in this process, without Prefect).
- ``reporting``: :data:`REPORTS_DIR`, :func:`report_path`, :func:`write_session_report`.
"""

from argo_engine.session.dates import current_trading_date, day_bounds, first_trading_date
from argo_engine.session.factory import FEED_WRAPPERS, OBSERVERS, open_engine
from argo_engine.session.orphans import adopt_orphan_folders
from argo_engine.session.plan import DaySummary, SessionPlan, new_session_id
from argo_engine.session.recovery import needs_recovery, recover_stale_runs
from argo_engine.session.reporting import REPORTS_DIR, report_path, write_session_report
from argo_engine.session.resume import find_resume_state
from argo_engine.session.run import run_session
from argo_engine.session.start import continue_session, discard_unused_start, start_session
from argo_engine.session.stored_bars import stored_bars
from argo_engine.session.trading_date import (
    finalize_day,
    prefetch_day,
    stream_day,
    verify_run_folder,
)

__all__ = [
    "FEED_WRAPPERS",
    "OBSERVERS",
    "REPORTS_DIR",
    "DaySummary",
    "SessionPlan",
    "adopt_orphan_folders",
    "continue_session",
    "current_trading_date",
    "day_bounds",
    "discard_unused_start",
    "finalize_day",
    "find_resume_state",
    "first_trading_date",
    "needs_recovery",
    "new_session_id",
    "open_engine",
    "prefetch_day",
    "recover_stale_runs",
    "report_path",
    "run_session",
    "start_session",
    "stored_bars",
    "stream_day",
    "verify_run_folder",
    "write_session_report",
]
