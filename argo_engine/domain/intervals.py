"""Bar intervals: the Binance set, parsed once and validated up front."""

from __future__ import annotations

from datetime import timedelta

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
