"""The session API that the CLI and the Prefect flows call.

Each function takes settings and small identifiers, does its work through the run folder, and
returns a small serializable summary, so that any step can be retried or run in another
process: state passes through the files, never through live objects.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from argo_engine.bootstrap import DEFAULT_SYNTHETIC_START, build_engine
from argo_engine.clock import Clock, LiveClock
from argo_engine.domain.calendar import trading_date
from argo_engine.domain.enums import EngineStatus
from argo_engine.domain.market import Bar
from argo_engine.engine.callbacks import EngineCallbacks
from argo_engine.engine.core import (
    STATE_FILE,
    TradingEngine,
    load_state,
    order_id_prefix,
    trading_day_bounds,
)
from argo_engine.errors import ConfigurationError, RecoveryError
from argo_engine.persistence.journal import journal_holds_data
from argo_engine.persistence.parquet_append import ParquetAppendError, check_file, read_footer
from argo_engine.persistence.runs import (
    RunInfo,
    allocate_run,
    find_session_runs,
    parse_run_number,
    read_run_yaml,
    session_run_number,
    write_run_yaml,
)
from argo_engine.persistence.schema import JOURNAL_DIR, RUN_FILE, STATS_FILE, TABLES
from argo_engine.persistence.writers import remove_stale_temps
from argo_engine.ports import Broker, MarketDataFeed
from argo_engine.scratch_db import query_connection
from argo_engine.settings import ArgoSettings, validate_session_id
from argo_engine.strategies.base import Strategy
from argo_engine.strategies.registry import resolve_strategy, strategy_code

if TYPE_CHECKING:
    from argo_engine.tools.report import SessionReport

log = logging.getLogger(__name__)

# Before every bar (timezone-aware, so that it compares with saved cursors).
_NEVER = datetime.min.replace(tzinfo=UTC)

# In-process observers (e.g. the CLI's live status line) merged into every engine this process
# opens, including engines opened inside Prefect tasks of an in-process flow run.
OBSERVERS: list[EngineCallbacks] = []
# In-process feed decorators (fault injection in tests, recording in demos), applied to every
# feed this process builds from settings.
FEED_WRAPPERS: list[Callable[[MarketDataFeed], MarketDataFeed]] = []


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """Identity of one engine start of a session.

    Attributes:
        session_id: Logical session id.
        run_number: N of ``run_N`` (allocated on the first trading date).
        first_date: First trading date of this start.
        session_start: When the session started (earliest start when resuming).
        resumed: Whether earlier runs of the same session exist.
    """

    session_id: str
    run_number: int
    first_date: date
    session_start: datetime
    resumed: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (dates as ISO strings)."""
        data = asdict(self)
        data["first_date"] = self.first_date.isoformat()
        data["session_start"] = self.session_start.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionPlan:
        """Inverse of :meth:`to_dict`."""
        return cls(
            session_id=str(data["session_id"]),
            run_number=int(data["run_number"]),
            first_date=date.fromisoformat(str(data["first_date"])),
            session_start=datetime.fromisoformat(str(data["session_start"])),
            resumed=bool(data["resumed"]),
        )


@dataclass(frozen=True, slots=True)
class DaySummary:
    """What a trading day's steps report (small and serializable).

    Attributes:
        date: Trading date (ISO).
        run_id: ``run_N`` folder name used on that date.
        folder: Run folder path.
        ended: Why streaming ended.
        bars: Bars accepted.
        rejected_bars: Bars rejected as bad data.
        orders: Orders placed.
        fills: Fills recorded.
        next_date: Next trading date seen by the stream (ISO) or None.
        daily: Final daily stats block (after finalization).
        cumulative: Cumulative stats block.
        problems: Integrity problems found at finalization.
    """

    date: str
    run_id: str
    folder: str
    ended: str = ""
    bars: int = 0
    rejected_bars: int = 0
    orders: int = 0
    fills: int = 0
    next_date: str | None = None
    daily: dict[str, Any] = field(default_factory=dict)
    cumulative: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def new_session_id(clock: Clock) -> str:
    """A fresh session id: UTC timestamp plus random suffix (sortable, path-safe)."""
    return f"{clock.now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


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


def start_session(
    settings: ArgoSettings,
    *,
    session_id: str | None = None,
    clock: Clock | None = None,
    first_date: date | None = None,
    broker_factory: Callable[[], Broker] | None = None,
) -> SessionPlan:
    """Allocate ``run_N`` for a new engine start of a (new or resumed) session.

    Crashed run folders of the session are recovered first (:func:`recover_stale_runs`).

    Args:
        settings: Validated settings.
        session_id: Session to start or resume; falls back to settings, then a fresh id.
        clock: Injected clock.
        first_date: First trading date; derived from the feed when None.
        broker_factory: Builds the broker that recovers crashed folders (one per folder);
            the configured broker when None.

    Returns:
        The plan; ``{data_output}/{first_date}/run_N/run.yaml`` exists when it returns.
    """
    clock = clock or LiveClock()
    sid = validate_session_id(session_id or settings.session.session_id or new_session_id(clock))
    # Bad strategy names or parameters fail before anything is created on disk.
    strategy_cls = resolve_strategy(settings.strategy.name)
    strategy_cls.parse_config(settings.strategy.params)
    day = first_date or first_trading_date(settings, clock)
    data_output = Path(settings.session.data_output)
    adopt_orphan_folders(settings, sid, clock=clock)
    earlier = find_session_runs(data_output, sid)
    if earlier:
        recover_stale_runs(settings, sid, clock=clock, broker_factory=broker_factory)
        # A resumed session continues where it stopped: never on a date before its last run.
        day = max(day, earlier[-1][0])
    session_start = clock.now()
    for _, _, folder in earlier:
        state = _safe_state(folder)
        if state is not None:
            started = datetime.fromisoformat(state["session_start"])
            session_start = min(session_start, started)
    strategy_name = getattr(strategy_cls, "name", strategy_cls.__name__)
    number, folder = allocate_run(
        data_output / day.isoformat(),
        lambda n: RunInfo(
            session_id=sid,
            run_id=f"run_{n}",
            run_number=n,
            date=day,
            strategy=strategy_name,
            symbols=tuple(settings.session.symbols),
            interval=settings.session.interval,
            start_time=session_start,
        ),
    )
    return SessionPlan(
        session_id=sid,
        run_number=number,
        first_date=day,
        session_start=session_start,
        resumed=bool(earlier),
    )


def continue_session(
    settings: ArgoSettings,
    *,
    session_id: str,
    clock: Clock | None = None,
    first_date: date | None = None,
    broker_factory: Callable[[], Broker] | None = None,
) -> SessionPlan:
    """Continue a named session's latest run_N on a new date (daily deployments).

    Falls back to :func:`start_session` when the session has no run yet. ``broker_factory``
    is as for :func:`start_session`.
    """
    clock = clock or LiveClock()
    sid = validate_session_id(session_id)
    adopt_orphan_folders(settings, sid, clock=clock)
    runs = find_session_runs(Path(settings.session.data_output), sid)
    if not runs:
        return start_session(
            settings,
            session_id=sid,
            clock=clock,
            first_date=first_date,
            broker_factory=broker_factory,
        )
    recover_stale_runs(settings, sid, clock=clock, broker_factory=broker_factory)
    day = first_date or first_trading_date(settings, clock)
    # The latest run continues under its own N, also when its latest folder has another N
    # (another session owned run_N on that date).
    _, _, latest = max(runs, key=lambda r: (r[0], r[1]))
    number = _session_run_number(latest)
    session_start = clock.now()
    for _, _, folder in runs:
        state = _safe_state(folder)
        if state is not None:
            session_start = min(session_start, datetime.fromisoformat(state["session_start"]))
    return SessionPlan(
        session_id=sid,
        run_number=number,
        first_date=day,
        session_start=session_start,
        resumed=True,
    )


def current_trading_date(settings: ArgoSettings, clock: Clock | None = None) -> date:
    """The trading date that is current now (by ``clock``) in the session's time zone."""
    clock = clock or LiveClock()
    tz = ZoneInfo(settings.session.timezone)
    return trading_date(clock.now(), tz, settings.session.day_start)


def day_bounds(settings: ArgoSettings, day: date) -> tuple[datetime, datetime]:
    """UTC [start, end) of a trading date under the session's time zone and day start."""
    return trading_day_bounds(day, ZoneInfo(settings.session.timezone), settings.session.day_start)


def needs_recovery(folder: Path) -> bool:
    """Whether a run folder was left by a crash.

    A crash leaves journal data not yet in the parquet files, or files missing that a clean
    stop always writes; a recovery that failed midway (a broker answering 503 while PENDING
    orders were resolved) leaves its marker.
    """
    if journal_holds_data(folder / JOURNAL_DIR):
        return True
    expected = [STATS_FILE, *(t.file_name for t in TABLES.values())]
    return any(not (folder / name).exists() for name in expected)


def recover_stale_runs(
    settings: ArgoSettings,
    session_id: str,
    *,
    clock: Clock | None = None,
    broker_factory: Callable[[], Broker] | None = None,
) -> list[Path]:
    """Finish the folders of crashed runs of a session before a new run starts.

    Each folder with undrained journal data is reopened as the run that wrote it (the
    session's run N, also in a ``run_M`` folder taken because another session owned ``run_N``
    on that date): journal rows go into the parquet files, fills written after the last state
    save are applied to its state, unconfirmed orders are resolved, and a correct final
    stats.yaml (``session_run_id`` included) is written.

    Args:
        settings: Validated settings.
        session_id: The session whose folders are recovered.
        clock: Injected clock.
        broker_factory: Builds the broker asked about unconfirmed orders, one per folder (it
            is closed with the folder's engine); the configured broker when None. It must be
            the venue that took the orders: another broker cannot know what became of them.

    Returns:
        The folders recovered.
    """
    clock = clock or LiveClock()
    data_output = Path(settings.session.data_output)
    recovered: list[Path] = []
    for day, _, folder in find_session_runs(data_output, session_id):
        if not needs_recovery(folder):
            # A writer killed while it wrote a complete folder's file (a version, stats.yaml)
            # leaves its temp file; the folder needs nothing else.
            for path in remove_stale_temps(folder):
                log.warning("removed a temp file left by a crashed writer: %s", path)
            continue
        number = _session_run_number(folder)
        state = find_resume_state(data_output, session_id, number, day)
        start = datetime.fromisoformat(state["session_start"]) if state else clock.now()
        engine = build_engine(
            settings,
            session_id=session_id,
            run_number=number,
            clock=clock,
            session_start=start,
            broker=broker_factory() if broker_factory is not None else None,
        )
        try:
            # This very folder: another one of the same run and date may exist (left behind
            # by versions that took a new folder on every reopen of a displaced date).
            engine.open_day(day, state, folder=folder)
            engine.close_day()
        finally:
            _release(engine)
        log.warning("recovered crashed run folder %s", folder)
        recovered.append(folder)
    return recovered


def adopt_orphan_folders(
    settings: ArgoSettings, session_id: str, *, clock: Clock | None = None
) -> list[Path]:
    """Give back their identity to this session's run folders whose run.yaml is unreadable.

    A run folder whose run.yaml is missing, empty or garbled is found by no session, so a
    crash in it would never be recovered and its trades would be missing from the session's
    figures. Its identity is rebuilt instead: N and the date from the folder's path; the
    session from its engine state, its stats.yaml or the order ids in its journal and
    orders.parquet; the strategy, symbols, interval and start from the session's other run
    folders (else its stats.yaml and state, else these settings). The damaged file is kept
    beside the new one as ``run.yaml.corrupt-<timestamp>``.

    A folder that holds no trace of any session is attributed to this one only when every
    other run folder of the data output belongs to it (one session per output); otherwise
    the start is refused, naming the folder and what to do.

    Args:
        settings: Validated settings of the start.
        session_id: The session being started.
        clock: Clock of the timestamp of the moved-aside file.

    Returns:
        The folders whose run.yaml was rebuilt.

    Raises:
        RecoveryError: If an unreadable run.yaml cannot be attributed to any session.
    """
    clock = clock or LiveClock()
    data_output = Path(settings.session.data_output)
    if not data_output.is_dir():
        return []
    orphans: list[Path] = []
    owners: set[str] = set()
    mine: list[RunInfo] = []
    for folder in sorted(data_output.glob("*/run_*")):
        if parse_run_number(folder.name) is None or not folder.is_dir():
            continue
        try:
            info = read_run_yaml(folder)
        except (RecoveryError, OSError):
            info = None
        if info is None:
            orphans.append(folder)
            continue
        owners.add(info.session_id)
        if info.session_id == session_id:
            mine.append(info)
    adopted: list[Path] = []
    for folder in orphans:
        try:
            day = date.fromisoformat(folder.parent.name)
        except ValueError:
            continue  # not a date folder: no run of any session lives there
        evidence = _folder_owner(folder, session_id)
        if evidence is None:
            if not _holds_anything(folder):
                continue  # an empty husk: nothing to lose, nothing to recover
            if owners - {session_id}:
                raise RecoveryError(
                    f"{folder / RUN_FILE} is missing or unreadable and nothing in {folder} "
                    f"names its session, while this data output holds several sessions; "
                    f"restore its run.yaml (session_id, run_id, run_number, date, strategy, "
                    f"symbols, interval, start_time), or move the folder out of "
                    f"{data_output} if it is not session {session_id}'s, then start again",
                    path=str(folder),
                )
            evidence = session_id
        if evidence != session_id:
            continue  # another session's: its own start adopts it
        info = _rebuilt_identity(folder, day, session_id, settings, mine, clock)
        run_yaml = folder / RUN_FILE
        if run_yaml.exists():
            stamp = clock.now().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
            run_yaml.rename(folder / f"{RUN_FILE}.corrupt-{stamp}")
        write_run_yaml(folder, info)
        log.warning(
            "rebuilt the unreadable run.yaml of %s (session %s, %s); the damaged file is kept "
            "beside it",
            folder,
            session_id,
            info.run_id,
        )
        adopted.append(folder)
    return adopted


def _holds_anything(folder: Path) -> bool:
    if journal_holds_data(folder / JOURNAL_DIR) or (folder / JOURNAL_DIR / STATE_FILE).exists():
        return True
    return (
        any((folder / t.file_name).exists() for t in TABLES.values())
        or (folder / STATS_FILE).exists()
    )


def _folder_owner(folder: Path, session_id: str) -> str | None:
    """The session a run folder belongs to, from what it holds besides run.yaml; None if none.

    Only ``session_id`` is recognised from order ids (their prefix is derived from it).
    """
    state = _safe_state(folder)
    if state is not None and isinstance(state.get("session_id"), str):
        return str(state["session_id"])
    stats = _safe_yaml(folder / STATS_FILE)
    if stats is not None and isinstance(stats.get("session_id"), str):
        return str(stats["session_id"])
    marker = f"{order_id_prefix(session_id)}-r".encode()
    journal = folder / JOURNAL_DIR
    for path in sorted(journal.glob("*.jsonl*")) if journal.is_dir() else []:
        try:
            if marker in path.read_bytes():
                return session_id
        except OSError:
            continue
    try:
        ids = pq.read_table(folder / TABLES["orders"].file_name, columns=["id"]).column("id")
    except (pa.ArrowException, OSError, KeyError):
        return None
    prefix = marker.decode()
    if any(str(i).startswith(prefix) for i in ids.to_pylist()):
        return session_id
    return None


def _safe_yaml(path: Path) -> dict[str, Any] | None:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def _rebuilt_identity(
    folder: Path,
    day: date,
    session_id: str,
    settings: ArgoSettings,
    siblings: list[RunInfo],
    clock: Clock,
) -> RunInfo:
    number = parse_run_number(folder.name)
    assert number is not None  # only run_<int> folders are orphans
    state = _safe_state(folder) or {}
    stats = _safe_yaml(folder / STATS_FILE) or {}
    # The session's run N: the state says so; stats.yaml names it where the folder took
    # another N on this date.
    session_run = state.get("run_number")
    if not isinstance(session_run, int):
        recorded = stats.get("session_run_id")
        session_run = parse_run_number(str(recorded)) if recorded is not None else None
    same_run = [s for s in siblings if _session_run_of(s) == (session_run or number)]
    model = same_run[0] if same_run else (siblings[0] if siblings else None)
    if model is not None:
        strategy, symbols, interval = model.strategy, model.symbols, model.interval
        start = model.start_time
    else:
        block = stats.get("strategy")
        strategy = str(block.get("name")) if isinstance(block, dict) else settings.strategy.name
        listed = stats.get("symbols")
        symbols = (
            tuple(map(str, listed)) if isinstance(listed, list) else tuple(settings.session.symbols)
        )
        interval = settings.session.interval
        start = clock.now()
    started = state.get("session_start") or stats.get("session_start")
    if started is not None:
        with contextlib.suppress(ValueError):
            start = datetime.fromisoformat(str(started).replace("Z", "+00:00"))
    return RunInfo(
        session_id=session_id,
        run_id=folder.name,
        run_number=number,
        date=day,
        strategy=strategy,
        symbols=symbols,
        interval=interval,
        start_time=start,
        session_run_id=None if session_run in (None, number) else f"run_{session_run}",
    )


def _session_run_of(info: RunInfo) -> int:
    # N of the session's run that wrote a folder, from its run.yaml alone.
    if info.session_run_id is not None:
        recorded = parse_run_number(info.session_run_id)
        if recorded is not None:
            return recorded
    return info.run_number


def _session_run_number(folder: Path) -> int:
    try:
        info = read_run_yaml(folder)
    except RecoveryError:  # found by find_session_runs moments ago, unreadable now: its own N
        info = None
    return session_run_number(folder, info)


def _safe_state(folder: Path) -> dict[str, Any] | None:
    try:
        return load_state(folder)
    except Exception:  # an unreadable state is reported by verify, not fatal for discovery
        log.warning("ignoring unreadable engine state in %s", folder)
        return None


def find_resume_state(
    data_output: Path, session_id: str, run_number: int, day: date
) -> dict[str, Any] | None:
    """Latest saved engine state of the session at or before ``day``.

    The latest is the one furthest along the market: the latest trading date, then the
    latest bar it counted, then the later run (runs of a session start one after another),
    then the later save. The wall clock only breaks ties: a clock set back between two
    starts (NTP, another machine) must not make a restart resume from an older state and
    store its bars again.
    """
    best: tuple[tuple[str, datetime, int, str], dict[str, Any]] | None = None
    # Latest date first: the rank starts with the date, so once a date gave a state no
    # earlier date can win, and a resume reads one date's folders however long the session.
    for run_day, _, folder in sorted(
        find_session_runs(data_output, session_id), key=lambda r: r[0], reverse=True
    ):
        if best is not None and run_day.isoformat() < best[0][0]:
            break
        if run_day > day or not (folder / JOURNAL_DIR / STATE_FILE).exists():
            continue
        number = _session_run_number(folder)
        if number == run_number and run_day == day:
            continue  # the engine reloads its own folder's state itself
        state = _safe_state(folder)
        if state is None:
            continue
        rank = (run_day.isoformat(), _progress(state), number, str(state.get("saved_at", "")))
        if best is None or rank > best[0]:
            best = (rank, state)
    return None if best is None else best[1]


def _progress(state: dict[str, Any]) -> datetime:
    """Time of the latest bar a saved state counted (the earliest time when none)."""
    times = state.get("last_time") or {}
    try:
        return max((datetime.fromisoformat(str(t)) for t in times.values()), default=_NEVER)
    except (TypeError, ValueError):
        return _NEVER  # an unreadable cursor ranks below every readable one


def stored_bars(data_output: Path, symbols: list[str], before: datetime, n: int) -> list[Bar]:
    """The last ``n`` stored bars per symbol strictly before ``before``, oldest first.

    Reads every ``*/run_*/market_data.parquet`` under ``data_output`` (all sessions: market data
    is market data) and deduplicates on (symbol, time). A file that cannot be read, or one
    that gave rows but whose bytes differ from the checksums in its footer (damaged bytes can
    decode as wrong bars), is left out and logged; ``argo verify`` names it too.
    """
    from argo_engine.prefetch import stored_files

    everything = stored_files(data_output)
    if not everything or n <= 0:
        return []
    # Read the newest trading dates first and widen only while a symbol lacks bars: a date's
    # bars are all older than the next date's, so the newest dates that give n bars per
    # symbol hold the last n. Reading every date of the data output made each warm-up (one
    # per trading date under Prefect) cost more the longer the session had run.
    dated: dict[str, list[str]] = {}
    undated: list[str] = []
    for f in everything:
        day = Path(f).parent.parent.name
        try:
            # A day of slack above: a trading date can start before midnight UTC.
            keep = date.fromisoformat(day) <= (before + timedelta(days=1)).date()
        except ValueError:
            undated.append(f)  # the prefetch cache: history of any date
            continue
        if keep:
            dated.setdefault(day, []).append(f)
    days = sorted(dated, reverse=True)
    span = 2
    while True:
        files = [f for d in days[:span] for f in dated[d]] + undated
        rows = _checked_last_bars(files, symbols, before, n) if files else []
        counts: dict[str, int] = {}
        for row in rows:
            counts[str(row[1])] = counts.get(str(row[1]), 0) + 1
        if span >= len(days) or all(counts.get(s, 0) >= n for s in symbols):
            break
        span *= 2
    return [
        Bar(sym, t.replace(tzinfo=UTC), float(o), float(h), float(lo), float(c), float(v))
        for t, sym, o, h, lo, c, v, _ in rows
    ]


def _checked_last_bars(
    files: list[str], symbols: list[str], before: datetime, n: int
) -> list[tuple[Any, ...]]:
    """:func:`_last_bars` over ``files``, leaving out unreadable and damaged ones (logged)."""
    checked: set[str] = set()
    while True:
        try:
            rows = _last_bars(files, symbols, before, n)
        except duckdb.Error as exc:
            # One unreadable file fails the whole query: find it (footers only) and retry.
            bad = [f for f in files if f not in checked and _unreadable_footer(Path(f))]
            if not bad:
                log.warning("could not read stored bars for warm-up: %s", exc)
                return []
        else:
            used = sorted({str(r[-1]) for r in rows} - checked)
            bad = [f for f in used if _damaged(Path(f))]
            checked.update(used)
            if not bad:
                break
        for path in bad:
            log.error("stored market data left out of the warm-up: %s is damaged", path)
        files = [f for f in files if f not in bad]
        if not files:
            return []
    return rows


def _last_bars(
    files: list[str], symbols: list[str], before: datetime, n: int
) -> list[tuple[Any, ...]]:
    con = query_connection()
    try:
        return con.execute(
            """
            WITH bars AS (
                SELECT DISTINCT ON (symbol, time)
                    time, symbol, open, high, low, close, volume, filename
                FROM read_parquet(?, union_by_name = true, filename = true)
                WHERE symbol IN (SELECT unnest(?)) AND time < ?
            )
            SELECT * FROM bars
            QUALIFY row_number() OVER (PARTITION BY symbol ORDER BY time DESC) <= ?
            ORDER BY time, symbol
            """,
            [files, symbols, before.astimezone(UTC).replace(tzinfo=None), n],
        ).fetchall()
    finally:
        con.close()


def _unreadable_footer(path: Path) -> bool:
    try:
        read_footer(path)
    except (ParquetAppendError, OSError):
        return True
    return False


def _damaged(path: Path) -> bool:
    try:
        return check_file(path) is not None
    except (ParquetAppendError, OSError):
        return True


def open_engine(
    settings: ArgoSettings,
    plan: SessionPlan,
    day: date,
    *,
    clock: Clock | None = None,
    callbacks: EngineCallbacks | None = None,
    feed: MarketDataFeed | None = None,
    broker: Broker | None = None,
    strategy: Strategy | None = None,
    warm_up: bool = True,
) -> TradingEngine:
    """Build an engine for ``plan`` and open ``day``: restore state, warm the strategy up.

    This is the prefetch/recovery step: stored bars are loaded for indicator warm-up and the
    latest saved state of the session (this run, or an earlier run) is restored.
    """
    clock = clock or LiveClock()
    for observer in OBSERVERS:
        callbacks = observer if callbacks is None else callbacks.merged(observer)
    if feed is None and FEED_WRAPPERS:
        from argo_engine.bootstrap import build_feed

        feed = build_feed(settings, clock)
        for wrap in FEED_WRAPPERS:
            feed = wrap(feed)
    engine = build_engine(
        settings,
        session_id=plan.session_id,
        run_number=plan.run_number,
        clock=clock,
        callbacks=callbacks,
        feed=feed,
        broker=broker,
        strategy=strategy,
        session_start=plan.session_start,
    )
    try:
        _open_and_warm_up(engine, settings, plan, day, clock, warm_up=warm_up)
    except Exception:
        # A failed open (a venue answering 503 while PENDING orders are resolved, say) must
        # not leave the writers, the feed and the broker open behind it: the retry (a task
        # retry, a restart) opens its own, and this engine is never used again. (Not on a
        # BaseException: an interrupt is no failure to tidy up after.)
        try:
            _release(engine)
        except Exception:
            log.exception("could not release the engine of a failed open")
        raise
    return engine


def _open_and_warm_up(
    engine: TradingEngine,
    settings: ArgoSettings,
    plan: SessionPlan,
    day: date,
    clock: Clock,
    *,
    warm_up: bool,
) -> None:
    """Open ``day`` (restoring the latest saved state of the session) and warm up."""
    data_output = Path(settings.session.data_output)
    engine._fire("on_status_update", EngineStatus.PREFETCHING)
    state = find_resume_state(data_output, plan.session_id, plan.run_number, day)
    engine.open_day(day, state)
    if warm_up and settings.feed.prefetch_days > 0:
        from argo_engine.prefetch import prefetch

        until = (
            max(engine._last_time.values())
            if engine._last_time
            else (settings.feed.start or clock.now())
        )
        prefetch(
            data_output,
            engine.feed,
            list(engine.symbols),
            settings.session.interval,
            until,
            settings.feed.prefetch_days,
            on_progress=lambda s, i, n: engine._fire("on_prefetch_progress", s, i, n),
        )
        if not engine._last_time:
            # A fresh start warms up from the history just made available.
            bars = stored_bars(
                data_output, list(engine.symbols), until, settings.persistence.history_bars
            )
            for bar in bars:
                engine.context.remember(bar)
            if bars:
                with strategy_code(engine.strategy_info.name, "warmup"):
                    engine.strategy.warmup(bars)
    if warm_up:
        resume_from = max(engine._last_time.values()) if engine._last_time else None
        if resume_from is not None:
            from datetime import timedelta

            bars = stored_bars(
                data_output,
                list(engine.symbols),
                resume_from + timedelta(microseconds=1),
                settings.persistence.history_bars,
            )
            for bar in bars:
                engine.context.remember(bar)
            if bars:
                with strategy_code(engine.strategy_info.name, "warmup"):
                    engine.strategy.warmup(bars)
            per_symbol: dict[str, int] = {}
            for bar in bars:
                per_symbol[bar.symbol] = per_symbol.get(bar.symbol, 0) + 1
            for symbol in engine.symbols:
                n = per_symbol.get(symbol, 0)
                engine._fire("on_prefetch_progress", symbol, n, n)
            # The stream catches up from the last stored bar before it is live again.
            engine._fire("on_status_update", EngineStatus.GAP_FILLING)


def run_session(
    settings: ArgoSettings,
    *,
    plan: SessionPlan | None = None,
    clock: Clock | None = None,
    callbacks: EngineCallbacks | None = None,
    stop: threading.Event | None = None,
    feed: MarketDataFeed | None = None,
    broker: Broker | None = None,
    strategy: Strategy | None = None,
) -> tuple[SessionPlan, list[DaySummary]]:
    """Run a whole session in this process (no Prefect): stream, rolling dates, until done.

    Returns:
        The plan and one summary per trading date touched.
    """
    clock = clock or LiveClock()
    plan = plan or start_session(settings, clock=clock)
    engine = open_engine(
        settings,
        plan,
        plan.first_date,
        clock=clock,
        callbacks=callbacks,
        feed=feed,
        broker=broker,
        strategy=strategy,
    )
    error: BaseException | None = None
    try:
        engine.run(stop)
    except BaseException as exc:
        error = exc
        raise
    finally:
        # Dates closed in the background are reported (and final) once the stream has ended.
        summaries = [
            DaySummary(
                date=closed.date.isoformat(),
                run_id=closed.run_id,
                folder=str(closed.folder),
                daily=closed.daily,
                cumulative=closed.cumulative,
            )
            for closed in engine.closed_days
        ]
        if engine.day is not None and engine.stats is not None:
            last = _summary_from_engine(engine, engine.day, engine.stats.daily_block())
            summaries.append(last)
        engine.stop(error)
        engine.feed.close()
        engine.broker.close()
    return plan, summaries


def _summary_from_engine(engine: TradingEngine, day: date, daily: dict[str, Any]) -> DaySummary:
    stats = engine.stats
    return DaySummary(
        date=day.isoformat(),
        run_id=engine.run_id_on_day,
        folder=str(engine.folder),
        daily=daily,
        cumulative=stats.cumulative_block() if stats is not None else {},
    )


# -- day steps (the Prefect trading-day flow calls these, one per task) --------------------------


def prefetch_day(
    settings: ArgoSettings,
    plan: SessionPlan,
    day: date,
    *,
    clock: Clock | None = None,
    callbacks: EngineCallbacks | None = None,
    feed: MarketDataFeed | None = None,
    broker: Broker | None = None,
) -> DaySummary:
    """Prefetch and recovery: open the day's run folder, restore state, warm up, persist.

    Safe to repeat: a retry reopens the same folder and reloads its journal.
    """
    engine = open_engine(
        settings, plan, day, clock=clock, callbacks=callbacks, feed=feed, broker=broker
    )
    try:
        engine.flush()
        return _summary_from_engine(engine, day, _daily(engine))
    finally:
        _release(engine)


def stream_day(
    settings: ArgoSettings,
    plan: SessionPlan,
    day: date,
    *,
    stop: threading.Event | None = None,
    clock: Clock | None = None,
    callbacks: EngineCallbacks | None = None,
    feed: MarketDataFeed | None = None,
    broker: Broker | None = None,
    observe: Callable[[TradingEngine | None], object] | None = None,
) -> DaySummary:
    """Stream the trading date ``day`` until it ends, the feed ends, or ``stop`` is set.

    Recovers from the run folder first (so a retry continues the same run_N without losing or
    duplicating rows); everything is flushed before it returns or raises.

    Args:
        settings: Validated settings.
        plan: The session plan.
        day: Trading date to stream.
        stop: Set to stop streaming (the engine flushes and returns).
        clock: Injected clock.
        callbacks: Engine callbacks.
        feed: Feed to use instead of one built from settings.
        broker: Broker to use instead of one built from settings.
        observe: Called with the opened engine before streaming starts and with None once it
            is released, so that a live view can read :func:`argo_engine.engine.live.
            live_figures` from its own thread (never from the bar path).
    """
    engine = open_engine(
        settings, plan, day, clock=clock, callbacks=callbacks, feed=feed, broker=broker
    )
    if observe is not None:
        observe(engine)
    try:
        result = engine.run(stop, stop_at_day_end=True)
        summary = _summary_from_engine(engine, day, _daily(engine))
        return DaySummary(
            **{
                **asdict(summary),
                "ended": result.ended,
                "bars": result.bars,
                "rejected_bars": result.rejected_bars,
                "orders": result.orders,
                "fills": result.fills,
                "next_date": result.next_date.isoformat() if result.next_date else None,
            }
        )
    finally:
        try:
            engine.flush()
            _release(engine)
        finally:
            if observe is not None:
                observe(None)


def finalize_day(
    settings: ArgoSettings,
    plan: SessionPlan,
    day: date,
    *,
    clock: Clock | None = None,
    callbacks: EngineCallbacks | None = None,
    feed: MarketDataFeed | None = None,
    broker: Broker | None = None,
) -> DaySummary:
    """Close ``day``: final parquet files, final stats.yaml, journal drained, integrity check."""
    engine = open_engine(
        settings,
        plan,
        day,
        clock=clock,
        callbacks=callbacks,
        feed=feed,
        broker=broker,
        warm_up=False,
    )
    try:
        daily = engine.close_day()
        summary = _summary_from_engine(engine, day, daily)
    finally:
        _release(engine)
    problems = verify_run_folder(Path(summary.folder))
    return DaySummary(**{**asdict(summary), "problems": problems})


def _daily(engine: TradingEngine) -> dict[str, Any]:
    return engine.stats.daily_block() if engine.stats is not None else {}


def _release(engine: TradingEngine) -> None:
    if engine.writers is not None:
        engine.writers.close()
        engine.writers = None
    engine.feed.close()
    engine.broker.close()


def verify_run_folder(folder: Path) -> list[str]:
    """Integrity problems of one run folder (empty when it is sound)."""
    from argo_engine.verify import verify_folder

    return verify_folder(folder)


#: Folder of ``{data_output}`` that holds the sessions' HTML reports.
REPORTS_DIR = ".reports"


def report_path(data_output: Path, session_id: str) -> Path:
    """Where a session's HTML report is written at the end of every start of it."""
    return Path(data_output) / REPORTS_DIR / f"{session_id}.html"


def write_session_report(
    data_output: Path,
    session_id: str,
    initial_capital: float = 100_000.0,
    *,
    loaded: SessionReport | None = None,
) -> Path:
    """Write the session's HTML report to :func:`report_path` (both ``argo run`` paths).

    Args:
        data_output: Root of the run folders.
        session_id: The session.
        initial_capital: Equity the session started with, when no run folder records it.
        loaded: The session's figures, when the caller already gathered them.

    Returns:
        The report's path.
    """
    from argo_engine.tools.report import write_report

    out = report_path(data_output, session_id)
    return write_report(Path(data_output), session_id, out, initial_capital, loaded=loaded)


def discard_unused_start(settings: ArgoSettings, plan: SessionPlan) -> bool:
    """Remove the run folder a failed start allocated, when nothing was written to it.

    A start that fails before its first bar (a venue that cannot be reached, say) must not
    leave an empty folder behind that ``argo sessions`` lists as a closed run and
    ``argo verify`` passes. Only ``{plan.first_date}/run_N`` of a plan made by
    :func:`start_session` is considered, and only when its tables hold no row, its journal
    holds nothing to recover and it holds no file argo did not write; its date folder goes
    too when that leaves it empty. Nothing with a row in it is ever removed.

    Returns:
        Whether the folder was removed.
    """
    folder = (
        Path(settings.session.data_output) / plan.first_date.isoformat() / f"run_{plan.run_number}"
    )
    if not folder.is_dir() or journal_holds_data(folder / JOURNAL_DIR):
        return False
    known = {t.file_name for t in TABLES.values()} | {STATS_FILE, RUN_FILE, JOURNAL_DIR}
    if any(p.name not in known for p in folder.iterdir()):
        return False
    for table in TABLES.values():
        path = folder / table.file_name
        if not path.exists():
            continue
        try:
            with path.open("rb") as handle:
                if pq.ParquetFile(handle).metadata.num_rows:
                    return False
        except Exception:  # unreadable: not ours to judge, keep it
            return False
    shutil.rmtree(folder)
    with contextlib.suppress(OSError):
        folder.parent.rmdir()  # only when empty
    log.info("removed %s: the start failed before anything was written", folder)
    return True
