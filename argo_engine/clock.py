"""Injected time: the engine and feeds never call ``datetime.now`` or ``time.sleep`` directly."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Source of wall time and of interruptible waiting."""

    def now(self) -> datetime:
        """Current UTC time (timezone-aware)."""
        ...

    def monotonic(self) -> float:
        """Monotonic seconds, for intervals and flush cadence."""
        ...

    def wait(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Wait up to ``seconds``; return True if ``stop`` was set meanwhile."""
        ...


class LiveClock:
    """The real clock."""

    def now(self) -> datetime:
        """Current UTC time."""
        return datetime.now(UTC)

    # Monotonic seconds: the builtin itself (the engine reads it twice per bar).
    monotonic = staticmethod(time.monotonic)

    def wait(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Sleep, waking early when ``stop`` is set."""
        if seconds <= 0:
            return bool(stop and stop.is_set())
        if stop is None:
            time.sleep(seconds)
            return False
        return stop.wait(seconds)


class FakeClock:
    """A manual clock for tests: time moves only when told to (or when waited on).

    Args:
        start: Initial time (UTC).
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2025, 10, 1, tzinfo=UTC)
        self._mono = 0.0

    def now(self) -> datetime:
        """Current fake time."""
        return self._now

    def monotonic(self) -> float:
        """Fake monotonic seconds."""
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self._now += timedelta(seconds=seconds)
        self._mono += seconds

    def wait(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Advance instantly instead of sleeping."""
        if stop is not None and stop.is_set():
            return True
        self.advance(max(seconds, 0.0))
        return False
