"""Run numbering and run folders: real directories under tmp_path, real processes."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from argo_engine.errors import ConfigurationError
from argo_engine.persistence.runs import (
    STALE_STAGING_S,
    RunInfo,
    allocate_run,
    existing_runs,
    find_session_runs,
    open_run_folder,
    parse_run_number,
    read_run_yaml,
    write_run_yaml,
)


def _info(session: str, n: int = 1, day: date = date(2025, 10, 1)) -> RunInfo:
    return RunInfo(
        session_id=session,
        run_id=f"run_{n}",
        run_number=n,
        date=day,
        strategy="rsi",
        symbols=("BTCUSDT",),
        interval="1m",
        start_time=datetime(2025, 10, 1, 9, tzinfo=UTC),
    )


def _alpha(n: int) -> RunInfo:
    return _info("alpha", n)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("run_1", 1),
        ("run_7", 7),
        ("run_007", 7),
        ("run_10", 10),
        ("run_", None),
        ("run_x", None),
        ("run_-1", None),
        ("Run_3", None),
        ("run_3.bak", None),
        ("run_3_old", None),
        ("xrun_3", None),
    ],
)
def test_parse_run_number(name: str, expected: int | None) -> None:
    assert parse_run_number(name) == expected


def test_first_run_is_run_1(tmp_path: Path) -> None:
    n, folder = allocate_run(tmp_path / "2025-10-01", _alpha)
    assert (n, folder.name) == (1, "run_1")
    assert folder.is_dir()


def test_existing_runs_gaps_padded_and_junk(tmp_path: Path) -> None:
    day = tmp_path / "2025-10-01"
    for name in ("run_1", "run_5", "run_007", "run_x", "notes", "run_3.bak"):
        (day / name).mkdir(parents=True)
    (day / "run_9").write_text("a file, not a run")
    assert existing_runs(day) == [1, 5, 7]
    n, folder = allocate_run(day, _alpha)
    assert (n, folder.name) == (8, "run_8")  # gaps never filled, never padded
    n, folder = allocate_run(day, _alpha)
    assert (n, folder.name) == (10, "run_10")  # the file named run_9 is left alone
    assert (day / "run_9").read_text() == "a file, not a run"


def test_a_run_folder_exists_only_with_its_run_yaml(tmp_path: Path) -> None:
    day = tmp_path / "2025-10-01"
    n, folder = allocate_run(day, _alpha)
    info = read_run_yaml(folder)
    assert info is not None
    assert (info.session_id, info.run_id, info.run_number) == ("alpha", "run_1", n)
    # No staging folder is left behind.
    assert sorted(p.name for p in day.iterdir()) == ["run_1"]


def test_a_crash_before_the_rename_leaves_no_run(tmp_path: Path) -> None:
    # What a crash between staging and renaming leaves: a hidden folder with a run.yaml.
    day = tmp_path / "2025-10-01"
    staging = day / ".run_1.4242.0badc0de.tmp"
    staging.mkdir(parents=True)
    write_run_yaml(staging, _info("crashed", 1))
    assert existing_runs(day) == []
    assert find_session_runs(tmp_path, "crashed") == []
    # The next start takes run_1, and a later date of that session gets its own run_1.
    n, folder = allocate_run(day, _alpha)
    assert (n, folder.name) == (1, "run_1")
    assert open_run_folder(tmp_path, date(2025, 10, 2), 1, _info("alpha", 1))[1].name == "run_1"


def test_staging_folders_abandoned_by_a_crash_are_removed_later(tmp_path: Path) -> None:
    day = tmp_path / "2025-10-01"
    old = day / ".run_1.4242.0badc0de.tmp"
    recent = day / ".run_2.4343.0badc0df.tmp"  # a concurrent start, mid-creation
    for folder in (old, recent):
        folder.mkdir(parents=True)
        write_run_yaml(folder, _info("crashed", 1))
    an_hour_ago = time.time() - STALE_STAGING_S - 1
    os.utime(old, (an_hour_ago, an_hour_ago))
    allocate_run(day, _alpha)
    assert sorted(p.name for p in day.iterdir()) == [recent.name, "run_1"]


def test_an_empty_run_folder_of_an_older_version_is_taken_by_its_run(tmp_path: Path) -> None:
    # Older versions created run_N before its run.yaml: a crash in between left it empty.
    (tmp_path / "2025-10-02" / "run_1").mkdir(parents=True)
    n, folder = open_run_folder(tmp_path, date(2025, 10, 2), 1, _info("alpha", 1))
    assert (n, folder.name) == (1, "run_1")
    info = read_run_yaml(folder)
    assert info is not None
    assert info.session_id == "alpha"


def _allocate(day: str, barrier: object, queue: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    n, _ = allocate_run(Path(day), _alpha)
    queue.put(n)  # type: ignore[attr-defined]


def test_eight_processes_get_eight_distinct_numbers(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(8)
    queue = ctx.Queue()
    day = tmp_path / "2025-10-01"
    procs = [ctx.Process(target=_allocate, args=(str(day), barrier, queue)) for _ in range(8)]
    for p in procs:
        p.start()
    numbers = sorted(queue.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert numbers == list(range(1, 9))
    assert existing_runs(day) == list(range(1, 9))


def test_same_number_on_later_dates_and_collision(tmp_path: Path) -> None:
    n, folder = allocate_run(tmp_path / "2025-10-01", _alpha)
    write_run_yaml(folder, _info("alpha", n))
    # A later date: same N.
    n2, f2 = open_run_folder(tmp_path, date(2025, 10, 2), n, _info("alpha", n))
    assert (n2, f2.name) == (1, "run_1")
    info = read_run_yaml(f2)
    assert info is not None
    assert info.session_id == "alpha"
    assert info.date == date(2025, 10, 2)
    # A retry of the same session on that date continues in the same folder.
    assert open_run_folder(tmp_path, date(2025, 10, 2), n, _info("alpha", n))[1] == f2
    # Another session owns run_1 on 10-03: take the next free number there.
    other = tmp_path / "2025-10-03" / "run_1"
    other.mkdir(parents=True)
    write_run_yaml(other, _info("beta", 1, date(2025, 10, 3)))
    n3, f3 = open_run_folder(tmp_path, date(2025, 10, 3), n, _info("alpha", n))
    assert (n3, f3.name) == (2, "run_2")
    info3 = read_run_yaml(f3)
    assert info3 is not None
    assert info3.run_id == "run_2"
    assert info3.session_run_id == "run_1"  # the session's own run, as stats.yaml says
    # A later step of the same run on that date (a retry) finds that folder again.
    assert open_run_folder(tmp_path, date(2025, 10, 3), n, _info("alpha", n)) == (2, f3)
    # Another run of alpha never takes it: its run_2 is alpha's run 1.
    n4, f4 = open_run_folder(tmp_path, date(2025, 10, 3), 2, _info("alpha", 2))
    assert (n4, f4.name) == (3, "run_3")
    assert [(d.isoformat(), k) for d, k, _ in find_session_runs(tmp_path, "alpha")] == [
        ("2025-10-01", 1),
        ("2025-10-02", 1),
        ("2025-10-03", 2),
        ("2025-10-03", 3),
    ]


def test_session_id_escaping_the_output_is_rejected(tmp_path: Path) -> None:
    from argo_engine.settings import validate_session_id

    for bad in ("../x", "/etc", "a/b", ".."):
        with pytest.raises(ConfigurationError):
            validate_session_id(bad)
