"""Child process of the kill test: run (or resume) a session and SIGKILL itself on cue.

Usage (from the repository root):
python -m tests.recovery.kill_child DATA_OUTPUT REPLAY_FILE SESSION_ID MODE N [STRATEGY]
MODE: none | bar (die at the N-th bar, after the strategy ran) | flush (die inside the N-th
parquet materialization, after the temp file is written and before the rename) | bgflush (the
same inside the background flusher, counting engine-state, stats.yaml and run.yaml writes too,
while the engine thread waits for the flusher's job: at the end of the bar that handed the
flush over, after a new folder's files are created, or at the roll while the closing date is
finalized) |
rollover (die right after the N-th day was closed, before the next day's folder exists) |
bar-closed (as bar, but each closing date is finalized before the next bar: the folders of
earlier dates are always closed when it dies).

Time is injected (:class:`BarClock`): the monotonic clock moves on :data:`BAR_STEP_S` per bar
(both symbols' bars of a minute make a minute), so flushes, stats.yaml writes and the spacing
of parquet writes depend on the bars alone, never on how fast this machine runs them: the N-th
write of a mode is the same write in every run.
STRATEGY: ``rsi`` (default: MARKET orders only) or ``limit`` (resting LIMIT entries and
take-profits, cancels, MARKET exits: see :class:`tests.recovery.strategies.LimitRsiStrategy`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from concurrent.futures import Future
from typing import Any

from argo_engine.clock import LiveClock
from argo_engine.domain.market import Bar
from argo_engine.engine.callbacks import EngineCallbacks
from argo_engine.persistence import files as files_module
from argo_engine.persistence import writers as writers_module
from argo_engine.persistence.files import temp_path
from argo_engine.session import run_session, start_session
from argo_engine.settings import load_settings

STRATEGIES: dict[str, dict[str, Any]] = {
    "rsi": {"name": "rsi"},
    "limit": {
        "name": "tests.recovery.strategies:LimitRsiStrategy",
        # BTCUSDT take-profits rest ~11 bars and fill; ETHUSDT's are mostly cancelled for a
        # MARKET exit.
        "params": {"overbought": 85.0, "symbol_discounts": {"BTCUSDT": 0.01}},
    },
}


# Two symbols per bar time, one minute apart: a minute of market time per two bars.
BAR_STEP_S = 30.0
# Flush intervals in (fake) seconds. Short enough that flushes, and the kill points inside
# them, happen every few bars; long enough that a parquet write's adaptive spacing
# (its real duration / max_write_share) never exceeds the interval, which would let machine
# speed decide again which writes happen.
FAST_FLUSH_S = 90.0
FLUSH_S = 600.0


class BarClock(LiveClock):
    """Monotonic time that moves only with the bars; wall time stays real.

    Flush cadence, stats.yaml spacing and parquet write spacing read the monotonic clock, so
    they follow the bars. Wall time only stamps files (saved_at, last_updated, session_start),
    and must keep going forward across the kills and restarts of a session, as a real clock
    does: a restart ranks the saved engine states of earlier runs by it.
    """

    def __init__(self) -> None:
        self._mono = 0.0

    def monotonic(self) -> float:
        """Seconds of bars seen so far (see :meth:`advance`)."""
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move monotonic time forward."""
        self._mono += seconds


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    data_output, replay, session_id, mode, n_text = sys.argv[1:6]
    strategy = STRATEGIES[sys.argv[6] if len(sys.argv) > 6 else "rsi"]
    n = int(n_text)
    settings = load_settings(
        None,
        session={"data_output": data_output, "symbols": ["BTCUSDT", "ETHUSDT"]},
        strategy=strategy,
        feed={"kind": "replay", "replay_file": replay},
        broker={"commission": "fixed_rate"},
        # A short interval in the flush modes (every third bar) so that flushes, and the kill
        # points inside them, happen often; every 20 bars otherwise. "flush" kills inside a
        # materialization: inline there, so that the engine thread is never caught between an
        # order's journal line and its fill's (a window whose outcome, FAILED, rightly differs
        # from the uninterrupted run). The other modes kill the engine thread at a bar
        # boundary while the background flusher may be anywhere in its work.
        persistence={
            "flush_interval_s": FAST_FLUSH_S if mode in ("flush", "bgflush") else FLUSH_S,
            "background_flush": mode != "flush",
        },
    )
    counter = {"bars": 0, "writes": 0, "days": 0}
    clock = BarClock()

    def on_bar(run_id: str, bar: Bar) -> None:
        counter["bars"] += 1
        # Before the strategy runs: the engine reads the clock after it, to decide what is due.
        clock.advance(BAR_STEP_S)

    def on_stats(stats: Any) -> None:
        # Fires after the strategy and the order routing of the bar: a kill here loses the
        # unflushed tail of the bar's rows, exactly like a crash mid-session.
        if mode in ("bar", "bar-closed") and counter["bars"] == n:
            die()

    def on_day_closed(day: Any, daily: Any) -> None:
        counter["days"] += 1
        if mode == "rollover" and counter["days"] == n:
            die()

    if mode in ("flush", "bgflush"):
        original = writers_module.atomic_write_with
        # Writes run on several threads (the engine, a date's flusher, a closing date's
        # flusher): the count must be taken under a lock, or two writes could step past n.
        count_lock = threading.Lock()

        def dying_write(path: Any, writer: Any, **options: Any) -> None:
            with count_lock:
                counter["writes"] += 1
                hit = counter["writes"] == n
            if hit:
                writer(temp_path(path))  # a complete temp file that never gets renamed
                die()
            original(path, writer, **options)

        writers_module.atomic_write_with = dying_write  # type: ignore[assignment]
    if mode == "bgflush":
        # The engine state goes through files.atomic_write_with (via atomic_write_bytes).
        files_module.atomic_write_with = dying_write  # type: ignore[assignment]
        start = writers_module.RunWriters._start

        def start_and_wait(self: Any, work: Any, *args: Any) -> None:
            # Every flusher job (a flush, a new folder's empty files) still runs on the
            # flusher thread; the engine waits for it at a bar boundary, so a kill inside it
            # never catches the engine between an order and its fill. Without the wait a
            # new folder's files could be created while many bars stream without a flush
            # (the engine hands none over while the flusher is busy), and the write count
            # would depend on thread scheduling.
            start(self, work, *args)
            self.wait()

        writers_module.RunWriters._start = start_and_wait  # type: ignore[method-assign]

    if mode in ("bgflush", "bar-closed"):
        finalize = writers_module.RunWriters.finalize_in_background

        def finalize_and_wait(
            self: Any, after_sync: Any = None, after_final: Any = None
        ) -> Future[None]:
            # The closing date is finalized on its flusher thread while the next date's
            # folder is open (its first state saved); the engine waits for it before the
            # next bar. The engine still reads the outcome from the future.
            done: Future[None] = finalize(self, after_sync, after_final)
            done.exception()
            return done

        writers_module.RunWriters.finalize_in_background = finalize_and_wait  # type: ignore[method-assign]

    plan = start_session(settings, session_id=session_id, clock=clock)
    run_session(
        settings,
        plan=plan,
        clock=clock,
        callbacks=EngineCallbacks(
            on_market_data=on_bar, on_stats_update=on_stats, on_day_closed=on_day_closed
        ),
    )


if __name__ == "__main__":
    main()
