"""Run a session from the CLI with a live one-line status and a final summary."""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from argo_engine.clock import LiveClock
from argo_engine.domain.market import Bar
from argo_engine.domain.orders import Fill, Order
from argo_engine.engine.callbacks import EngineCallbacks
from argo_engine.options import RunOptions
from argo_engine.persistence.session_lock import SessionLock, acquire_session, probe_session
from argo_engine.settings import ArgoSettings
from argo_engine.terminal import err_console


class StatusLine:
    """Counts bars, orders and fills and renders them as one line."""

    def __init__(self) -> None:
        self.bars = 0
        self.orders = 0
        self.fills = 0
        self.realized = 0.0
        self.last: Bar | None = None
        self.prefetch = ""
        self.phase = ""

    def callbacks(self) -> EngineCallbacks:
        """Callbacks that keep the counters current."""

        def on_bar(run_id: str, bar: Bar) -> None:
            self.bars += 1
            self.last = bar

        def on_order(order: Order) -> None:
            self.orders += 1

        def on_fill(fill: Fill) -> None:
            self.fills += 1
            self.realized += fill.pnl

        def on_prefetch(symbol: str, current: int, total: int) -> None:
            self.prefetch = f"prefetch {symbol} {current}/{total}"

        return EngineCallbacks(
            on_market_data=on_bar,
            on_order_placed=on_order,
            on_order_filled=on_fill,
            on_prefetch_progress=on_prefetch,
        )

    def render(self, *, final: bool = False) -> Text:
        """The status line (``final``: the counters, also when no bar came)."""
        when = self.last.time.strftime("%Y-%m-%d %H:%M") if self.last else "-"
        if self.bars == 0 and self.prefetch and not final:
            return Text(self.prefetch)
        if self.bars == 0 and self.phase and not final:
            return Text(self.phase)
        return Text(
            f"bars {self.bars} | orders {self.orders} | fills {self.fills} | "
            f"realized PnL {self.realized:.2f} | {when}"
        )


def run_with_status(
    options: RunOptions, settings: ArgoSettings, console: Console, *, use_prefect: bool = True
) -> list[dict[str, Any]]:
    """Run a session with a live status line; print where the output is and a summary.

    Args:
        options: Run options as given on the command line.
        settings: The validated settings they produce.
        console: Where to print.
        use_prefect: Run the ``trading-session`` flow (ephemeral Prefect API when
            PREFECT_API_URL is unset) instead of the in-process session loop.

    Returns:
        One summary dict per trading date.
    """
    from argo_engine import session

    data_output = Path(settings.session.data_output)
    clock = LiveClock()
    lock: SessionLock | None = None
    sid = settings.session.session_id
    if use_prefect:
        if sid:
            # A busy session is refused now, before Prefect's start-up; the flow takes the
            # lock itself for as long as it runs.
            probe_session(data_output, sid)
    else:
        sid = sid or session.new_session_id(clock)
        # One writer per session: held from before the run number is allocated until the
        # last date is closed; a second start of the session is refused here, writing nothing.
        lock = acquire_session(data_output, sid, now=clock.now())
    try:
        return _run_live(options, settings, console, sid, clock, use_prefect=use_prefect)
    finally:
        if lock is not None:
            lock.release()


def _run_live(
    options: RunOptions,
    settings: ArgoSettings,
    console: Console,
    session_id: str | None,
    clock: LiveClock,
    *,
    use_prefect: bool,
) -> list[dict[str, Any]]:
    from argo_engine import session
    from argo_engine.terminal import install_stop_signals, summary_table

    status = StatusLine()
    observer = status.callbacks()
    session.OBSERVERS.append(observer)
    stop = threading.Event()
    rows: list[dict[str, Any]] = []
    data_output = Path(settings.session.data_output)
    try:
        with _status_display(status, console) as refresh:
            if use_prefect:
                rows = _run_flow(options, status, refresh, live=console.is_terminal)
            else:
                install_stop_signals(stop)
                plan = session.start_session(settings, session_id=session_id, clock=clock)
                session_id = plan.session_id
                try:
                    _, summaries = session.run_session(settings, plan=plan, stop=stop)
                except BaseException:
                    session.discard_unused_start(settings, plan)
                    raise
                rows = [asdict(s) for s in summaries]
    finally:
        session.OBSERVERS.remove(observer)
    if use_prefect:
        session_id = _session_of(rows) or session_id
    report: Path | None = None
    report_error = ""
    if session_id is not None:
        if use_prefect:
            # The flow wrote it (publish_report) as its last step.
            written = session.report_path(data_output, session_id)
            report = written if written.exists() else None
        else:
            try:
                report = session.write_session_report(
                    data_output, session_id, settings.session.initial_capital
                )
            except Exception as exc:  # the session's data is complete; say what failed
                report_error = f"{type(exc).__name__}: {exc}"
    console.print(summary_table(rows))
    _print_where(console, session_id, rows, report)
    if session_id is not None:
        _print_continue(console, settings, session_id, status.last)
    if report_error:
        from argo_engine.terminal import fail

        fail(f"the HTML report could not be written: {report_error}", code=1)
    return rows


def _print_where(
    console: Console, session_id: str | None, rows: list[dict[str, Any]], report: Path | None
) -> None:
    """Print what a user needs next: the session id, the run folders, the report."""
    # soft_wrap: a long path is one line for the terminal to wrap, never split by rich.
    if session_id is not None:
        console.print(f"session: {session_id}", soft_wrap=True, markup=False, highlight=False)
    console.print("run folders:", highlight=False)
    for row in rows:
        console.print(f"  {row['folder']}", soft_wrap=True, markup=False, highlight=False)
    if report is not None:
        console.print(f"report: {report}", soft_wrap=True, markup=False, highlight=False)
    else:
        console.print("report: not written", highlight=False)


def _print_continue(
    console: Console, settings: ArgoSettings, session_id: str, last: Bar | None
) -> None:
    """How to continue the session (its cumulative figures carry on) with the next bars."""
    flags = f"--session-id {session_id}"
    if settings.feed.kind in ("synthetic", "replay") and last is not None:
        # A bounded feed starts where it was told to: the next start is after the last bar.
        from argo_engine.domain.intervals import parse_interval
        from argo_engine.errors import ConfigurationError

        with contextlib.suppress(ConfigurationError):
            after = last.time.astimezone(UTC) + parse_interval(settings.session.interval)
            flags += f" --start {after.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    console.print("continue it: the same options plus", highlight=False)
    console.print(f"  {flags}", soft_wrap=True, markup=False, highlight=False)


def _session_of(rows: list[dict[str, Any]]) -> str | None:
    """The session id recorded in the first run folder of ``rows`` (the flow names it)."""
    from argo_engine.errors import RecoveryError
    from argo_engine.persistence.runs import read_run_yaml

    for row in rows:
        try:
            info = read_run_yaml(Path(row["folder"]))
        except RecoveryError:
            continue
        if info is not None:
            return info.session_id
    return None


@contextlib.contextmanager
def _status_display(status: StatusLine, console: Console) -> Iterator[Callable[[], None]]:
    """Show the status line while the block runs; yields a function that redraws it.

    On a terminal the line is redrawn in place four times a second. Piped or redirected, it
    is printed once at the end, as a whole line, so that nothing printed after it (the
    summary, an error on stderr) is glued onto it and no cursor codes reach the file.
    """
    if not console.is_terminal:
        try:
            yield lambda: None
        finally:
            console.print(status.render(final=True), soft_wrap=True)
        return
    with Live(status.render(), console=console, refresh_per_second=4, transient=False) as live:
        ticker = threading.Event()

        def redraw() -> None:
            live.update(status.render())

        def refresh() -> None:
            while not ticker.wait(0.25):
                redraw()

        thread = threading.Thread(target=refresh, daemon=True)
        thread.start()
        try:
            yield redraw
        finally:
            ticker.set()
            thread.join()
            live.update(status.render(final=True))


SKIP_HINT = "to skip it: PREFECT_API_URL=<a running Prefect server>, or --no-prefect"


def _run_flow(
    options: RunOptions, status: StatusLine, refresh: Callable[[], None], *, live: bool
) -> list[dict[str, Any]]:
    """Run the trading-session flow, starting a temporary local Prefect API when none is set.

    The API server starts in a child process while this one imports prefect and the flows,
    and stops with the run (or with this process, however it ends).
    """

    def show(text: str) -> None:
        if not live and text != status.phase:
            # Piped: each step of the start-up is a line of its own (on stderr, beside errors).
            err_console.print(text, soft_wrap=True, markup=False, highlight=False)
        status.phase = text
        refresh()

    # Imported lazily: the flows package imports prefect, the library never does (local_api
    # itself does not, so the server starts before the 3 s of importing prefect).
    local_api = importlib.import_module("flows.local_api")
    url = local_api.configured_api_url()
    with contextlib.ExitStack() as stack:
        api = None
        if url is None:
            show(f"starting the local Prefect API... ({SKIP_HINT})")
            api = stack.enter_context(local_api.LocalApi(on_wait=show))
            show(f"starting the local Prefect API... ({SKIP_HINT})")
            stack.enter_context(local_api.api_environment(api.url))
        else:
            show(f"connecting to the Prefect API at {url}...")
        flows_session = importlib.import_module("flows.session")
        if api is not None:
            api.wait_ready()
        show("starting the trading-session flow...")
        return list(flows_session.trading_session(options=options))
