"""A real Prefect server, work pool, deployments and worker on 127.0.0.1 for end-to-end tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prefect_bin() -> str:
    """The ``prefect`` executable of this environment."""
    exe = Path(sys.executable).with_name("prefect")
    return str(exe) if exe.exists() else shutil.which("prefect") or "prefect"


def run_cli(args: list[str], env: dict[str, str], timeout: float = 300) -> str:
    """Run a command to completion; fail the test with its output when it fails."""
    proc = subprocess.run(
        args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM a process group, SIGKILL it if it does not end in 30 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


@contextmanager
def prefect_server(home: Path, **extra_env: str) -> Iterator[dict[str, str]]:
    """Start ``prefect server`` on a free loopback port; yield the environment that uses it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ARGO_"))}
    env.update(
        PREFECT_HOME=str(home / "prefect-home"),
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        ARGO_PROJECT_DIR=str(ROOT),
        PYTHONUNBUFFERED="1",
        **extra_env,
    )
    log = open(home / "server.log", "wb")  # noqa: SIM115
    server = subprocess.Popen(
        [prefect_bin(), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            # Polling a real server's health endpoint: the only readiness signal it offers.
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((home / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        yield env
    finally:
        stop_group(server)
        log.close()


def deploy_all(env: dict[str, str]) -> None:
    """Create the process work pool and deploy ``deployments/prefect.yaml`` as a user does."""
    prefect = prefect_bin()
    run_cli([prefect, "work-pool", "create", "argo-pool", "--type", "process"], env)
    prefect_file = str(ROOT / "deployments" / "prefect.yaml")
    run_cli([prefect, "--no-prompt", "deploy", "--all", "--prefect-file", prefect_file], env)


@contextmanager
def worker(
    env: dict[str, str], log_path: Path, limit: int = 1
) -> Iterator[subprocess.Popen[bytes]]:
    """A ``prefect worker`` on the argo-pool, stopped (process group) on exit."""
    log = open(log_path, "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [prefect_bin(), "worker", "start", "--pool", "argo-pool", "--limit", str(limit)],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        stop_group(proc)
        log.close()
