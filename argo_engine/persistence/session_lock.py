"""One writer per session: an OS-level lock file held for as long as a session runs.

Every door that starts a session (``argo run``, a Prefect deployment run, a schedule, a retry of
a crashed parent) takes the lock ``{data_output}/.locks/{session_id}.lock`` before it allocates a
run number or touches a folder, and holds it until the session ends. The lock is a ``flock`` on
an open file descriptor: the kernel releases it when the holder exits, however it exits
(``kill -9``, OOM, power loss of a local disk), so a crash never leaves a stale lock behind and
no one ever has to delete a lock file by hand.

The file also names its holder (host, pid, Prefect flow run id, since when) so that a refused
start can say who holds the session. That text is informative only: the ``flock`` decides. A
refused start reads the file and writes nothing.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from argo_engine.errors import PersistenceError, TerminalError
from argo_engine.settings import validate_session_id

LOCK_DIR = ".locks"


class SessionBusyError(TerminalError):
    """The session is already running elsewhere; this start was refused and wrote nothing."""


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds a session's lock.

    Attributes:
        session_id: The session.
        host: Host name of the holder.
        pid: Process id of the holder.
        flow_run_id: Prefect flow run id of the holder, when it runs under Prefect.
        since: When the holder took the lock (UTC, ISO 8601).
    """

    session_id: str
    host: str
    pid: int
    flow_run_id: str | None
    since: str

    def describe(self) -> str:
        """One human line: ``host myhost pid 123, flow run 8f0e..., since 2025-...``."""
        run = f", flow run {self.flow_run_id}" if self.flow_run_id else ""
        return f"host {self.host} pid {self.pid}{run}, since {self.since}"


def lock_path(data_output: Path, session_id: str) -> Path:
    """Where the lock file of ``session_id`` lives.

    Raises:
        ConfigurationError: If the session id is not safe as a file name.
    """
    return data_output / LOCK_DIR / f"{validate_session_id(session_id)}.lock"


def read_holder(path: Path) -> LockHolder | None:
    """The holder recorded in a lock file, or None when it names none (or is unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return LockHolder(
            session_id=str(data["session_id"]),
            host=str(data["host"]),
            pid=int(data["pid"]),
            flow_run_id=data.get("flow_run_id"),
            since=str(data["since"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


class SessionLock:
    """A held session lock; release it with :meth:`release` (or use :func:`hold_session`)."""

    def __init__(self, path: Path, fd: int, holder: LockHolder) -> None:
        self.path = path
        self.holder = holder
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        """Whether this object still holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        """Give the session up (idempotent). The file stays: it is the lock's inode."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        # Clear the holder first so nobody reads a released lock as held; then unlock.
        with suppress(OSError):
            os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def acquire_session(
    data_output: Path,
    session_id: str,
    *,
    flow_run_id: str | None = None,
    now: datetime | None = None,
) -> SessionLock:
    """Take the session's lock or refuse the start.

    Args:
        data_output: Root of the run folders.
        session_id: The session to hold (already validated: it is a file name).
        flow_run_id: The Prefect flow run that holds it, recorded for the refusal message.
        now: When the lock is taken (injected clock); the wall clock when None.

    Returns:
        The held lock.

    Raises:
        SessionBusyError: If another live process holds the session; nothing was written.
        PersistenceError: If the lock file cannot be created.
    """
    path = lock_path(data_output, session_id)
    fd = _open_lock_file(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = read_holder(path)
        who = holder.describe() if holder is not None else "another process"
        raise SessionBusyError(
            f"session {session_id} is already running ({who}); "
            "wait for it to end or stop it first (lock file "
            f"{path})",
            session_id=session_id,
            holder=asdict(holder) if holder is not None else None,
        ) from None
    holder = LockHolder(
        session_id=session_id,
        host=socket.gethostname(),
        pid=os.getpid(),
        flow_run_id=flow_run_id,
        since=(now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds"),
    )
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(holder)).encode(), 0)
    except OSError:
        # The holder text is informative only; the flock is the lock.
        pass
    return SessionLock(path, fd, holder)


def probe_session(data_output: Path, session_id: str) -> None:
    """Refuse early when a session is held elsewhere, without keeping or creating anything.

    Used before slow start-up work (importing and starting Prefect) so that a busy session is
    refused in a moment; the real lock is taken later by whoever runs the session.

    Raises:
        SessionBusyError: If another live process holds the session.
    """
    path = lock_path(data_output, session_id)
    if not path.exists():
        return
    acquire_session(data_output, session_id).release()


@contextmanager
def hold_session(
    data_output: Path,
    session_id: str,
    *,
    flow_run_id: str | None = None,
    now: datetime | None = None,
) -> Iterator[SessionLock]:
    """Hold the session's lock for the duration of the ``with`` block.

    Raises:
        SessionBusyError: If another live process holds the session.
    """
    lock = acquire_session(data_output, session_id, flow_run_id=flow_run_id, now=now)
    try:
        yield lock
    finally:
        lock.release()


def _open_lock_file(path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_CLOEXEC: a child process (a Prefect worker's flow run, a subprocess of a strategy)
        # must not inherit the descriptor and keep the session locked after we exit.
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise PersistenceError(
            f"cannot create the session lock file {path}: {exc.strerror}", path=str(path)
        ) from exc
