"""The accepted-orders journal: ``.journal/accepted-orders.jsonl``.

When the broker keeps its book in this process (the paper broker), the engine journals each
acceptance of an order until the next state save holds it, so that a restart can rest the
order again (see ``reconcile.py``).
"""

from __future__ import annotations

import logging

import orjson

from argo_engine.domain.orders import Order
from argo_engine.engine.base import EngineBase
from argo_engine.persistence.files import persistence_error
from argo_engine.persistence.journal import is_sealed, unseal_line

log = logging.getLogger(__name__)

# Orders a local-book broker accepted since the last state save (one JSON object per line).
ACCEPTED_FILE = "accepted-orders.jsonl"


class AcceptedOrders(EngineBase):
    """Writes, reads and drains the open date's acceptance journal (a part of ``TradingEngine``).

    The journal itself is the engine's ``_accepted`` (opened with each date's folder) and
    ``_accepted_dirty`` says whether it may hold lines a saved state does not.
    """

    def _read_accepted(self) -> list[str]:
        """Ids of the orders journaled as accepted since the last state save, in order.

        A torn last line (the crash cut the write) or an unreadable one is ignored: its order
        was not durably accepted.
        """
        if self._accepted is None:
            return []
        try:
            data = self._accepted.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise persistence_error(exc, self._accepted.path) from exc
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
                log.warning("ignoring an unreadable line of %s", self._accepted.path)
                continue
            if isinstance(record, dict) and isinstance(record.get("order_id"), str):
                ids[record["order_id"]] = None
        return list(ids)

    def _journal_accepted(self, order: Order) -> None:
        """Make a local-book broker's acceptance of ``order`` durable until the next state save.

        Raises:
            PersistenceError: If the journal cannot be written.
        """
        if self._replay_order is None or self._accepted is None:
            return
        if self.writers is not None:
            # The acceptance must never be durable without the intent it refers to.
            self.writers.sync_durable()
        record = {"order_id": order.order_id, "at": order.timestamp.isoformat()}
        self._accepted.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        self._accepted.sync()
        self._accepted_dirty = True

    def _drain_accepted(self, *, remove: bool = False) -> None:
        """Empty (or delete) the acceptance journal once a saved state holds its orders.

        The file is closed too (the next acceptance reopens it), so that an engine released
        after a flush holds no descriptor.

        Raises:
            PersistenceError: If the file cannot be truncated or removed.
        """
        journal = self._accepted
        if journal is None:
            return
        if remove:
            journal.remove()
        elif self._accepted_dirty:
            journal.truncate()
            journal.close()
        self._accepted_dirty = False


__all__ = ["ACCEPTED_FILE", "AcceptedOrders"]
