"""A snapshot of a running engine's figures, for live views (Prefect UI, dashboards).

Read from another thread, off the bar path: the engine does no work for it on any bar. The
snapshot copies counters and positions; a dict mutated by the engine thread during the copy
is simply read again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from argo_engine.domain.positions import Position

if TYPE_CHECKING:
    from argo_engine.engine.core import TradingEngine


@dataclass(frozen=True, slots=True)
class LiveFigures:
    """What a running engine has done so far (this engine start; PnL is the session's).

    Attributes:
        day: Trading date being streamed, None before the first is opened.
        run_id: ``run_N`` folder name on that date.
        run_folder: The folder being written, as text.
        bars: Bars accepted by this engine.
        rejected_bars: Bars rejected as bad data.
        orders: Orders placed.
        fills: Fills recorded.
        realized_pnl: Cumulative realized PnL of the session.
        unrealized_pnl: Open PnL at the last close.
        positions: Open positions (quantity > 0).
        last_bar_time: Time of the latest bar seen, None before any.
    """

    day: date | None
    run_id: str
    run_folder: str
    bars: int
    rejected_bars: int
    orders: int
    fills: int
    realized_pnl: float
    unrealized_pnl: float
    positions: tuple[Position, ...]
    last_bar_time: datetime | None


def live_figures(engine: TradingEngine, attempts: int = 5) -> LiveFigures:
    """A consistent-enough snapshot of ``engine`` taken from any thread.

    Args:
        engine: The running engine.
        attempts: Copies tried when the engine thread mutates a dict during one.

    Raises:
        RuntimeError: If no copy succeeded in ``attempts`` tries (the caller skips a tick).
        IndexError: Likewise, when a lot list emptied during every copy.
    """
    error: RuntimeError | IndexError | None = None
    for _ in range(attempts):
        try:
            return _snapshot(engine)
        except (RuntimeError, IndexError) as exc:  # a dict or lot list changed during the copy
            error = exc
    assert error is not None
    raise error


def _snapshot(engine: TradingEngine) -> LiveFigures:
    counts = dict(engine._counts)
    stats = engine.stats
    last = max(list(engine._last_time.values()), default=None)
    positions: tuple[Position, ...] = ()
    realized = unrealized = 0.0
    if stats is not None:
        realized, unrealized = stats.realized_pnl, stats.unrealized_pnl
        positions = tuple(stats.ledger.peek_positions())
    return LiveFigures(
        day=engine.day,
        run_id=engine.run_id_on_day,
        run_folder=str(engine.folder) if engine.folder is not None else "",
        bars=counts["bars"],
        rejected_bars=counts["rejected"],
        orders=counts["orders"],
        fills=counts["fills"],
        realized_pnl=realized,
        unrealized_pnl=unrealized,
        positions=positions,
        last_bar_time=last,
    )
