"""Market-data validation: a bad bar is rejected with a DataError, never a crash."""

from __future__ import annotations

import math
from collections.abc import Container

from argo_engine.domain.market import Bar
from argo_engine.errors import DataError

_INF = math.inf


def validate_bar(bar: Bar, symbols: Container[str]) -> DataError | None:
    """Check one bar's values (ordering is checked by the engine).

    Args:
        bar: The bar to check.
        symbols: Symbols of the session.

    Returns:
        A DataError describing the first problem found, or None when the bar is valid.
    """
    o, h, lo, c, v = bar.open, bar.high, bar.low, bar.close, bar.volume
    # Fast path, one chained comparison: positive, finite (NaN fails every comparison, and
    # every price is within [low, high] < inf) and ordered; the checks below name a problem.
    try:
        if (
            0.0 < lo <= o <= h < _INF
            and lo <= c <= h
            and 0.0 <= v < _INF
            and bar.symbol in symbols
            and bar.time.tzinfo is not None
        ):
            return None
    except TypeError:
        pass  # a non-numeric field: the checks below report it
    if bar.symbol not in symbols:
        return DataError(f"bar for unknown symbol {bar.symbol!r}", symbol=bar.symbol)
    if bar.time.tzinfo is None:
        return DataError("bar time has no time zone", symbol=bar.symbol)
    # NaN compares false with everything, so test finiteness explicitly first.
    if not (math.isfinite(o) and math.isfinite(h) and math.isfinite(lo) and math.isfinite(c)):
        return DataError(
            f"non-finite price in {bar.symbol} bar at {bar.time.isoformat()}", symbol=bar.symbol
        )
    if not math.isfinite(v) or v < 0:
        return DataError(
            f"invalid volume {v!r} in {bar.symbol} bar at {bar.time.isoformat()}",
            symbol=bar.symbol,
        )
    if o <= 0 or h <= 0 or lo <= 0 or c <= 0:
        return DataError(
            f"non-positive price in {bar.symbol} bar at {bar.time.isoformat()}", symbol=bar.symbol
        )
    if h < lo:
        return DataError(
            f"high {h} < low {lo} in {bar.symbol} bar at {bar.time.isoformat()}",
            symbol=bar.symbol,
        )
    if not (lo <= o <= h and lo <= c <= h):
        return DataError(
            f"open/close outside [low, high] in {bar.symbol} bar at {bar.time.isoformat()}",
            symbol=bar.symbol,
        )
    return None
