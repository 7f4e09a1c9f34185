"""Checks of a run's settings before anything starts or is created (fail fast).

Every entry point (``argo run`` on both paths, the ``trading-session`` flow, the session API)
runs :func:`check_run` before it allocates a run number, creates a folder or starts
orchestration, so a bad input ends in one :class:`ConfigurationError` naming the problem and
the option or setting, instead of a traceback minutes later or an empty run folder.

The checks need no network: they build the feed and the broker (their constructors validate
URLs, symbols, keys and the live-trading guard offline) and close them again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb

from argo_engine.clock import LiveClock
from argo_engine.domain.intervals import parse_interval
from argo_engine.errors import ConfigurationError
from argo_engine.options import OPTION_OF_FIELD, RunOptions
from argo_engine.settings import ArgoSettings

# Where each checked setting comes from, named in messages.
_SOURCES = {
    field: f"{option}, ARGO_{field.replace('.', '__').upper()}"
    for field, option in OPTION_OF_FIELD.items()
}


def named(field: str, message: str) -> ConfigurationError:
    """A ConfigurationError whose message ends with the option and variable of ``field``."""
    source = _SOURCES.get(field, "ARGO_" + field.replace(".", "__").upper())
    return ConfigurationError(f"{message} ({source})", field=field)


def check_run(settings: ArgoSettings, options: RunOptions | None = None) -> None:
    """Refuse settings a run cannot honour, before anything is started or created.

    Args:
        settings: The validated settings of the run.
        options: The options they came from, when given: an option that the chosen
            configuration would ignore (``--replay-file`` without the replay feed) is an error.

    Raises:
        ConfigurationError: The first problem found, naming the option and setting.
    """
    _check_strategy(settings)
    _check_feed(settings, options)
    _check_broker(settings)
    _check_data_output(settings)


def _check_strategy(settings: ArgoSettings) -> None:
    from argo_engine.strategies.registry import resolve_strategy

    try:
        cls = resolve_strategy(settings.strategy.name)
    except ConfigurationError as exc:
        raise named("strategy.name", exc.message) from None
    try:
        cls.parse_config(settings.strategy.params)
    except ConfigurationError as exc:
        raise named("strategy.params", exc.message) from None


def _check_feed(settings: ArgoSettings, options: RunOptions | None) -> None:
    feed = settings.feed
    if options is not None and options.replay_file is not None and feed.kind != "replay":
        raise named(
            "feed.replay_file",
            f"a replay file is only read by the replay feed, and the feed is {feed.kind!r}: "
            "add --feed replay (ARGO_FEED__KIND=replay) or drop the replay file",
        )
    if feed.kind != "binance":
        try:
            parse_interval(settings.session.interval)
        except ConfigurationError as exc:
            raise named("session.interval", f"{exc.message} with the {feed.kind} feed") from None
    if feed.kind == "synthetic":
        from argo_engine.bootstrap import DEFAULT_SYNTHETIC_START

        start = feed.start or DEFAULT_SYNTHETIC_START
        if feed.end is not None and feed.end <= start:
            raise named(
                "feed.end",
                f"end {feed.end.isoformat()} is not after the first bar time "
                f"{start.isoformat()} (--start)",
            )
    elif feed.kind == "replay":
        _check_replay_file(settings)
    _build_and_close_feed(settings)


def _check_replay_file(settings: ArgoSettings) -> None:
    feed = settings.feed
    path = feed.replay_file
    if path is None:
        raise named("feed.replay_file", "the replay feed needs a replay file")
    path = Path(path)
    if not path.exists():
        raise named("feed.replay_file", f"replay file {path} does not exist")
    if not path.is_file():
        raise named("feed.replay_file", f"replay file {path} is not a file")
    from argo_engine.scratch_db import query_connection

    where = ["symbol IN (SELECT unnest(?))"]
    params: list[object] = [str(path), list(settings.session.symbols)]
    for bound, op in ((feed.start, ">="), (feed.end, "<")):
        if bound is not None:
            where.append(f"time {op} ?")
            params.append(bound.astimezone(UTC).replace(tzinfo=None))
    con = query_connection()
    try:
        row = con.execute(
            "SELECT count(*) FROM read_parquet(?) WHERE " + " AND ".join(where), params
        ).fetchone()
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise named(
            "feed.replay_file",
            f"replay file {path} is not a readable parquet file with the market_data "
            f"columns (time, symbol, open, high, low, close, volume): {first}",
        ) from None
    finally:
        con.close()
    if not row or not row[0]:
        window = ""
        if feed.start is not None or feed.end is not None:
            window = f" between {_iso(feed.start)} and {_iso(feed.end)} (--start/--end)"
        raise named(
            "feed.replay_file",
            f"replay file {path} has no bars for {', '.join(settings.session.symbols)}{window}",
        )


def _iso(t: datetime | None) -> str:
    return t.isoformat() if t is not None else "-"


def _build_and_close_feed(settings: ArgoSettings) -> None:
    from argo_engine.bootstrap import build_feed

    try:
        built = build_feed(settings, LiveClock())
    except ConfigurationError as exc:
        field = str(exc.attrs.get("field", ""))
        raise named(_qualified(field, "feed"), exc.message) from None
    built.close()


def _check_broker(settings: ArgoSettings) -> None:
    from argo_engine.bootstrap import build_broker

    try:
        built = build_broker(settings, LiveClock())
    except ConfigurationError as exc:
        field = str(exc.attrs.get("field", ""))
        raise named(_qualified(field, "broker"), exc.message) from None
    built.close()


def _qualified(field: str, group: str) -> str:
    if not field:
        return f"{group}.kind"
    if field in ("symbols", "interval", "session_id"):
        return f"session.{field}"
    if field == "replay_file":
        return "feed.replay_file"
    return field if "." in field else f"{group}.{field}"


def _check_data_output(settings: ArgoSettings) -> None:
    root = Path(settings.session.data_output)
    # Walk up to the first part that exists: it must be a folder (nothing is created here).
    probe = root
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise named("session.data_output", f"data output {root}: {probe} is not a folder")
