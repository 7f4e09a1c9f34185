"""The temporary local Prefect API of an ``argo run`` that has no server to talk to.

Importing this module does not import prefect: the API server starts in a child process while
the caller imports prefect and the flows (about 3 s) in parallel, instead of after them.

What it adds over Prefect's own temporary server:
- It never outlives the ``argo run`` that started it: the child gets SIGTERM when its parent
  dies, even from SIGKILL (Linux ``PR_SET_PDEATHSIG``), and is stopped when the run ends.
- Concurrent first starts on one ``PREFECT_HOME`` take turns (a file lock held until the API
  answers): the first creates and migrates the shared database, the next finds it migrated
  instead of migrating it at the same time and failing with a long traceback.
- Its output goes to ``$PREFECT_HOME/argo-local-api.log``, not to the status line; analytics
  are off.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from argo_engine.errors import ConfigurationError

_PR_SET_PDEATHSIG = 1


def configured_api_url() -> str | None:
    """The Prefect API the user configured (PREFECT_API_URL, or the active profile), if any.

    Read without importing prefect: the environment first, then the active profile of
    ``profiles.toml`` (PREFECT_PROFILES_PATH, else ``$PREFECT_HOME/profiles.toml``).
    """
    url = os.environ.get("PREFECT_API_URL")
    if url:
        return url
    path = Path(os.environ.get("PREFECT_PROFILES_PATH") or prefect_home() / "profiles.toml")
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    name = os.environ.get("PREFECT_PROFILE") or doc.get("active") or "ephemeral"
    profile = doc.get("profiles", {}).get(name, {})
    value = profile.get("PREFECT_API_URL") if isinstance(profile, dict) else None
    return str(value) if value else None


def prefect_home() -> Path:
    """``PREFECT_HOME`` (default ``~/.prefect``), where the local API keeps its database."""
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()


class LocalApi:
    """A Prefect API server on 127.0.0.1 in a child process of this one.

    Use as a context manager: :meth:`start` spawns it, :meth:`wait_ready` waits until it
    answers (and releases the start lock), leaving the block stops it.
    """

    def __init__(self, on_wait: Callable[[str], None] | None = None) -> None:
        """Prepare (nothing runs yet).

        Args:
            on_wait: Called with a short text while the start waits for something.
        """
        self._on_wait = on_wait or (lambda text: None)
        self._process: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None
        self._log: IO[bytes] | None = None
        self._log_path = prefect_home() / "argo-local-api.log"
        self.url = ""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> str:
        """Take the start lock, spawn the server on a free port; returns its API URL."""
        home = prefect_home()
        home.mkdir(parents=True, exist_ok=True)
        self._lock = self._take_lock(home / ".argo-local-api.lock")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/api"
        env = {
            **os.environ,
            "PREFECT_UI_ENABLED": "0",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # The same as Prefect's temporary server: no background services, last instance.
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
        }
        env.pop("PREFECT_API_URL", None)
        self._log = self._log_path.open("ab")
        parent = os.getpid()
        try:
            # uvicorn serves the socket bound here (--fd): the port is ours from the start,
            # no window for another process to take it between choosing and binding.
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    "prefect.server.api.server:create_app",
                    "--fd",
                    str(sock.fileno()),
                    "--log-level",
                    "error",
                    "--lifespan",
                    "on",
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                pass_fds=(sock.fileno(),),
                preexec_fn=lambda: _die_with_parent(parent),
            )
        finally:
            sock.close()
        return self.url

    def wait_ready(self, timeout_s: float | None = None) -> None:
        """Block until the API answers its health check, then release the start lock.

        Raises:
            ConfigurationError: If the server exits or does not answer in time (the message
                names its log and how to do without it).
        """
        assert self._process is not None, "start() first"
        limit = timeout_s or float(
            os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS") or 120
        )
        deadline = time.monotonic() + limit
        health = self.url + "/health"
        while True:
            if self._process.poll() is not None:
                raise self._failed(f"exited with code {self._process.returncode}")
            try:
                with urllib.request.urlopen(health, timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise self._failed(f"did not answer within {limit:.0f} s")
            time.sleep(0.05)
        self._release_lock()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and release what is held."""
        self._release_lock()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def pid(self) -> int | None:
        """Process id of the server while it runs."""
        return self._process.pid if self._process is not None else None

    def _take_lock(self, path: Path) -> IO[str]:
        handle = path.open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._on_wait("waiting for another argo run to start its local Prefect API...")
            fcntl.flock(handle, fcntl.LOCK_EX)
        return handle

    def _release_lock(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def _failed(self, why: str) -> ConfigurationError:
        self.stop()
        tail = ""
        with contextlib.suppress(OSError):
            lines = self._log_path.read_text(errors="replace").strip().splitlines()
            tail = f" (last line of {self._log_path}: {lines[-1]})" if lines else ""
        return ConfigurationError(
            f"the local Prefect API {why}{tail}; set PREFECT_API_URL to a running Prefect "
            "server, or run with --no-prefect"
        )


def _die_with_parent(parent: int) -> None:
    # Runs in the child between fork and exec: ask the kernel for SIGTERM when the parent
    # dies, then make sure it had not died already (the request would come too late).
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


@contextlib.contextmanager
def api_environment(url: str) -> Iterator[None]:
    """``PREFECT_API_URL`` set to ``url`` inside the block (before prefect is imported)."""
    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous
