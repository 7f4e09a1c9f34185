"""One writer per session: the OS-level session lock, from every door that starts a session."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from argo_engine.cli import app
from argo_engine.errors import ConfigurationError
from argo_engine.persistence.session_lock import (
    SessionBusyError,
    acquire_session,
    hold_session,
    lock_path,
    probe_session,
    read_holder,
)

T0 = datetime(2025, 10, 1, 9, 30, tzinfo=UTC)


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_second_holder_is_refused_with_the_holder_named(tmp_path: Path) -> None:
    with hold_session(tmp_path, "s-1", flow_run_id="run-abc", now=T0) as held:
        assert held.held
        before = _tree(tmp_path)
        with pytest.raises(SessionBusyError) as refused:
            acquire_session(tmp_path, "s-1")
        text = str(refused.value)
        assert "s-1" in text
        assert f"pid {os.getpid()}" in text
        assert "run-abc" in text
        assert "2025-10-01T09:30:00+00:00" in text
        assert refused.value.attrs["holder"]["flow_run_id"] == "run-abc"
        assert _tree(tmp_path) == before  # the refused start wrote nothing
        # Another session is independent.
        with hold_session(tmp_path, "s-2"):
            pass
    # Released: the next start gets it, and the file no longer names a holder.
    assert read_holder(lock_path(tmp_path, "s-1")) is None
    acquire_session(tmp_path, "s-1").release()


def test_probe_refuses_a_busy_session_and_creates_nothing_for_a_free_one(tmp_path: Path) -> None:
    probe_session(tmp_path / "fresh", "s-1")
    assert not (tmp_path / "fresh").exists()
    with hold_session(tmp_path, "s-1"), pytest.raises(SessionBusyError):
        probe_session(tmp_path, "s-1")
    probe_session(tmp_path, "s-1")


def test_unsafe_session_id_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        acquire_session(tmp_path, "../escape")


def test_a_killed_holder_never_leaves_a_stale_lock(tmp_path: Path) -> None:
    # A real process takes the lock and reports it on stdout; kill -9 it.
    code = (
        "import sys; from pathlib import Path;"
        "from argo_engine.persistence.session_lock import acquire_session;"
        "lock = acquire_session(Path(sys.argv[1]), 'killed');"
        "print('held', flush=True); sys.stdin.read()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(SessionBusyError) as refused:
            acquire_session(tmp_path, "killed")
        assert f"pid {child.pid}" in str(refused.value)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    # The kernel released it with the process: no stale lock, no manual clean-up.
    acquire_session(tmp_path, "killed").release()


def test_cli_start_of_a_running_session_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    runner = CliRunner()
    args = ["run", "--data-output", str(out), "--session-id", "busy", "--bars", "120"]
    with hold_session(out, "busy", flow_run_id="holder-run"):
        before = _tree(out)
        for door in (["--no-prefect"], ["--prefect"]):
            result = runner.invoke(app, [*args, *door])
            assert result.exit_code != 0
            assert "busy" in result.output
            assert "holder-run" in result.output
            assert _tree(out) == before
    # Once the holder is gone the same command runs the session.
    result = runner.invoke(app, [*args, "--no-prefect"])
    assert result.exit_code == 0, result.output
    assert (out / "2025-10-01" / "run_1" / "trades.parquet").exists()
