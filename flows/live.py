"""A live view of a streaming trading date in the Prefect UI.

While ``stream_session`` runs, a background thread reads the engine's figures
(:func:`argo_engine.engine.live.live_figures`: counters and positions copied off the bar path)
and updates, in place, a progress artifact (share of the trading date streamed, by bar time)
and a markdown artifact (bars, orders, fills, PnL, open positions, last bar time). The engine
does no work for it on any bar; the thread wakes every ``interval_s`` seconds and skips an
update when nothing changed. A failing API call is logged and retried on the next tick: the
live view must never stop trading.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

from prefect.artifacts import create_markdown_artifact, create_progress_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactUpdate

from argo_engine.engine.core import TradingEngine
from argo_engine.engine.live import LiveFigures, live_figures

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 3.0


def live_markdown(figures: LiveFigures, session_id: str, *, final: bool = False) -> str:
    """The live view's markdown: one table of figures and one of open positions."""
    when = figures.last_bar_time.isoformat() if figures.last_bar_time else "-"
    state = "closed" if final else "streaming"
    lines = [
        f"### {figures.day} {figures.run_id} of session `{session_id}` ({state})",
        "",
        "| figure | value |",
        "|---|---|",
        f"| last bar | {when} |",
        f"| bars | {figures.bars:,} |",
        f"| rejected bars | {figures.rejected_bars:,} |",
        f"| orders | {figures.orders:,} |",
        f"| fills | {figures.fills:,} |",
        f"| realized PnL (session) | {figures.realized_pnl:,.2f} |",
        f"| unrealized PnL | {figures.unrealized_pnl:,.2f} |",
        f"| open positions | {len(figures.positions)} |",
        "",
    ]
    if figures.positions:
        lines += ["| symbol | side | quantity | average price |", "|---|---|---:|---:|"]
        lines += [
            f"| {p.symbol} | {p.position_type.value} | {p.quantity:g} | {p.average_price:,.4f} |"
            for p in figures.positions
        ]
        lines.append("")
    lines.append(f"Run folder (on the worker): `{figures.run_folder}`")
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    lines.append(f"\nUpdated {stamp}.")
    return "\n".join(lines)


class LiveDayView:
    """Keeps a progress and a markdown artifact of one streaming date current.

    Args:
        session_id: The session (for the artifact key and title).
        day: Trading date, ISO.
        day_bounds: UTC [start, end) of the trading date (progress is by bar time).
        interval_s: Seconds between updates.
    """

    def __init__(
        self,
        session_id: str,
        day: str,
        day_bounds: tuple[datetime, datetime],
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        self.session_id = session_id
        self.day = day
        self.lo, self.hi = day_bounds
        self.interval_s = interval_s
        self.key = artifact_key(f"live-{session_id}-{day}")
        self._engine: TradingEngine | None = None
        self._last: LiveFigures | None = None
        self._wake = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._progress_id: UUID | None = None
        self._markdown_id: UUID | None = None
        self.updates = 0

    def observe(self, engine: TradingEngine | None) -> None:
        """``stream_day``'s observer: start with the engine, stop (final update) on None."""
        if engine is not None:
            self._engine = engine
            self._start()
            return
        self._stop()

    def _start(self) -> None:
        try:
            # Created from the task's thread, so Prefect ties them to this task run.
            self._progress_id = cast(
                UUID,
                create_progress_artifact(
                    progress=0.0,
                    description=f"share of {self.day} streamed (session {self.session_id})",
                ),
            )
            self._markdown_id = cast(
                UUID,
                create_markdown_artifact(
                    key=self.key,
                    markdown=f"### {self.day}: starting",
                    description=f"live figures of {self.day} (session {self.session_id})",
                ),
            )
        except Exception:
            log.warning("live view of %s could not be created", self.day, exc_info=True)
            return
        self._thread = threading.Thread(target=self._loop, name="argo-live-view", daemon=True)
        self._thread.start()

    def _stop(self) -> None:
        if self._thread is not None:
            self._done.set()
            self._wake.set()
            self._thread.join(timeout=30)
            self._thread = None
        self._engine = None

    def _loop(self) -> None:
        with get_client(sync_client=True) as client:
            while not self._done.is_set():
                self._wake.wait(self.interval_s)
                self._wake.clear()
                self._tick(client, final=self._done.is_set())

    def _tick(self, client: Any, *, final: bool) -> None:
        engine = self._engine
        if engine is None:
            return
        try:
            figures = live_figures(engine)
        except (RuntimeError, IndexError):
            return  # the engine kept changing under the copy: next tick
        if figures == self._last and not final:
            return
        try:
            if self._progress_id is not None:
                client.update_artifact(
                    self._progress_id, ArtifactUpdate(data=self._progress(figures))
                )
            if self._markdown_id is not None:
                client.update_artifact(
                    self._markdown_id,
                    ArtifactUpdate(data=live_markdown(figures, self.session_id, final=final)),
                )
        except Exception:
            log.warning("live view of %s not updated", self.day, exc_info=True)
            return
        self._last = figures
        self.updates += 1

    def _progress(self, figures: LiveFigures) -> float:
        if figures.last_bar_time is None:
            return 0.0
        span = (self.hi - self.lo).total_seconds()
        done = (figures.last_bar_time - self.lo).total_seconds()
        return 100.0 * min(max(done / span, 0.0), 1.0) if span > 0 else 0.0


def artifact_key(text: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    cleaned = "".join(c if c.isalnum() else "-" for c in text.lower())
    return "-".join(part for part in cleaned.split("-") if part)[:100]
