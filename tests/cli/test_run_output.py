"""What `argo run` tells a user, as a user sees it: a subprocess with its output piped.

Output piped to a file is what a CI log, `| tee` or `> run.log` gets: it must hold whole lines
and no terminal codes, and at COLUMNS=80 every line of the tables fits.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

STATUS = re.compile(r"^bars \d+ \| orders \d+ \| fills \d+ \| realized PnL -?\d+\.\d\d \| ")


def _argo(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ARGO_", "PREFECT_"))
        and k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR")
    }
    base.update({"PREFECT_HOME": str(cwd / ".prefect"), "COLUMNS": "80"})
    base.update(env)
    exe = Path(sys.executable).with_name("argo")
    return subprocess.run(
        [str(exe), *args], cwd=cwd, env=base, capture_output=True, text=True, timeout=300
    )


def _value(lines: list[str], label: str) -> str:
    found = [line.removeprefix(label).strip() for line in lines if line.startswith(label)]
    assert len(found) == 1, lines
    return found[0]


def _assert_clean(proc: subprocess.CompletedProcess[str]) -> None:
    for stream in (proc.stdout, proc.stderr):
        assert "\x1b" not in stream  # no colours, no cursor moves
        assert "\r" not in stream
        assert "…" not in stream  # no value cut short
    for line in proc.stdout.splitlines():
        assert len(line) <= 80, line


@pytest.fixture(scope="module")
def two_day_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    cwd = tmp_path_factory.mktemp("run")
    # 1,500 bars of 1m from 09:00: two trading dates.
    proc = _argo(["run", "--no-prefect", "--bars", "1500", "--data-output", "out"], cwd)
    return cwd, proc


def test_run_prints_session_folders_and_report(
    two_day_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    cwd, proc = two_day_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    session_id = _value(lines, "session:")
    folders = [line.strip() for line in lines if line.startswith("  out/")]
    assert folders == ["out/2025-10-01/run_1", "out/2025-10-02/run_1"]
    for folder in folders:
        info = yaml.safe_load((cwd / folder / "run.yaml").read_text())
        assert info["session_id"] == session_id
    report = cwd / _value(lines, "report:")
    assert report == cwd / "out" / ".reports" / f"{session_id}.html"
    assert report.stat().st_size > 0
    assert "<html" in report.read_text().lower()
    # The summary shows both dates whole.
    assert sum(line.startswith(("2025-10-01 ", "2025-10-02 ")) for line in lines) == 2
    # How to continue: the next bar after the last one (2025-10-02 09:59 for both symbols).
    assert f"--session-id {session_id} --start 2025-10-02T10:00:00Z" in proc.stdout


def test_piped_output_is_whole_lines_within_80_columns(
    two_day_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    _, proc = two_day_run
    _assert_clean(proc)
    first = proc.stdout.splitlines()[0]
    # The status line is a line of its own, ending where the next output begins.
    assert STATUS.match(first)
    assert first.endswith("| 2025-10-02 09:59")


def test_continuing_the_session_carries_the_cumulative_figures(
    two_day_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    cwd, first = two_day_run
    lines = first.stdout.splitlines()
    session_id = _value(lines, "session:")
    flags = _value(lines, "  --session-id").split()
    start = flags[flags.index("--start") + 1]
    args = ["run", "--no-prefect", "--bars", "120", "--data-output", "out"]
    proc = _argo([*args, "--session-id", session_id, "--start", start], cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _value(proc.stdout.splitlines(), "session:") == session_id
    day2_run1 = yaml.safe_load((cwd / "out/2025-10-02/run_1/stats.yaml").read_text())
    day2_run2 = yaml.safe_load((cwd / "out/2025-10-02/run_2/stats.yaml").read_text())
    assert day2_run2["session_id"] == session_id
    assert (
        day2_run2["cumulative"]["trade_result"]["number_of_trades"]
        >= day2_run1["cumulative"]["trade_result"]["number_of_trades"]
    )
    stats = _argo(["stats", "--session", session_id, "--data-output", "out"], cwd)
    assert stats.returncode == 0, stats.stderr
    _assert_clean(stats)
    assert any(line.startswith("cumulative ") for line in stats.stdout.splitlines())
    sessions = _argo(["sessions", "--data-output", "out"], cwd)
    assert sessions.returncode == 0, sessions.stderr
    _assert_clean(sessions)
    rows = [line for line in sessions.stdout.splitlines() if line.startswith("2025-")]
    assert len(rows) == 3
    assert all(session_id in line for line in rows)


def test_wide_tables_show_every_column(
    two_day_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    cwd, first = two_day_run
    session_id = _value(first.stdout.splitlines(), "session:")
    proc = _argo(["stats", "--session", session_id, "--data-output", "out", "--wide"], cwd)
    assert proc.returncode == 0, proc.stderr
    header = next(line for line in proc.stdout.splitlines() if line.startswith("date "))
    for column in ("max dd abs", "fees", "avg hold s", "unmatched"):
        assert column in header


def test_version_and_help(tmp_path: Path) -> None:
    cwd = tmp_path
    proc = _argo(["--version"], cwd)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"argo-engine {version('argo-engine')}"
    # A wide help keeps each option's text on one line.
    helped = _argo(["run", "--help"], cwd, COLUMNS="200")
    assert helped.returncode == 0
    for option, env, default in (
        ("--feed", "ARGO_FEED__KIND", "synthetic"),
        ("--end", "ARGO_FEED__END", None),
        ("--symbols", "ARGO_SESSION__SYMBOLS", "BTCUSDT,ETHUSDT"),
        ("--timezone", "ARGO_SESSION__TIMEZONE", "UTC"),
        ("--strategy", "ARGO_STRATEGY__NAME", "rsi"),
    ):
        line = next(x for x in helped.stdout.splitlines() if f" {option} " in x)
        assert f"[env var: {env}]" in line
        if default is not None:
            assert f"[default: {default}]" in line


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_binance_start_that_fails_leaves_no_run_folder(tmp_path: Path) -> None:
    port = _closed_port()
    proc = _argo(
        ["run", "--no-prefect", "--feed", "binance", "--data-output", "out"],
        tmp_path,
        ARGO_FEED__BINANCE_REST_URL=f"http://127.0.0.1:{port}",
        ARGO_FEED__BINANCE_WS_URL=f"ws://127.0.0.1:{port}",
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert STATUS.match(proc.stdout.splitlines()[0])
    out = tmp_path / "out"
    assert not list(out.glob("*/run_*"))
    assert not [p for p in out.iterdir() if not p.name.startswith(".")]
    sessions = _argo(["sessions", "--data-output", "out"], tmp_path)
    assert sessions.returncode == 1
    assert "no sessions" in sessions.stderr
