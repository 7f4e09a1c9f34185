"""The ids of the fills the engine state counts, kept beside the state instead of inside it.

Recovery must tell the fills of a run folder that the saved engine state already counts
(its statistics, the broker's book) from those booked after it. The state used to hold every
trade id of the date and was rewritten whole every flush interval, so its size and the bytes
written per interval grew with the date's fills (6.6 MB at the end of a 164,000-fill day).
Now the ids go to ``.journal/trade-ids.txt``, one per line in the order they were booked,
written only once each (appended), and the state holds only how many of its first lines it
counts. The lines are fsynced before the state that counts them is written, so a state never
counts more lines than the file holds; lines beyond its count (booked after it, then a
crash) are dropped when the folder is reopened.
"""

from __future__ import annotations

import os
from pathlib import Path

from argo_engine.errors import RecoveryError
from argo_engine.persistence.files import atomic_write_bytes, fsync_dir, persistence_error

TRADE_IDS_FILE = "trade-ids.txt"


class TradeIdLog:
    """The booked trade ids of one run folder, in booking order, and their durable prefix.

    The engine thread calls :meth:`book`; whoever writes a state (the flusher, or the engine
    thread after waiting for it) calls :meth:`sync_to` with the count the state snapshot
    took, before writing the state. Calls of :meth:`sync_to` must not run concurrently.
    """

    def __init__(self, journal_dir: Path, counted: int | None) -> None:
        """Open the log of a folder's ``.journal`` directory.

        Args:
            journal_dir: The run folder's ``.journal`` directory.
            counted: How many ids the folder's saved state counts (None: no saved state, or
                one that predates this file; the log starts empty).

        Raises:
            RecoveryError: If the file holds fewer ids than the state counts.
            PersistenceError: If the file cannot be read or rewritten.
        """
        self.path = journal_dir / TRADE_IDS_FILE
        ids: list[str] = []
        if counted:
            try:
                ids = self.path.read_text(encoding="utf-8").split("\n")[:counted]
            except FileNotFoundError:
                ids = []
            except OSError as exc:
                raise persistence_error(exc, self.path) from exc
            if len(ids) < counted or "" in ids:
                raise RecoveryError(
                    f"{self.path} holds fewer trade ids than the engine state counts ({counted})",
                    path=str(self.path),
                )
        self.ids = ids
        self.set = set(ids)
        # Drop lines beyond the count (booked after the state, before a crash): they are
        # booked again, in a new order, by the recovery that follows.
        data = "".join(f"{i}\n" for i in ids).encode()
        self._exists = self.path.exists()
        if self._exists:
            # Durably: a stale line that came back after a power loss would be counted.
            atomic_write_bytes(self.path, data)
        # A new folder's file is created by the first sync (no fsync on a date's opening).
        self._synced = len(ids)
        self._offset = len(data)

    def book(self, trade_id: str) -> None:
        """Record a fill the engine has just counted."""
        self.set.add(trade_id)
        self.ids.append(trade_id)

    def __contains__(self, trade_id: object) -> bool:
        return trade_id in self.set

    def __len__(self) -> int:
        return len(self.ids)

    def sync_to(self, count: int) -> None:
        """Make the first ``count`` ids durable (append and fsync what is missing).

        Raises:
            PersistenceError: If the file cannot be written.
        """
        if count <= self._synced:
            return
        # Slicing a list the engine thread appends to is safe under the GIL; its first
        # ``count`` items never change.
        data = "".join(f"{i}\n" for i in self.ids[self._synced : count]).encode()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                # At the end of what was synced before: a write that failed halfway is
                # overwritten by this one, which starts with the same bytes.
                os.pwrite(fd, data, self._offset)
                os.fsync(fd)
            finally:
                os.close(fd)
            if not self._exists:
                fsync_dir(self.path.parent)  # the file's creation
                self._exists = True
        except OSError as exc:
            raise persistence_error(exc, self.path) from exc
        self._synced = count
        self._offset += len(data)
