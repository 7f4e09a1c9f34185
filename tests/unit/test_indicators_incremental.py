"""Incremental indicators against naive full recomputation."""

from __future__ import annotations

import math
import random

import pytest

from argo_engine.strategies.indicators import ATR, EMA, MACD, RSI, SMA, BollingerBands


def series(n: int, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    x = 100.0
    out = []
    for _ in range(n):
        x *= math.exp(rng.gauss(0, 0.01))
        out.append(x)
    return out


def naive_rsi(closes: list[float], i: int, period: int) -> float | None:
    if i < period:
        return None
    diffs = [closes[j] - closes[j - 1] for j in range(i - period + 1, i + 1)]
    gain = sum(d for d in diffs if d > 0) / period
    loss = sum(-d for d in diffs if d < 0) / period
    return 100.0 if loss == 0 else 100 - 100 / (1 + gain / loss)


def naive_ema(xs: list[float], period: int) -> list[float | None]:
    out: list[float | None] = []
    value: float | None = None
    alpha = 2 / (period + 1)
    for i, x in enumerate(xs):
        if i + 1 < period:
            out.append(None)
            continue
        if value is None:
            value = sum(xs[i + 1 - period : i + 1]) / period
        else:
            value = value + alpha * (x - value)
        out.append(value)
    return out


@pytest.mark.parametrize("period", [2, 14, 30])
def test_sma_and_rsi_match_naive(period: int) -> None:
    xs = series(500, seed=period)
    sma, rsi = SMA(period), RSI(period)
    for i, x in enumerate(xs):
        got = sma.update(x)
        want = None if i + 1 < period else sum(xs[i + 1 - period : i + 1]) / period
        assert (got is None and want is None) or got == pytest.approx(want)
        r = rsi.update(x)
        nr = naive_rsi(xs, i, period)
        assert (r is None and nr is None) or r == pytest.approx(nr, abs=1e-7)


def test_rsi_is_100_without_losses() -> None:
    rsi = RSI(3)
    for x in (1.0, 2.0, 3.0, 4.0):
        value = rsi.update(x)
    assert value == 100.0


def test_ema_macd_match_naive() -> None:
    xs = series(400, seed=3)
    ema = EMA(10)
    want = naive_ema(xs, 10)
    for i, x in enumerate(xs):
        got = ema.update(x)
        assert (got is None and want[i] is None) or got == pytest.approx(want[i])
    macd = MACD(12, 26, 9)
    fast, slow = naive_ema(xs, 12), naive_ema(xs, 26)
    lines = [f - s for f, s in zip(fast, slow, strict=True) if f is not None and s is not None]
    signal = naive_ema(lines, 9)
    results = [v for v in (macd.update(x) for x in xs) if v is not None]
    expected = [(ln, sg, ln - sg) for ln, sg in zip(lines, signal, strict=True) if sg is not None]
    assert len(results) == len(expected)
    for got, exp in zip(results, expected, strict=True):
        assert got == pytest.approx(exp)


def test_bollinger_and_atr_match_naive() -> None:
    xs = series(300, seed=5)
    bb = BollingerBands(20, 2.0)
    for i, x in enumerate(xs):
        got = bb.update(x)
        if i + 1 < 20:
            assert got is None
            continue
        window = xs[i - 19 : i + 1]
        mean = sum(window) / 20
        sd = math.sqrt(sum((w - mean) ** 2 for w in window) / 20)
        assert got == pytest.approx((mean, mean + 2 * sd, mean - 2 * sd))
    atr = ATR(14)
    trs: list[float] = []
    value: float | None = None
    prev: float | None = None
    for x in xs:
        h, lo, c = x * 1.01, x * 0.99, x
        tr = h - lo if prev is None else max(h - lo, abs(h - prev), abs(lo - prev))
        prev = c
        if value is None:
            trs.append(tr)
            if len(trs) == 14:
                value = sum(trs) / 14
        else:
            value = (value * 13 + tr) / 14
        got = atr.update(h, lo, c)
        assert (got is None and value is None) or got == pytest.approx(value)


def test_no_float_drift_over_100k_updates() -> None:
    xs = series(100_000, seed=9)
    sma, rsi, bb = SMA(50), RSI(14), BollingerBands(50)
    for x in xs:
        sma.update(x)
        rsi.update(x)
        bb.update(x)
    tail = xs[-50:]
    assert sma.value == pytest.approx(sum(tail) / 50, rel=1e-12)
    assert rsi.value == pytest.approx(naive_rsi(xs, len(xs) - 1, 14), abs=1e-9)
    assert bb.value is not None
    assert bb.value[0] == pytest.approx(sum(tail) / 50, rel=1e-12)
