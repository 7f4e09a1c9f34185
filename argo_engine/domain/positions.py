"""Position snapshots handed to strategies and saved with a run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from argo_engine.domain.enums import PositionType


@dataclass(frozen=True, slots=True, kw_only=True)
class Position:
    """Open quantity of one (symbol, position_type) bucket.

    Attributes:
        symbol: Instrument symbol.
        position_type: LONG or SHORT.
        quantity: Open quantity (>= 0; a SHORT position is a positive short quantity).
        average_price: Average entry price of the open quantity, entry fees included
            (added for LONG, subtracted for SHORT).
        opened_at: Execution time of the oldest open lot, None when flat.
    """

    symbol: str
    position_type: PositionType
    quantity: float
    average_price: float
    opened_at: datetime | None = None

    @property
    def is_flat(self) -> bool:
        """Whether no quantity is open."""
        return self.quantity <= 0.0
