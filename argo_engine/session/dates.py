"""Trading dates of a session: the first date of a start, today's date, a date's bounds."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb

from argo_engine.bootstrap import DEFAULT_SYNTHETIC_START
from argo_engine.clock import Clock, LiveClock
from argo_engine.domain.calendar import trading_date
from argo_engine.engine.core import trading_day_bounds
from argo_engine.errors import ConfigurationError
from argo_engine.scratch_db import query_connection
from argo_engine.settings import ArgoSettings


def first_trading_date(settings: ArgoSettings, clock: Clock) -> date:
    """Trading date on which a new start of the session begins.

    Market time decides: the first synthetic bar, the first bar of the replay file, or today
    (by the clock) for live feeds.
    """
    tz = ZoneInfo(settings.session.timezone)
    feed = settings.feed
    if feed.kind == "synthetic":
        start = feed.start or DEFAULT_SYNTHETIC_START
    elif feed.kind == "replay":
        start = feed.start or _first_replay_time(settings)
    else:
        start = clock.now()
    return trading_date(start, tz, settings.session.day_start)


def _first_replay_time(settings: ArgoSettings) -> datetime:
    path = settings.feed.replay_file
    if path is None or not Path(path).exists():
        raise ConfigurationError(
            f"replay file {path} does not exist (feed.replay_file)", field="feed.replay_file"
        )
    con = query_connection()
    try:
        row = con.execute(
            "SELECT min(time) FROM read_parquet(?) WHERE symbol IN (SELECT unnest(?))",
            [str(path), list(settings.session.symbols)],
        ).fetchone()
    except duckdb.Error as exc:
        raise ConfigurationError(
            f"replay file {path} is not a readable market_data parquet file: {exc}",
            field="feed.replay_file",
        ) from exc
    finally:
        con.close()
    if row is None or row[0] is None:
        raise ConfigurationError(
            f"replay file {path} has no bars for {', '.join(settings.session.symbols)}",
            field="feed.replay_file",
        )
    value: datetime = row[0]
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def current_trading_date(settings: ArgoSettings, clock: Clock | None = None) -> date:
    """The trading date that is current now (by ``clock``) in the session's time zone."""
    clock = clock or LiveClock()
    tz = ZoneInfo(settings.session.timezone)
    return trading_date(clock.now(), tz, settings.session.day_start)


def day_bounds(settings: ArgoSettings, day: date) -> tuple[datetime, datetime]:
    """UTC [start, end) of a trading date under the session's time zone and day start."""
    return trading_day_bounds(day, ZoneInfo(settings.session.timezone), settings.session.day_start)
