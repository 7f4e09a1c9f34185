"""The trading-date lifecycle: open (or reopen) a date's folder, roll to the next, close.

A date's folder is opened with its writers, the saved state restored and reconciled with the
files (``reconcile.py``). On a new date the old one closes on its writers' flusher thread
while the next one streams (at most ``_MAX_CLOSING`` at once); finished closes are reaped
from the bar loop and reported (``on_day_closed``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from argo_engine.domain.enums import LogLevel
from argo_engine.engine.flush_schedule import FlushSchedule
from argo_engine.engine.reconcile import (
    Reconciliation,
    mark_recovery,
    open_trade_log,
    unmark_recovery,
)
from argo_engine.engine.state import STATE_FILE, load_state
from argo_engine.errors import RecoveryError
from argo_engine.persistence.files import atomic_write_bytes, move_aside
from argo_engine.persistence.runs import RunInfo, open_run_folder, parse_run_number
from argo_engine.persistence.schema import JOURNAL_DIR, STATS_FILE
from argo_engine.persistence.stats_yaml import (
    plain_document,
    read_stats_yaml,
    write_stats_yaml,
)
from argo_engine.persistence.writers import RunWriters

# Dates whose final flush may run in the background at once (see TradingDay._roll).
_MAX_CLOSING = 4


@dataclass(frozen=True, slots=True)
class ClosedDay:
    """A trading date this engine closed (its folder final, on_day_closed fired).

    Attributes:
        date: The trading date.
        run_id: ``run_N`` of its folder.
        folder: Its run folder.
        daily: Its final daily stats block.
        cumulative: The cumulative stats block at its end.
    """

    date: date
    run_id: str
    folder: Path
    daily: dict[str, Any]
    cumulative: dict[str, Any]


@dataclass(slots=True)
class _Closing:
    """A date being finalized on its writers' flusher thread while the next one streams."""

    day: ClosedDay
    done: Future[None]
    # Set by the flusher when ``done`` completes: a plain read per bar, no lock.
    finished: bool = False

    def __post_init__(self) -> None:
        self.done.add_done_callback(self._finish)

    def _finish(self, _: Future[None]) -> None:
        self.finished = True


class TradingDay(Reconciliation, FlushSchedule):
    """Opens, rolls and closes trading dates (a part of ``TradingEngine``).

    Attributes:
        closed_days: The dates this engine closed, in order.
    """

    closed_days: list[ClosedDay]
    # Dates whose final flush runs in the background, oldest first.
    _closing: list[_Closing]
    # The fsync of a rolling date's rows, for the next date's writers to run first.
    _sync_first: Callable[[], None] | None

    def day_bounds(self, day: date) -> tuple[datetime, datetime]:
        """UTC [start, end) of a trading date in the configured zone and day start."""
        return trading_day_bounds(day, self._tz, self._day_start)

    def open_day(
        self, day: date, state: Mapping[str, Any] | None = None, *, folder: Path | None = None
    ) -> Path:
        """Open (or reopen, on retry) the run folder of ``day`` and restore state into the engine.

        Args:
            day: Trading date.
            state: Engine state to restore (from :meth:`save_state` of this or an earlier
                folder); the folder's own saved state wins when present (a retry).
            folder: An existing run folder of this run on ``day`` to reopen (the recovery of
                a crashed folder); by default the run's folder of ``day`` is found or created.

        Returns:
            The run folder.
        """
        info = RunInfo(
            session_id=self.session_id,
            run_id=f"run_{self.run_number}",
            run_number=self.run_number,
            date=day,
            strategy=self.strategy_info.name,
            symbols=self.symbols,
            interval=self.settings.session.interval,
            start_time=self.session_start,
        )
        if folder is None:
            number, folder = open_run_folder(self.data_output, day, self.run_number, info)
        else:
            # Recovery names the folder it found: whichever N it holds, this run wrote it.
            found = parse_run_number(folder.name)
            if found is None or folder.parent != self.data_output / day.isoformat():
                raise ValueError(f"{folder} is not a run folder of {day.isoformat()}")
            number = found
        self.run_id_on_day = f"run_{number}"
        recovering = mark_recovery(folder)
        self.writers = RunWriters(
            folder,
            clock=self.clock,
            flush_interval_s=self.settings.persistence.flush_interval_s,
            max_write_share=self.settings.persistence.max_write_share,
            background=self.settings.persistence.background_flush,
            before_first=self._sync_first,
            version_interval_s=self.settings.persistence.parquet_interval_s,
        )
        self.folder = folder
        self.day = day
        self._day_lo, self._day_hi = self.day_bounds(day)
        self._accepted.open(folder)
        stats_path = folder / STATS_FILE
        if stats_path.exists():
            try:
                read_stats_yaml(stats_path)
            except (ValueError, yaml.YAMLError, OSError):
                # Never overwrite what we cannot read: keep it for a human, then rewrite.
                self.writers.corrupt_files.append(move_aside(stats_path, self.clock.now()))
        try:
            own = load_state(folder)
        except RecoveryError:
            moved = move_aside(folder / JOURNAL_DIR / STATE_FILE, self.clock.now())
            self.writers.corrupt_files.append(moved)
            own = None
        chosen = own if own is not None else state
        if chosen is not None:
            self.restore_state(chosen, day)
        elif self.stats is None:
            self.stats = self._new_stats(day)
        elif self.stats.trading_date != day:
            self.stats.roll_day(day)
        self._day_trades = open_trade_log(folder, own)
        lost = self._reconcile_with_files()
        if recovering or lost:
            # Statistics are derived data: after a crash (rows may have been dropped with a
            # damaged journal line, or derived again) they are rebuilt from the stored trades
            # and bars, never carried on from a state that may disagree with them.
            pnl = self._rebuild_stats(lost)
            for fill in lost:
                self.writers.append_fill(fill.with_pnl(pnl.get(fill.trade_id, fill.pnl)))
        self._replay_last_prices()
        for path in self.writers.corrupt_files:
            self.record_log(
                f"unreadable file moved aside: {path.name}",
                level=LogLevel.ERROR,
                fields={"path": str(path)},
            )
        for dropped in self.writers.dropped_journal_lines:
            # Exactly what the moved-aside journal held that no file holds now.
            self.record_log(
                f"damaged journal line dropped in {folder}: {dropped}",
                level=LogLevel.ERROR,
                fields={"folder": str(folder)},
            )
        self._stats_dirty = True
        if recovering:
            # The reconciled state and stats.yaml are durable before the marker goes: from
            # then on the folder is like any other (a crash leaves rows in its journals).
            self.save_state()
            self.write_stats()
            unmark_recovery(folder)
        elif self.writers.background:
            if self.writers.idle():
                # The flusher writes the folder's first stats.yaml (and state) right away.
                self._submit_interval_flush(self.writers, with_state=True, full=False)
            # Otherwise the flusher is creating the new folder's files: the first bar that
            # finds it idle hands stats.yaml over (it is due: dirty, no minimum spacing yet).
            self._stats_earliest = 0.0
        else:
            self.write_stats()
        return folder

    def close_day(self) -> dict[str, Any]:
        """Finalize the current day: flush every file, final stats.yaml, on_day_closed.

        Returns:
            The closing day's final daily stats block.
        """
        writers, _, day = self._require_day()
        self._reap_closing(wait=True)
        self.save_state()
        self._stats_dirty = True
        self.write_stats()
        writers.finalize()
        self._accepted.drain(remove=True)
        closed = self._closed_day()
        self.closed_days.append(closed)
        self._fire("on_day_closed", day, closed.daily)
        return closed.daily

    def _closed_day(self) -> ClosedDay:
        _, stats, day = self._require_day()
        assert self.folder is not None
        return ClosedDay(
            date=day,
            run_id=self.run_id_on_day,
            folder=self.folder,
            daily=stats.daily_block(),
            cumulative=stats.cumulative_block(),
        )

    def _roll(self, new_day: date) -> None:
        writers, _, _ = self._require_day()
        start_close: Callable[[], None] | None = None
        sync_closing: Callable[[], None] | None = None
        if writers.background:
            start_close = self._close_in_background()
            # Every state saved from now on (the next date's first, within milliseconds)
            # counts this date's rows, so they must be durable before it, not only when this
            # date's close reaches its fsync (queued behind a flush that may still run). The
            # next date's writers fsync them before their first job: not on this thread.
            sync_closing = writers.sync_later()
        else:
            self.close_day()
            writers.close()
        self.writers = None
        assert self.stats is not None
        self.stats.roll_day(new_day)
        self._sync_first = sync_closing
        try:
            self.open_day(new_day)
        finally:
            self._sync_first = None
        if start_close is not None:
            # Started once the next date is open: opening is many short system calls, each of
            # which would otherwise wait for the GIL while the close runs Python code.
            start_close()

    def _close_in_background(self) -> Callable[[], None]:
        """Prepare closing the current date on its writers' flusher thread (call the result).

        The final engine state and stats.yaml are snapshotted here and written once the
        date's journals are fsynced; its parquet files are written and its journals removed
        after that. on_day_closed fires (on this thread) once the folder is final, at a later
        bar or when the stream ends. A crash meanwhile leaves the journals behind, and the
        next start recovers the folder like any crashed one.
        """
        writers, _, _ = self._require_day()
        assert self.folder is not None
        trades, counted = self._day_trades, self._counted_trades()
        data = self._state_bytes()
        document = plain_document(self._stats_document())
        folder = self.folder
        accepted = self._accepted.detach()

        def after_sync() -> None:
            (folder / JOURNAL_DIR).mkdir(exist_ok=True)
            if trades is not None:
                trades.sync_to(counted)  # before the state that counts them
            atomic_write_bytes(folder / JOURNAL_DIR / STATE_FILE, data)
            write_stats_yaml(folder / STATS_FILE, document)

        def after_final() -> None:
            if accepted is not None:
                # The saved state holds every order accepted on this date.
                accepted.remove()

        closed = self._closed_day()

        def start() -> None:
            done = writers.finalize_in_background(after_sync, after_final)
            self._closing.append(_Closing(closed, done))
            # Back-pressure: dates must not close more slowly than they stream for long, or
            # their rows would pile up in memory.
            while len(self._closing) > _MAX_CLOSING:
                self._reap_closing(wait=True, limit=1)

        return start

    def _reap_closing(self, *, wait: bool, limit: int | None = None) -> None:
        """Report the dates whose background close has ended (all of them with ``wait``).

        Args:
            wait: Wait for closes still running.
            limit: Report at most this many (oldest first).

        Raises:
            PersistenceError: If a background close failed (its journals stay for recovery).
        """
        failed: BaseException | None = None
        while self._closing and (limit is None or limit > 0):
            if limit is not None:
                limit -= 1
            closing = self._closing[0]
            if not wait and not closing.finished:
                break
            del self._closing[0]
            try:
                closing.done.result()
            except BaseException as exc:
                # The dates closing after it are still waited for and reported; the first
                # failure is raised once they are.
                failed = failed or exc
                continue
            self.closed_days.append(closing.day)
            self._fire("on_day_closed", closing.day.date, closing.day.daily)
        if failed is not None:
            raise failed


def trading_day_bounds(
    day: date, tz: ZoneInfo, day_start: time | None
) -> tuple[datetime, datetime]:
    """UTC [start, end) of a trading date (inverse of ``trading_date``).

    With a day start (e.g. 17:00), date D runs from D-1 17:00 to D 17:00 local time.
    """
    start_t = day_start or time(0, 0)
    first = day - timedelta(days=1) if day_start is not None else day
    lo = datetime.combine(first, start_t, tzinfo=tz).astimezone(UTC)
    hi = datetime.combine(first + timedelta(days=1), start_t, tzinfo=tz).astimezone(UTC)
    return lo, hi


__all__ = ["ClosedDay", "TradingDay", "trading_day_bounds"]
