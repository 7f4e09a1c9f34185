"""Run folders: atomic run-number allocation, run.yaml, and finding a session's runs.

``{data_output}/{YYYY-MM-DD}/run_N``: N is allocated as max(existing N) + 1; the folder is
staged with its run.yaml and renamed into place (retried on conflict), so concurrent starts
never share a folder and no ``run_N`` ever exists without its identity. Only directories
named ``run_<digits>`` count (``run_007`` is 7); gaps are never filled; new names are never
padded. A session's run keeps its N on later dates; where another session owns ``run_N`` there,
the run takes the next free N of that date, and its run.yaml records the session's own run id
(``session_run_id``), so that every later step of that run on that date finds the folder again.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

from argo_engine.errors import ConfigurationError, PersistenceError, RecoveryError
from argo_engine.persistence.files import (
    atomic_write_bytes,
    fsync_dir,
    load_yaml,
    persistence_error,
)
from argo_engine.persistence.schema import RUN_FILE, STATS_FILE

_RUN_RE = re.compile(r"^run_([0-9]+)$")
# Where create_run_folder stages a run folder, and when a leftover one counts as abandoned.
_STAGING_RE = re.compile(r"^\.run_[0-9]+\.[0-9]+\.[0-9a-f]+\.tmp$")
STALE_STAGING_S = 3600.0
_MAX_ATTEMPTS = 1000


def parse_run_number(name: str) -> int | None:
    """N of a ``run_<digits>`` name, else None (``run_007`` -> 7, ``run_x`` -> None)."""
    match = _RUN_RE.match(name)
    return int(match.group(1)) if match else None


def existing_runs(day_dir: Path) -> list[int]:
    """Run numbers of the ``run_<int>`` directories in a date folder, sorted."""
    if not day_dir.is_dir():
        return []
    numbers = []
    for entry in os.scandir(day_dir):
        n = parse_run_number(entry.name)
        if n is not None and entry.is_dir():
            numbers.append(n)
    return sorted(numbers)


def _inside(root: Path, path: Path) -> None:
    if not path.resolve().is_relative_to(root.resolve()):
        raise ConfigurationError(f"{path} escapes the data output {root}", field="data_output")


def create_run_folder(day_dir: Path, number: int, info: RunInfo) -> Path | None:
    """Create ``run_<number>`` with its run.yaml in one step; None if the name is taken.

    The folder is staged under a hidden name with its run.yaml, then renamed into place: a
    ``run_N`` folder never exists without its identity, even after a crash at any point (a
    crash before the rename leaves only a hidden ``.run_N.*.tmp`` folder, which is not a
    run). The rename does not replace a folder that holds anything, so two starts racing for
    one N never share it; an empty ``run_N`` left by an older version is taken over.

    Args:
        day_dir: The date folder (created if missing).
        number: N to create.
        info: Its identity.

    Raises:
        PersistenceError: If the folder cannot be created.
    """
    folder = day_dir / f"run_{number}"
    staging = day_dir / f".run_{number}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        day_dir.mkdir(parents=True, exist_ok=True)
        _remove_stale_staging(day_dir)
        os.mkdir(staging)
        write_run_yaml(staging, info)
        os.rename(staging, folder)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            return None  # another run's folder, or a file squatting on the name
        raise persistence_error(exc, folder) from exc
    except PersistenceError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_dir(day_dir)
    return folder


def _remove_stale_staging(day_dir: Path) -> None:
    """Remove staging folders that a crash left behind (older than STALE_STAGING_S).

    A start stages its folder for milliseconds; one an hour old belongs to no live start.
    """
    horizon = time.time() - STALE_STAGING_S
    for entry in os.scandir(day_dir):
        if _STAGING_RE.match(entry.name) and entry.is_dir(follow_symlinks=False):
            try:
                stale = entry.stat(follow_symlinks=False).st_mtime < horizon
            except FileNotFoundError:
                continue  # renamed into place (or removed) meanwhile
            if stale:
                shutil.rmtree(entry.path, ignore_errors=True)


def allocate_run(day_dir: Path, identity: Callable[[int], RunInfo]) -> tuple[int, Path]:
    """Create the next ``run_N`` folder of a date atomically, with its run.yaml.

    Args:
        day_dir: The date folder.
        identity: The run.yaml of the folder, given the N it gets.

    Returns:
        (N, folder).

    Raises:
        PersistenceError: If the folder cannot be created.
    """
    floor = 0
    for _ in range(_MAX_ATTEMPTS):
        numbers = existing_runs(day_dir)
        n = max(numbers[-1] if numbers else 0, floor) + 1
        folder = create_run_folder(day_dir, n, identity(n))
        if folder is not None:
            return n, folder
        if not (day_dir / f"run_{n}").is_dir():
            floor = n  # a file squats on the name: never touch it, skip the number
        # otherwise another process took N first: look again
    raise PersistenceError(f"could not allocate a run folder in {day_dir}", path=str(day_dir))


@dataclass(frozen=True, slots=True)
class RunInfo:
    """Identity of a run folder (``run.yaml``).

    Attributes:
        session_id: Session the folder belongs to.
        run_id: ``run_N`` of the folder.
        run_number: N of the folder.
        date: Trading date.
        strategy: Strategy name.
        symbols: Traded symbols.
        interval: Bar interval.
        start_time: When the session started.
        session_run_id: The session's own run id (``run_K``) when it differs from ``run_id``
            (another session owned ``run_K`` on this date); None otherwise.
    """

    session_id: str
    run_id: str
    run_number: int
    date: date
    strategy: str
    symbols: tuple[str, ...]
    interval: str
    start_time: datetime
    session_run_id: str | None = None

    def to_yaml_dict(self) -> dict[str, Any]:
        """The run.yaml mapping (``session_run_id`` only when the folder has another N)."""
        data: dict[str, Any] = {
            "session_id": self.session_id,
            "run_id": self.run_id,
            "run_number": self.run_number,
            "date": self.date.isoformat(),
            "strategy": self.strategy,
            "symbols": list(self.symbols),
            "interval": self.interval,
            "start_time": self.start_time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }
        if self.session_run_id is not None and self.session_run_id != self.run_id:
            data["session_run_id"] = self.session_run_id
        return data


def write_run_yaml(folder: Path, info: RunInfo) -> None:
    """Write ``run.yaml`` atomically."""
    # libyaml's emitter when available: a session writes one per date.
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    data = yaml.dump(info.to_yaml_dict(), Dumper=dumper, sort_keys=False).encode()
    atomic_write_bytes(folder / RUN_FILE, data)


@functools.lru_cache(maxsize=4096)
def _read_run_yaml_as_of(folder: Path, inode: int, mtime_ns: int, size: int) -> RunInfo | None:
    """:func:`read_run_yaml`, parsed once per version of the file.

    Every open of a session's engine looks its runs up (three times per trading date on the
    Prefect path), and parsing every run.yaml of a 140-date session each time made a date's
    cost grow with the dates before it. The file's inode, mtime and size key the cache: a
    rewrite (always a new file, renamed into place) is read again.
    """
    return read_run_yaml(folder)


def read_run_yaml(folder: Path) -> RunInfo | None:
    """Read ``run.yaml``; None when absent.

    Raises:
        RecoveryError: If the file exists but cannot be read.
    """
    path = folder / RUN_FILE
    if not path.exists():
        return None
    try:
        raw = load_yaml(path.read_text())
        start = str(raw["start_time"]).replace("Z", "+00:00")
        # Present only where the folder's N is not the session's run number (later dates).
        session_run_id = raw.get("session_run_id")
        return RunInfo(
            session_id=str(raw["session_id"]),
            run_id=str(raw["run_id"]),
            run_number=int(raw["run_number"]),
            date=date.fromisoformat(str(raw["date"])),
            strategy=str(raw["strategy"]),
            symbols=tuple(raw["symbols"]),
            interval=str(raw["interval"]),
            start_time=datetime.fromisoformat(start),
            session_run_id=None if session_run_id is None else str(session_run_id),
        )
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise RecoveryError(f"{path} is unreadable: {exc}", path=str(path)) from exc


def open_run_folder(
    data_output: Path, day: date, run_number: int, info: RunInfo
) -> tuple[int, Path]:
    """Folder of a session's run on ``day``: the same N when possible.

    ``run_N`` is used when it is free (created exclusively) or already belongs to this run of
    the session (a retry continues there). If another session (or another run of this one)
    owns it, the folder this run took instead on that date is used again when there is one
    (a later task of the same date, or a retry), else the next free N of that date is taken
    and its run.yaml records ``session_run_id``. ``run.yaml`` is written when the folder is new.

    Returns:
        (N actually used, folder).
    """
    day_dir = data_output / day.isoformat()
    folder = day_dir / f"run_{run_number}"
    _inside(data_output, folder)

    def identity(number: int) -> RunInfo:
        return RunInfo(
            session_id=info.session_id,
            run_id=f"run_{number}",
            run_number=number,
            date=day,
            strategy=info.strategy,
            symbols=info.symbols,
            interval=info.interval,
            start_time=info.start_time,
            session_run_id=f"run_{run_number}",
        )

    # Most opens find the folder there already (start_session made it, or an earlier task or
    # retry of this date did): staging a run.yaml, with its fsync, only to have the rename
    # refused is for a name that looks free.
    free = not os.path.lexists(folder)
    if free and create_run_folder(day_dir, run_number, identity(run_number)) is not None:
        return run_number, folder
    try:
        owner = read_run_yaml(folder)
    except RecoveryError:
        owner = None
    if owner is None:
        # A folder without its identity: left by a version that created folders before
        # their run.yaml (or unreadable). Nothing else can own it: it is this run's.
        write_run_yaml(folder, identity(run_number))
        return run_number, folder
    if owner.session_id != info.session_id or session_run_number(folder, owner) != run_number:
        taken = _displaced_folder(day_dir, info.session_id, run_number)
        if taken is not None:
            return taken
        return allocate_run(day_dir, identity)
    return run_number, folder


def session_run_number(folder: Path, info: RunInfo | None = None) -> int:
    """N of the session's run that writes a run folder (``run_N`` of its first date).

    It is the folder's own N unless another session owned ``run_N`` on the folder's date:
    then run.yaml names the session's run as ``session_run_id`` (stats.yaml does too, which
    is read for folders whose run.yaml predates that key).

    Args:
        folder: A ``run_<int>`` folder.
        info: Its run.yaml, when already read.

    Raises:
        ValueError: If the folder is not named ``run_<int>``.
    """
    own = parse_run_number(folder.name)
    if own is None:
        raise ValueError(f"{folder} is not a run folder")
    recorded = info.session_run_id if info is not None else None
    if recorded is None:
        recorded = _stats_session_run_id(folder)
    number = parse_run_number(recorded) if recorded is not None else None
    return own if number is None else number


def _stats_session_run_id(folder: Path) -> str | None:
    try:
        data = load_yaml((folder / STATS_FILE).read_text())
    except (OSError, yaml.YAMLError):
        return None
    value = data.get("session_run_id") if isinstance(data, dict) else None
    return None if value is None else str(value)


def _displaced_folder(day_dir: Path, session_id: str, run_number: int) -> tuple[int, Path] | None:
    """The folder of a date that a session's run N took because run_N was not its own."""
    for n in existing_runs(day_dir):
        if n == run_number:
            continue
        folder = day_dir / f"run_{n}"
        try:
            info = read_run_yaml(folder)
        except RecoveryError:
            continue
        if (
            info is not None
            and info.session_id == session_id
            and session_run_number(folder, info) == run_number
        ):
            return n, folder
    return None


def find_session_runs(data_output: Path, session_id: str) -> list[tuple[date, int, Path]]:
    """Every run folder of a session, sorted by date then run number."""
    found = []
    if not data_output.is_dir():
        return []
    for run_yaml in data_output.glob(f"*/run_*/{RUN_FILE}"):
        folder = run_yaml.parent
        n = parse_run_number(folder.name)
        if n is None:
            continue
        try:
            stat = run_yaml.stat()
            info = _read_run_yaml_as_of(folder, stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except (RecoveryError, OSError):
            continue
        if info is not None and info.session_id == session_id:
            found.append((info.date, n, folder))
    return sorted(found, key=lambda r: (r[0], r[1]))
