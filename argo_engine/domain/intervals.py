"""Bar intervals: the Binance set, parsed once and validated up front."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from argo_engine.errors import ConfigurationError

SUPPORTED_INTERVALS: tuple[str, ...] = (
    "1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w",
    "1M",
)  # fmt: skip

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def is_supported_interval(text: str) -> bool:
    """Whether ``text`` is one of the supported intervals."""
    return text in SUPPORTED_INTERVALS


def parse_interval(text: str) -> timedelta:
    """Length of a fixed-length interval.

    Raises:
        ConfigurationError: For unsupported intervals, and for ``1M`` (months have no fixed
            length).
    """
    if text not in SUPPORTED_INTERVALS:
        raise ConfigurationError(
            f"unsupported interval {text!r}; use one of {', '.join(SUPPORTED_INTERVALS)}",
            field="interval",
        )
    if text == "1M":
        raise ConfigurationError(
            "interval '1M' (one month) has no fixed length; it is only valid for Binance klines",
            field="interval",
        )
    return timedelta(seconds=int(text[:-1]) * _UNITS[text[-1]])


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Binance weeks open on Monday; 1970-01-01 was a Thursday.
_WEEK_OFFSET = timedelta(days=4)


def check_interval(text: str) -> str:
    """Return ``text`` if it is a supported interval (``1M`` included).

    Raises:
        ConfigurationError: For anything else (never silently another interval).
    """
    if text not in SUPPORTED_INTERVALS:
        raise ConfigurationError(
            f"unsupported interval {text!r}; use one of {', '.join(SUPPORTED_INTERVALS)}",
            field="interval",
        )
    return text


def open_of(t: datetime, interval: str) -> datetime:
    """Open time (UTC) of the ``interval`` kline that contains ``t``, as Binance aligns them.

    Months open on the 1st at 00:00 UTC, weeks on Monday, everything else on multiples of its
    length since the Unix epoch.

    Raises:
        ConfigurationError: For an unsupported interval.
    """
    t = t.astimezone(UTC)
    if check_interval(interval) == "1M":
        return datetime(t.year, t.month, 1, tzinfo=UTC)
    step = parse_interval(interval)
    offset = _WEEK_OFFSET if interval == "1w" else timedelta(0)
    return t - (t - _EPOCH - offset) % step


def next_open(t: datetime, interval: str) -> datetime:
    """Open time of the kline after the one opening at ``t`` (calendar months for ``1M``).

    Raises:
        ConfigurationError: For an unsupported interval.
    """
    if check_interval(interval) == "1M":
        t = open_of(t, interval)
        if t.month == 12:
            return t.replace(year=t.year + 1, month=1)
        return t.replace(month=t.month + 1)
    return t + parse_interval(interval)
