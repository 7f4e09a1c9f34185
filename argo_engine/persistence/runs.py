"""Run folders: atomic run-number allocation, run.yaml, and finding a session's runs.

``{data_output}/{YYYY-MM-DD}/run_N``: N is allocated as max(existing N) + 1 with an exclusive
``mkdir`` (retried on conflict), so concurrent starts never share a folder. Only directories
named ``run_<digits>`` count (``run_007`` is 7); gaps are never filled; new names are never
padded.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

from argo_engine.errors import ConfigurationError, PersistenceError, RecoveryError
from argo_engine.persistence.files import atomic_write_bytes, fsync_dir, persistence_error
from argo_engine.persistence.schema import RUN_FILE

_RUN_RE = re.compile(r"^run_([0-9]+)$")
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


def allocate_run(day_dir: Path) -> tuple[int, Path]:
    """Create the next ``run_N`` folder of a date atomically.

    Returns:
        (N, folder).

    Raises:
        PersistenceError: If the folder cannot be created.
    """
    try:
        day_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise persistence_error(exc, day_dir) from exc
    floor = 0
    for _ in range(_MAX_ATTEMPTS):
        numbers = existing_runs(day_dir)
        n = max(numbers[-1] if numbers else 0, floor) + 1
        folder = day_dir / f"run_{n}"
        try:
            os.mkdir(folder)
        except FileExistsError:
            if not folder.is_dir():
                floor = n  # a file squats on the name: never touch it, skip the number
            continue  # otherwise another process took N first: look again
        except OSError as exc:
            raise persistence_error(exc, folder) from exc
        fsync_dir(day_dir)
        return n, folder
    raise PersistenceError(f"could not allocate a run folder in {day_dir}", path=str(day_dir))


@dataclass(frozen=True, slots=True)
class RunInfo:
    """Identity of a run folder (``run.yaml``)."""

    session_id: str
    run_id: str
    run_number: int
    date: date
    strategy: str
    symbols: tuple[str, ...]
    interval: str
    start_time: datetime

    def to_yaml_dict(self) -> dict[str, Any]:
        """The run.yaml mapping."""
        return {
            "session_id": self.session_id,
            "run_id": self.run_id,
            "run_number": self.run_number,
            "date": self.date.isoformat(),
            "strategy": self.strategy,
            "symbols": list(self.symbols),
            "interval": self.interval,
            "start_time": self.start_time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }


def write_run_yaml(folder: Path, info: RunInfo) -> None:
    """Write ``run.yaml`` atomically."""
    # libyaml's emitter when available: a session writes one per date.
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    data = yaml.dump(info.to_yaml_dict(), Dumper=dumper, sort_keys=False).encode()
    atomic_write_bytes(folder / RUN_FILE, data)


def read_run_yaml(folder: Path) -> RunInfo | None:
    """Read ``run.yaml``; None when absent.

    Raises:
        RecoveryError: If the file exists but cannot be read.
    """
    path = folder / RUN_FILE
    if not path.exists():
        return None
    try:
        raw = yaml.safe_load(path.read_text())
        start = str(raw["start_time"]).replace("Z", "+00:00")
        return RunInfo(
            session_id=str(raw["session_id"]),
            run_id=str(raw["run_id"]),
            run_number=int(raw["run_number"]),
            date=date.fromisoformat(str(raw["date"])),
            strategy=str(raw["strategy"]),
            symbols=tuple(raw["symbols"]),
            interval=str(raw["interval"]),
            start_time=datetime.fromisoformat(start),
        )
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise RecoveryError(f"{path} is unreadable: {exc}", path=str(path)) from exc


def open_run_folder(
    data_output: Path, day: date, run_number: int, info: RunInfo
) -> tuple[int, Path]:
    """Folder of a session's run on ``day``: the same N when possible.

    ``run_N`` is used when it is free (created exclusively) or already belongs to this session
    (a retry continues there). If another session owns it, the next free N of that date is
    taken instead. ``run.yaml`` is written when the folder is new.

    Returns:
        (N actually used, folder).
    """
    day_dir = data_output / day.isoformat()
    folder = day_dir / f"run_{run_number}"
    _inside(data_output, folder)
    try:
        day_dir.mkdir(parents=True, exist_ok=True)
        os.mkdir(folder)
        fsync_dir(day_dir)
        created = True
    except FileExistsError:
        created = False
    except OSError as exc:
        raise persistence_error(exc, folder) from exc
    number = run_number
    if not created:
        owner = _owner(folder)
        if owner is not None and owner != info.session_id:
            number, folder = allocate_run(day_dir)
            created = True
        elif owner is None:
            created = True  # allocated by start_session moments ago, or a crash before run.yaml
    if created:
        write_run_yaml(
            folder,
            RunInfo(
                session_id=info.session_id,
                run_id=f"run_{number}",
                run_number=number,
                date=day,
                strategy=info.strategy,
                symbols=info.symbols,
                interval=info.interval,
                start_time=info.start_time,
            ),
        )
    return number, folder


def _owner(folder: Path) -> str | None:
    try:
        info = read_run_yaml(folder)
    except RecoveryError:
        return None
    return info.session_id if info else None


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
            info = read_run_yaml(folder)
        except RecoveryError:
            continue
        if info is not None and info.session_id == session_id:
            found.append((info.date, n, folder))
    return sorted(found, key=lambda r: (r[0], r[1]))
