"""The accepted-orders journal: ``.journal/accepted-orders.jsonl``.

When the broker keeps its book in this process (the paper broker), the engine journals each
acceptance of an order until the next state save holds it, so that a restart can rest the
order again (see ``reconcile.py``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import orjson

from argo_engine.domain.orders import Order
from argo_engine.persistence.files import persistence_error
from argo_engine.persistence.journal import Journal, is_sealed, unseal_line
from argo_engine.persistence.schema import JOURNAL_DIR
from argo_engine.persistence.writers import RunWriters

log = logging.getLogger(__name__)

# Orders a local-book broker accepted since the last state save (one JSON object per line).
ACCEPTED_FILE = "accepted-orders.jsonl"


class AcceptedOrders:
    """The open date's journal of the orders a local-book broker accepted since the last save.

    One per engine, for its whole life: each date's folder opens its own journal file in it.

    Attributes:
        journal: The open date's journal, None before a date opens or once it is handed to a
            date closing in the background.
        dirty: Whether the journal may hold lines that no saved state holds yet.
    """

    __slots__ = ("dirty", "journal")

    def __init__(self) -> None:
        self.journal: Journal | None = None
        self.dirty = False

    def open(self, folder: Path) -> None:
        """Open the journal of a date's run folder, closing the previous date's.

        Args:
            folder: The run folder being opened.
        """
        if self.journal is not None:
            self.journal.close()
        self.journal = Journal(folder / JOURNAL_DIR / ACCEPTED_FILE)
        self.dirty = self.journal.path.exists()

    def detach(self) -> Journal | None:
        """Hand the journal over to its date's background close; no date's journal is open then.

        Returns:
            The journal, for the close to remove once the date's final state is written.
        """
        journal, self.journal = self.journal, None
        self.dirty = False
        return journal

    def snapshot(self) -> tuple[Journal | None, int]:
        """The journal a state snapshot taken now holds, for the flusher to empty after it.

        Returns:
            The journal (None when it holds nothing the last state does not) and its
            generation, to truncate it only if nothing was accepted after the snapshot
            (:meth:`Journal.truncate_if_unchanged`). The journal counts as clean from now on.
        """
        journal = self.journal if self.dirty else None
        generation = journal.generation if journal is not None else 0
        self.dirty = False
        return journal, generation

    def read_ids(self) -> list[str]:
        """Ids of the orders journaled as accepted since the last state save, in order.

        A torn last line (the crash cut the write) or an unreadable one is ignored: its order
        was not durably accepted.
        """
        if self.journal is None:
            return []
        try:
            data = self.journal.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise persistence_error(exc, self.journal.path) from exc
        ids: dict[str, None] = {}
        sealed = is_sealed(data)
        for raw in data.split(b"\n"):
            if not raw:
                continue
            line = unseal_line(raw, sealed=sealed)
            try:
                if line is None:
                    raise orjson.JSONDecodeError("checksum mismatch", "", 0)
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                log.warning("ignoring an unreadable line of %s", self.journal.path)
                continue
            if isinstance(record, dict) and isinstance(record.get("order_id"), str):
                ids[record["order_id"]] = None
        return list(ids)

    def record(self, order: Order, writers: RunWriters | None) -> None:
        """Make a local-book broker's acceptance of ``order`` durable until the next state save.

        Args:
            order: The accepted order.
            writers: The open date's writers, whose durable rows (the order's intent) are
                synced first.

        Raises:
            PersistenceError: If the journal cannot be written.
        """
        if self.journal is None:
            return
        if writers is not None:
            # The acceptance must never be durable without the intent it refers to.
            writers.sync_durable()
        record = {"order_id": order.order_id, "at": order.timestamp.isoformat()}
        self.journal.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        self.journal.sync()
        self.dirty = True

    def drain(self, *, remove: bool = False) -> None:
        """Empty (or delete) the journal once a saved state holds its orders.

        The file is closed too (the next acceptance reopens it), so that an engine released
        after a flush holds no descriptor.

        Args:
            remove: Delete the file (the date is final) instead of emptying it.

        Raises:
            PersistenceError: If the file cannot be truncated or removed.
        """
        journal = self.journal
        if journal is None:
            return
        if remove:
            journal.remove()
        elif self.dirty:
            journal.truncate()
            journal.close()
        self.dirty = False


__all__ = ["ACCEPTED_FILE", "AcceptedOrders"]
