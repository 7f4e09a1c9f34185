"""A deterministic synthetic feed: a seeded random walk per symbol.

The walk mixes gaussian returns with slowly switching volatility regimes and a weak pull
toward the starting price, so that oscillator strategies (RSI 30/70) trade several times per
few hundred bars. Same seed, same bars, on every machine.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Literal

from argo_engine.clock import Clock, LiveClock
from argo_engine.domain.intervals import parse_interval
from argo_engine.domain.market import Bar
from argo_engine.errors import ConfigurationError

_DEFAULT_PRICES = {"BTCUSDT": 60_000.0, "ETHUSDT": 2_500.0}


class SyntheticFeed:
    """Seeded random-walk bars for a set of symbols.

    Args:
        symbols: Symbols to generate.
        interval: Bar interval (e.g. ``1m``).
        start: Open time of the first bar (UTC).
        bars: Bars per symbol; or
        end: Exclusive end time (exactly one of ``bars``/``end``).
        seed: Random seed.
        pace: ``fast`` yields as fast as possible; ``realtime`` waits one interval per bar.
        clock: Clock used for real-time pacing.
        start_prices: Starting price per symbol (defaults derived from the symbol).
    """

    def __init__(
        self,
        *,
        symbols: Sequence[str],
        interval: str,
        start: datetime,
        bars: int | None = None,
        end: datetime | None = None,
        seed: int = 42,
        pace: Literal["fast", "realtime"] = "fast",
        clock: Clock | None = None,
        start_prices: Mapping[str, float] | None = None,
    ) -> None:
        if bars is None and end is None:
            raise ConfigurationError(
                "the synthetic feed needs bars or end (or both)", field="feed.bars"
            )
        if start.tzinfo is None:
            raise ConfigurationError("feed start must be timezone-aware", field="feed.start")
        self.symbols = list(symbols)
        self.step = parse_interval(interval)
        self.start = start
        if bars is not None and bars <= 0:
            raise ConfigurationError("bars must be positive", field="feed.bars")
        # Both bound the feed: whichever ends it first.
        counts = [] if bars is None else [bars]
        if end is not None:
            counts.append(max(0, math.ceil((end - start) / self.step)))
        self.count = min(counts)
        self.seed = seed
        self.pace = pace
        self.clock = clock or LiveClock()
        self._prices = dict(start_prices or {})
        # Bars per walk segment: a day's worth (at least one).
        self._segment_len = max(1, round(timedelta(days=1) / self.step))
        self._resume: dict[str, tuple[int, float]] = {}

    def _start_price(self, symbol: str) -> float:
        if symbol in self._prices:
            return self._prices[symbol]
        if symbol in _DEFAULT_PRICES:
            return _DEFAULT_PRICES[symbol]
        return 10.0 + random.Random(f"price:{symbol}").random() * 990.0

    def _segment_rng(self, symbol: str, segment: int) -> random.Random:
        # Segment 0 keeps the walk's original seed: a session shorter than a day sees the
        # same bars as before segments existed.
        if segment == 0:
            return random.Random(f"{self.seed}:{symbol}")
        return random.Random(f"{self.seed}:{symbol}:{segment}")

    def _walk(
        self, symbol: str, first: int = 0, price: float | None = None
    ) -> Iterator[tuple[float, float, float, float, float]]:
        """The walk's values of ``symbol`` from bar index ``first`` on.

        The walk is cut into segments of a day's bars, each with its own seeded generator and
        starting volatility; the price carries over from segment to segment. So the bars from
        index ``first`` on depend only on the close of bar ``first - 1`` (``price``) and on the
        generator's draws since the start of ``first``'s segment, which are replayed without
        the price arithmetic: a resumed stream costs at most a day's draws, not the session's
        whole walk.
        """
        n = self._segment_len
        anchor = self._start_price(symbol)
        log_anchor = math.log(anchor)
        if first == 0 or price is None:
            first, price = 0, anchor
        segment, offset = divmod(first, n)
        rng = self._segment_rng(symbol, segment)
        gauss, rand = rng.gauss, rng.random
        sigma = 0.003
        for _ in range(offset):  # the draws of the segment's bars before ``first``
            if rand() < 0.01:
                sigma = 0.0015 + 0.004 * rand()
            gauss(0.0, 1.0)
            gauss(0.0, 1.0)
            gauss(0.0, 1.0)
            rand()
        left = n - offset
        for _ in range(self.count - first):
            if not left:  # a new segment: its own generator, volatility back to the start
                segment += 1
                left = n
                rng = self._segment_rng(symbol, segment)
                gauss, rand = rng.gauss, rng.random
                sigma = 0.003
            left -= 1
            if rand() < 0.01:  # volatility regime switch, about every 100 bars
                sigma = 0.0015 + 0.004 * rand()
            drift = -0.02 * (math.log(price) - log_anchor)
            ret = drift * 0.1 + gauss(0.0, sigma)
            open_ = price
            close = price * math.exp(ret)
            wick = abs(gauss(0.0, sigma * 0.5))
            high = max(open_, close) * (1.0 + wick)
            low = min(open_, close) * (1.0 - abs(gauss(0.0, sigma * 0.5)))
            volume = 1.0 + 100.0 * rand()
            yield open_, high, low, close, volume
            price = close

    def resume_after(self, last: Mapping[str, Bar]) -> None:
        """Start the next stream after these stored bars instead of at the feed's start.

        Each symbol's walk continues from its stored bar's close, so the bars that follow are
        those an uninterrupted stream would have yielded, without generating the bars before
        them again (a session resumed on its 140th date would otherwise regenerate 139 days
        of walk for the engine to skip). A symbol without a stored bar, or whose bar is not
        on this feed's time grid, starts from the beginning.

        Args:
            last: The last stored bar per symbol.
        """
        first: dict[str, tuple[int, float]] = {}
        for symbol in self.symbols:
            bar = last.get(symbol)
            if bar is None or bar.time is None or bar.time < self.start:
                continue
            index, rest = divmod(bar.time - self.start, self.step)
            if rest or not math.isfinite(bar.close) or bar.close <= 0:
                continue
            first[symbol] = (int(index) + 1, bar.close)
        self._resume = first

    def _bars(self) -> Iterator[Bar]:
        resume = self._resume
        starts = {s: resume.get(s, (0, None)) for s in self.symbols}
        begin = min((i for i, _ in starts.values()), default=0)
        walks = [(s, starts[s][0], self._walk(s, *starts[s])) for s in self.symbols]
        start, step = self.start, self.step
        for i in range(begin, self.count):
            t = start + i * step
            for symbol, first, walk in walks:
                if i >= first:
                    o, h, lo, c, v = next(walk)
                    yield Bar(symbol, t, o, h, lo, c, v)

    def stream(self, stop: threading.Event) -> Iterator[Bar]:
        """Yield bars in time order (all symbols of a time before the next time)."""
        realtime = self.pace == "realtime"
        step_s = self.step.total_seconds()
        current: datetime | None = None
        for bar in self._bars():
            if stop.is_set():
                return
            if realtime and bar.time != current:
                if current is not None and self.clock.wait(step_s, stop):
                    return
                current = bar.time
            yield bar

    def history(self, symbol: str, start: datetime, end: datetime) -> list[Bar]:
        """The same deterministic bars of ``symbol`` within [start, end)."""
        out = []
        walk = self._walk(symbol)
        for i in range(self.count):
            o, h, lo, c, v = next(walk)
            t = self.start + i * self.step
            if t >= end:
                break
            if t >= start:
                out.append(Bar(symbol, t, o, h, lo, c, v))
        return out

    def close(self) -> None:
        """Nothing to release."""
