"""The temporary local Prefect API of ``argo run``: shared first starts, gone with its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from flows.local_api import configured_api_url

ROOT = Path(__file__).resolve().parents[2]

# A stand-in for `argo run`: start the API, print its pid and URL, then wait to be killed.
HOLDER = """
import sys, threading
from flows.local_api import LocalApi
api = LocalApi()
api.start()
api.wait_ready()
print(api.pid, api.url, flush=True)
threading.Event().wait()
"""


def test_concurrent_first_starts_share_one_database_and_die_with_their_parent(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "home")}
    env.pop("PREFECT_API_URL", None)
    holders = [
        subprocess.Popen(
            [sys.executable, "-c", HOLDER],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        started = []
        for holder in holders:
            assert holder.stdout is not None
            line = holder.stdout.readline().split()
            assert line, holder.stderr.read() if holder.stderr else ""
            started.append((int(line[0]), line[1]))
        for _, url in started:
            assert httpx.get(f"{url}/health", timeout=10).status_code == 200
        # The second start waited for the first to create and migrate the database.
        log = (tmp_path / "home" / "argo-local-api.log").read_text()
        assert "Traceback" not in log
        assert "duplicate column" not in log
        servers = [psutil.Process(pid) for pid, _ in started]
        for holder in holders:
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=30)
        # SIGKILL gives the parent no chance to stop its server: the kernel's parent-death
        # signal does.
        gone, alive = psutil.wait_procs(servers, timeout=30)
        assert alive == []
        assert len(gone) == 2
    finally:
        for holder in holders:
            if holder.poll() is None:
                holder.kill()
                holder.wait()


def test_configured_api_url_reads_the_environment_then_the_active_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("PREFECT_PROFILE", raising=False)
    monkeypatch.delenv("PREFECT_PROFILES_PATH", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    assert configured_api_url() is None
    (tmp_path / "profiles.toml").write_text(
        'active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://10.0.0.5:4200/api"\n'
        '[profiles.other]\nPREFECT_API_URL = "http://10.0.0.6:4200/api"\n'
    )
    assert configured_api_url() == "http://10.0.0.5:4200/api"
    monkeypatch.setenv("PREFECT_PROFILE", "other")
    assert configured_api_url() == "http://10.0.0.6:4200/api"
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert configured_api_url() == "http://127.0.0.1:4200/api"
