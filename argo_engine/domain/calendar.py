"""Trading dates: market time in a configured zone decides the date of a bar."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def trading_date(ts: datetime, tz: ZoneInfo, day_start: time | None = None) -> date:
    """Trading date of a bar.

    Args:
        ts: Bar time, timezone-aware.
        tz: Zone in which dates are counted (DST handled by zoneinfo).
        day_start: Local time at which a trading date starts. A bar at or after it belongs to
            the next calendar date (futures convention: the session that opens Sunday 17:00
            New York time is Monday's). None means midnight.

    Returns:
        The trading date.
    """
    local = ts.astimezone(tz)
    if day_start is not None and local.timetz().replace(tzinfo=None) >= day_start:
        return local.date() + timedelta(days=1)
    return local.date()
