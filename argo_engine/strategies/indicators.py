"""Incremental indicators: O(1) per update, ``None`` until warmed up.

Running sums are recomputed from the window every ``_RESYNC`` updates so that float drift
cannot accumulate over long sessions.
"""

from __future__ import annotations

import math
from collections import deque

_RESYNC = 10_000


class SMA:
    """Simple moving average of the last ``period`` values."""

    def __init__(self, period: int) -> None:
        if period < 1:
            raise ValueError("period must be >= 1")
        self.period = period
        self._window: deque[float] = deque(maxlen=period)
        self._sum = 0.0
        self._n = 0
        self.value: float | None = None

    @property
    def ready(self) -> bool:
        """Whether a value is available."""
        return self.value is not None

    def update(self, x: float) -> float | None:
        """Add a value; return the average once ``period`` values were seen."""
        if len(self._window) == self.period:
            self._sum -= self._window[0]
        self._window.append(x)
        self._sum += x
        self._n += 1
        if self._n % _RESYNC == 0:
            self._sum = math.fsum(self._window)
        if len(self._window) == self.period:
            self.value = self._sum / self.period
        return self.value


class EMA:
    """Exponential moving average, alpha = 2/(period+1), seeded with the SMA of the first values."""

    def __init__(self, period: int) -> None:
        if period < 1:
            raise ValueError("period must be >= 1")
        self.period = period
        self.alpha = 2.0 / (period + 1)
        self._seed = SMA(period)
        self.value: float | None = None

    @property
    def ready(self) -> bool:
        """Whether a value is available."""
        return self.value is not None

    def update(self, x: float) -> float | None:
        """Add a value."""
        if self.value is None:
            self.value = self._seed.update(x)
        else:
            self.value += self.alpha * (x - self.value)
        return self.value


class RSI:
    """RSI as in DESIGN.md: simple mean of the last ``period`` close-to-close gains and losses.

    The current bar is included; 100 when there is no loss in the window.
    """

    def __init__(self, period: int = 14) -> None:
        if period < 1:
            raise ValueError("period must be >= 1")
        self.period = period
        self._prev: float | None = None
        self._diffs: deque[float] = deque(maxlen=period)
        self._gain = 0.0
        self._loss = 0.0
        self._n = 0
        self.value: float | None = None

    @property
    def ready(self) -> bool:
        """Whether a value is available."""
        return self.value is not None

    def update(self, close: float) -> float | None:
        """Add a close."""
        # Called for every bar of every symbol: locals, one length check, no modulo.
        prev, self._prev = self._prev, close
        if prev is None:
            return None
        d = close - prev
        diffs = self._diffs
        period = self.period
        full = len(diffs) == period
        gain, loss = self._gain, self._loss
        if full:
            old = diffs[0]
            if old > 0:
                gain -= old
            else:
                loss += old
        diffs.append(d)
        if d > 0:
            gain += d
        else:
            loss -= d
        self._n += 1
        if self._n >= _RESYNC:
            self._n = 0
            gain = math.fsum(x for x in diffs if x > 0)
            loss = -math.fsum(x for x in diffs if x < 0)
        self._gain, self._loss = gain, loss
        if not full and len(diffs) < period:
            return None
        gain = (gain if gain > 0.0 else 0.0) / period
        loss = (loss if loss > 0.0 else 0.0) / period
        # Sums of exactly cancelling floats may leave dust; treat it as no loss.
        self.value = 100.0 if loss <= 1e-12 else 100.0 - 100.0 / (1.0 + gain / loss)
        return self.value


class MACD:
    """MACD line (EMA fast - EMA slow), its signal EMA and the histogram."""

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        self._fast = EMA(fast)
        self._slow = EMA(slow)
        self._signal = EMA(signal)
        self.value: tuple[float, float, float] | None = None

    @property
    def ready(self) -> bool:
        """Whether a value is available."""
        return self.value is not None

    def update(self, x: float) -> tuple[float, float, float] | None:
        """Add a value; return (macd, signal, histogram)."""
        f = self._fast.update(x)
        s = self._slow.update(x)
        if f is None or s is None:
            return None
        line = f - s
        sig = self._signal.update(line)
        if sig is None:
            return None
        self.value = (line, sig, line - sig)
        return self.value


class BollingerBands:
    """Middle (SMA), upper and lower bands at ``k`` population standard deviations."""

    def __init__(self, period: int = 20, k: float = 2.0) -> None:
        if period < 1:
            raise ValueError("period must be >= 1")
        self.period = period
        self.k = k
        self._window: deque[float] = deque(maxlen=period)
        self._sum = 0.0
        self._sq = 0.0
        self._n = 0
        self.value: tuple[float, float, float] | None = None

    @property
    def ready(self) -> bool:
        """Whether a value is available."""
        return self.value is not None

    def update(self, x: float) -> tuple[float, float, float] | None:
        """Add a value; return (middle, upper, lower)."""
        if len(self._window) == self.period:
            old = self._window[0]
            self._sum -= old
            self._sq -= old * old
        self._window.append(x)
        self._sum += x
        self._sq += x * x
        self._n += 1
        if self._n % _RESYNC == 0:
            self._sum = math.fsum(self._window)
            self._sq = math.fsum(v * v for v in self._window)
        if len(self._window) < self.period:
            return None
        mean = self._sum / self.period
        var = max(self._sq / self.period - mean * mean, 0.0)
        sd = math.sqrt(var)
        self.value = (mean, mean + self.k * sd, mean - self.k * sd)
        return self.value


class ATR:
    """Average true range with Wilder smoothing (seeded with the mean of the first ranges)."""

    def __init__(self, period: int = 14) -> None:
        if period < 1:
            raise ValueError("period must be >= 1")
        self.period = period
        self._prev_close: float | None = None
        self._seed: list[float] = []
        self.value: float | None = None

    @property
    def ready(self) -> bool:
        """Whether a value is available."""
        return self.value is not None

    def update(self, high: float, low: float, close: float) -> float | None:
        """Add a bar's high, low and close."""
        if self._prev_close is None:
            tr = high - low
        else:
            tr = max(high - low, abs(high - self._prev_close), abs(low - self._prev_close))
        self._prev_close = close
        if self.value is None:
            self._seed.append(tr)
            if len(self._seed) == self.period:
                self.value = sum(self._seed) / self.period
                self._seed = []
        else:
            self.value = (self.value * (self.period - 1) + tr) / self.period
        return self.value
