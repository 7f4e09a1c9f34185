"""Scripted feeds for tests: bars from a list, optionally failing once."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import datetime

from argo_engine.domain.market import Bar
from argo_engine.errors import ArgoError
from argo_engine.ports import MarketDataFeed


class ListFeed:
    """A feed that yields the given bars in the given order (bad bars included).

    Args:
        bars: Bars to yield.
        fail_at: Index before which ``error`` is raised once (fault injection), or None.
        error: The error raised at ``fail_at``.
    """

    def __init__(
        self,
        bars: Sequence[Bar],
        *,
        fail_at: int | None = None,
        error: ArgoError | None = None,
    ) -> None:
        self._bars = list(bars)
        self._fail_at = fail_at
        self._error = error
        self.failed = False

    def stream(self, stop: threading.Event) -> Iterator[Bar]:
        """Yield the bars; raise the injected error once at ``fail_at``."""
        for i, bar in enumerate(self._bars):
            if stop.is_set():
                return
            if self._fail_at == i and not self.failed and self._error is not None:
                self.failed = True
                raise self._error
            yield bar

    def history(self, symbol: str, start: datetime, end: datetime) -> list[Bar]:
        """Bars of ``symbol`` within [start, end)."""
        return [b for b in self._bars if b.symbol == symbol and start <= b.time < end]

    def close(self) -> None:
        """Nothing to release."""


class FailOnceFeed:
    """Wrap a feed and raise ``error`` once, after ``after`` bars (fault injection).

    Args:
        inner: The real feed.
        after: Bars yielded before the failure.
        error: What to raise.
    """

    def __init__(self, inner: MarketDataFeed, *, after: int, error: ArgoError) -> None:
        self._inner = inner
        self._after = after
        self._error = error
        self.armed = True
        self.failed = False

    def stream(self, stop: threading.Event) -> Iterator[Bar]:
        """Yield the inner feed's bars; fail once when armed."""
        for i, bar in enumerate(self._inner.stream(stop)):
            if self.armed and not self.failed and i == self._after:
                self.failed = True
                raise self._error
            yield bar

    def history(self, symbol: str, start: datetime, end: datetime) -> list[Bar]:
        """Delegate to the inner feed."""
        return self._inner.history(symbol, start, end)

    def close(self) -> None:
        """Close the inner feed."""
        self._inner.close()
