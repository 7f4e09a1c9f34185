"""Run a session from the CLI with a live one-line status and a final summary."""

from __future__ import annotations

import contextlib
import importlib
import threading
from dataclasses import asdict
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

    def render(self) -> Text:
        """The status line."""
        when = self.last.time.strftime("%Y-%m-%d %H:%M") if self.last else "-"
        if self.bars == 0 and self.prefetch:
            return Text(self.prefetch)
        if self.bars == 0 and self.phase:
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
    from argo_engine.cli import install_stop_signals, summary_table

    status = StatusLine()
    observer = status.callbacks()
    session.OBSERVERS.append(observer)
    stop = threading.Event()
    rows: list[dict[str, Any]] = []
    with Live(status.render(), console=console, refresh_per_second=4, transient=False) as live:
        ticker = threading.Event()

        def refresh() -> None:
            while not ticker.wait(0.25):
                live.update(status.render())

        thread = threading.Thread(target=refresh, daemon=True)
        thread.start()
        try:
            if use_prefect:
                rows = _run_flow(options, status, live)
            else:
                install_stop_signals(stop)
                plan = session.start_session(settings, session_id=session_id, clock=clock)
                _, summaries = session.run_session(settings, plan=plan, stop=stop)
                rows = [asdict(s) for s in summaries]
        finally:
            ticker.set()
            thread.join()
            live.update(status.render())
            session.OBSERVERS.remove(observer)
    console.print(f"output: {settings.session.data_output}")
    for row in rows:
        console.print(f"  {row['folder']}")
    console.print(summary_table(rows))
    return rows


SKIP_HINT = "to skip it: PREFECT_API_URL=<a running Prefect server>, or --no-prefect"


def _run_flow(options: RunOptions, status: StatusLine, live: Live) -> list[dict[str, Any]]:
    """Run the trading-session flow, starting a temporary local Prefect API when none is set.

    The API server starts in a child process while this one imports prefect and the flows,
    and stops with the run (or with this process, however it ends).
    """

    def show(text: str) -> None:
        status.phase = text
        live.update(status.render())

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
