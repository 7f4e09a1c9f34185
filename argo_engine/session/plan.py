"""The small serializable values the session steps exchange: the plan and a day's summary."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from argo_engine.clock import Clock


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """Identity of one engine start of a session.

    Attributes:
        session_id: Logical session id.
        run_number: N of ``run_N`` (allocated on the first trading date).
        first_date: First trading date of this start.
        session_start: When the session started (earliest start when resuming).
        resumed: Whether earlier runs of the same session exist.
    """

    session_id: str
    run_number: int
    first_date: date
    session_start: datetime
    resumed: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (dates as ISO strings)."""
        data = asdict(self)
        data["first_date"] = self.first_date.isoformat()
        data["session_start"] = self.session_start.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionPlan:
        """Inverse of :meth:`to_dict`."""
        return cls(
            session_id=str(data["session_id"]),
            run_number=int(data["run_number"]),
            first_date=date.fromisoformat(str(data["first_date"])),
            session_start=datetime.fromisoformat(str(data["session_start"])),
            resumed=bool(data["resumed"]),
        )


@dataclass(frozen=True, slots=True)
class DaySummary:
    """What a trading day's steps report (small and serializable).

    Attributes:
        date: Trading date (ISO).
        run_id: ``run_N`` folder name used on that date.
        folder: Run folder path.
        ended: Why streaming ended.
        bars: Bars accepted.
        rejected_bars: Bars rejected as bad data.
        orders: Orders placed.
        fills: Fills recorded.
        next_date: Next trading date seen by the stream (ISO) or None.
        daily: Final daily stats block (after finalization).
        cumulative: Cumulative stats block.
        problems: Integrity problems found at finalization.
    """

    date: str
    run_id: str
    folder: str
    ended: str = ""
    bars: int = 0
    rejected_bars: int = 0
    orders: int = 0
    fills: int = 0
    next_date: str | None = None
    daily: dict[str, Any] = field(default_factory=dict)
    cumulative: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def new_session_id(clock: Clock) -> str:
    """A fresh session id: UTC timestamp plus random suffix (sortable, path-safe)."""
    return f"{clock.now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
