from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from argo_engine.domain.calendar import trading_date
from argo_engine.domain.intervals import parse_interval
from argo_engine.engine.core import trading_day_bounds
from argo_engine.errors import ConfigurationError

NY = ZoneInfo("America/New_York")


def test_utc_dates() -> None:
    assert trading_date(datetime(2025, 10, 1, 23, 59, tzinfo=UTC), ZoneInfo("UTC")) == date(
        2025, 10, 1
    )
    assert trading_date(datetime(2025, 10, 2, 0, 0, tzinfo=UTC), ZoneInfo("UTC")) == date(
        2025, 10, 2
    )


@pytest.mark.parametrize(
    ("utc_time", "expected"),
    [
        # EDT (UTC-4) before the 2025-11-02 change, EST (UTC-5) after.
        (datetime(2025, 11, 2, 3, 59, tzinfo=UTC), date(2025, 11, 1)),
        (datetime(2025, 11, 2, 4, 0, tzinfo=UTC), date(2025, 11, 2)),
        (datetime(2025, 11, 3, 4, 59, tzinfo=UTC), date(2025, 11, 2)),
        (datetime(2025, 11, 3, 5, 0, tzinfo=UTC), date(2025, 11, 3)),
        # Spring forward 2025-03-09.
        (datetime(2025, 3, 9, 4, 59, tzinfo=UTC), date(2025, 3, 8)),
        (datetime(2025, 3, 10, 3, 59, tzinfo=UTC), date(2025, 3, 9)),
        (datetime(2025, 3, 10, 4, 0, tzinfo=UTC), date(2025, 3, 10)),
    ],
)
def test_new_york_across_dst(utc_time: datetime, expected: date) -> None:
    assert trading_date(utc_time, NY) == expected


def test_day_start_17_new_york() -> None:
    # 16:59 and 17:00 local on Wednesday 2025-10-01 fall on different trading dates.
    before = datetime(2025, 10, 1, 16, 59, tzinfo=NY).astimezone(UTC)
    after = datetime(2025, 10, 1, 17, 0, tzinfo=NY).astimezone(UTC)
    assert trading_date(before, NY, time(17, 0)) == date(2025, 10, 1)
    assert trading_date(after, NY, time(17, 0)) == date(2025, 10, 2)


def test_tokyo() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    assert trading_date(datetime(2025, 10, 1, 15, 0, tzinfo=UTC), tokyo) == date(2025, 10, 2)


@pytest.mark.parametrize("day_start", [None, time(17, 0)])
def test_day_bounds_are_the_inverse_of_trading_date(day_start: time | None) -> None:
    for d in (date(2025, 3, 9), date(2025, 11, 2), date(2025, 10, 1)):
        lo, hi = trading_day_bounds(d, NY, day_start)
        assert trading_date(lo, NY, day_start) == d
        assert trading_date(hi, NY, day_start) != d
        from datetime import timedelta

        assert trading_date(hi - timedelta(microseconds=1), NY, day_start) == d
    lo, hi = trading_day_bounds(date(2025, 11, 2), NY, None)
    assert (hi - lo).total_seconds() == 25 * 3600  # the day DST ends has 25 hours


def test_intervals() -> None:
    assert parse_interval("1m").total_seconds() == 60
    assert parse_interval("4h").total_seconds() == 4 * 3600
    assert parse_interval("1w").total_seconds() == 7 * 86400
    with pytest.raises(ConfigurationError, match="interval"):
        parse_interval("7x")
    with pytest.raises(ConfigurationError, match="1M"):
        parse_interval("1M")
