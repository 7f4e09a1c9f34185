"""Kline alignment and stepping, as Binance opens klines."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from argo_engine.domain.intervals import check_interval, next_open, open_of
from argo_engine.errors import ConfigurationError


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("t", "interval", "opened"),
    [
        (utc(2025, 10, 1, 13, 7, 42), "5m", utc(2025, 10, 1, 13, 5)),
        (utc(2025, 10, 1, 13, 7, 42), "4h", utc(2025, 10, 1, 12)),
        (utc(2025, 10, 1, 13), "1w", utc(2025, 9, 29)),  # a Monday
        (utc(2025, 10, 5, 23, 59), "1w", utc(2025, 9, 29)),  # Sunday: same week
        (utc(2024, 2, 29, 12), "1M", utc(2024, 2, 1)),
    ],
)
def test_open_of_aligns_like_binance(t: datetime, interval: str, opened: datetime) -> None:
    assert open_of(t, interval) == opened


def test_months_step_by_the_calendar() -> None:
    t = utc(2024, 11, 1)
    opens = []
    for _ in range(5):
        opens.append(t)
        t = next_open(t, "1M")
    assert [(o.year, o.month) for o in opens] == [
        (2024, 11), (2024, 12), (2025, 1), (2025, 2), (2025, 3),
    ]  # fmt: skip
    assert next_open(utc(2025, 10, 1, 13, 5), "5m") == utc(2025, 10, 1, 13, 10)


@pytest.mark.parametrize("text", ["7m", "1mo", "", "1 m"])
def test_unsupported_intervals_are_named(text: str) -> None:
    with pytest.raises(ConfigurationError, match="unsupported interval"):
        check_interval(text)
