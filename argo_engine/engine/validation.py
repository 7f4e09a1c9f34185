"""Market-data validation: a bad bar is rejected with a DataError, never a crash."""

from __future__ import annotations

import math
from collections.abc import Container
from datetime import datetime

from argo_engine.domain.market import Bar
from argo_engine.errors import DataError

_INF = math.inf
_FIELDS = ("open", "high", "low", "close", "volume")


def validate_bar(bar: Bar, symbols: Container[str]) -> DataError | None:
    """Check one bar's values (ordering is checked by the engine).

    Any value is tolerated here, whatever a feed sent (None, text, NaN, a naive time): the
    answer is a DataError naming the problem, never an exception. Numbers must be ``int`` or
    ``float``: text such as ``"101.5"`` is rejected, not converted.

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
            and type(o) is type(h) is type(lo) is type(c) is type(v) is float
        ):
            return None
    except (TypeError, AttributeError):
        pass  # a missing or non-numeric field: the checks below report it
    symbol = bar.symbol
    if not isinstance(symbol, str):
        return DataError(f"bar without a valid symbol ({symbol!r})", symbol=str(symbol))
    if symbol not in symbols:
        return DataError(f"bar for unknown symbol {symbol!r}", symbol=symbol)
    if not isinstance(bar.time, datetime):
        return DataError(f"{symbol} bar without a valid time ({bar.time!r})", symbol=symbol)
    if bar.time.tzinfo is None:
        return DataError("bar time has no time zone", symbol=symbol)
    at = f"{symbol} bar at {bar.time.isoformat()}"
    for name in _FIELDS:
        value = getattr(bar, name)
        if value is None:
            return DataError(f"missing {name} in {at}", symbol=symbol, field=name)
        if not _is_number(value):
            return DataError(
                f"non-numeric {name} {value!r} ({type(value).__name__}) in {at}",
                symbol=symbol,
                field=name,
            )
    # NaN compares false with everything, so test finiteness explicitly first.
    if not (math.isfinite(o) and math.isfinite(h) and math.isfinite(lo) and math.isfinite(c)):
        return DataError(f"non-finite price in {at}", symbol=symbol)
    if not math.isfinite(v) or v < 0:
        return DataError(f"invalid volume {v!r} in {at}", symbol=symbol)
    if o <= 0 or h <= 0 or lo <= 0 or c <= 0:
        return DataError(f"non-positive price in {at}", symbol=symbol)
    if h < lo:
        return DataError(f"high {h} < low {lo} in {at}", symbol=symbol)
    if not (lo <= o <= h and lo <= c <= h):
        return DataError(f"open/close outside [low, high] in {at}", symbol=symbol)
    return None


def _is_number(value: object) -> bool:
    # bool is an int subclass, but True is no price.
    return type(value) is float or (isinstance(value, (int, float)) and type(value) is not bool)
