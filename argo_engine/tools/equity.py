"""A session's per-bar equity, replayed from its files with the engine's own statistics.

stats.yaml's ``max_drawdown`` is the peak-to-trough of equity (initial capital + realized +
unrealized) sampled on every bar and fill (DESIGN.md, Statistics). No file holds that series,
so the report rebuilds it: every stored bar and fill of the session goes, in the order the
engine met them, through a :class:`~argo_engine.engine.stats.StatsTracker`, the class that
writes stats.yaml, and the equity after each is kept. The replay's drawdown is then the
stats.yaml figure, not an approximation of it (the report checks that it is).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import orjson

from argo_engine.domain.ledger import PnlMethod
from argo_engine.domain.market import Bar
from argo_engine.domain.orders import Fill
from argo_engine.engine.rebuild import in_engine_order
from argo_engine.engine.stats import StatsTracker, StrategyInfo
from argo_engine.persistence.schema import JOURNAL_DIR

# The engine's state file (argo_engine.engine.core.STATE_FILE; not imported from there, which
# would load the whole engine for one name).
STATE_FILE = "engine-state.json"


@dataclass(frozen=True, slots=True)
class EquityCurve:
    """Equity after every bar and fill of a session, and what the statistics made of it.

    Consecutive equal values are kept once (a bar of a symbol not held leaves equity as it
    was), so the curve is a step function: each value holds until the next point.

    Attributes:
        times: UTC time of each point (bar open time, or fill execution time).
        equity: Initial capital + realized + unrealized PnL at that point.
        peak: The running peak of equity (starting at the initial capital).
        initial_capital: Equity the session started with.
        max_drawdown_abs: Largest peak-to-trough drop, in currency.
        max_drawdown: Largest drop as a fraction of its peak.
        trades: Fills replayed.
        total_pnl: Equity at the end minus the initial capital.
    """

    times: list[datetime]
    equity: list[float]
    peak: list[float]
    initial_capital: float
    max_drawdown_abs: float
    max_drawdown: float
    trades: int
    total_pnl: float

    @property
    def drawdown(self) -> list[float]:
        """Equity minus its running peak at each point (0 or negative)."""
        return [e - p for e, p in zip(self.equity, self.peak, strict=True)]


def replay_equity(
    bars: Sequence[Bar], fills: Sequence[Fill], initial_capital: float, pnl_method: PnlMethod
) -> EquityCurve:
    """Run a session's bars and fills through the statistics and keep equity after each.

    The order is the engine's (as its crash recovery replays them too): by time, then
    symbol, a bar before the fills on it, fills by trade id.

    Args:
        bars: Every stored bar of the session, each once.
        fills: Every fill of the session, each once.
        initial_capital: Equity at the session's start.
        pnl_method: How the session booked PnL (open lots are valued accordingly).
    """
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    tracker = StatsTracker(
        session_id="",
        run_id="",
        symbols=[],
        initial_capital=initial_capital,
        pnl_method=pnl_method,
        session_start=epoch,
        strategy=StrategyInfo("", "", ""),
        trading_date=date(1970, 1, 1),
    )
    events = in_engine_order(bars, fills)
    times: list[datetime] = []
    equity: list[float] = []
    peak: list[float] = []
    top = initial_capital
    last = initial_capital
    on_bar, record_fill = tracker.on_bar, tracker.record_fill
    for item in events:
        if isinstance(item, Fill):
            record_fill(item)
            when = item.executed_at
        else:
            on_bar(item)
            when = item.time
        value = tracker.equity
        if value > top:
            top = value
        if times and value == last:
            continue
        times.append(when)
        equity.append(value)
        peak.append(top)
        last = value
    if events and times[-1] != when:
        # Carry the last value to the last bar, so the curve spans the whole session.
        times.append(when)
        equity.append(last)
        peak.append(top)
    result = tracker.cumulative_block()
    return EquityCurve(
        times=times,
        equity=equity,
        peak=peak,
        initial_capital=initial_capital,
        max_drawdown_abs=float(result["trade_result"]["max_drawdown_abs"]),
        max_drawdown=float(result["trade_result"]["max_drawdown"]),
        trades=int(result["trade_result"]["number_of_trades"]),
        total_pnl=float(result["trade_pnl"]["total_pnl"]),
    )


def recorded_capital_and_method(folder: Path) -> tuple[float, PnlMethod] | None:
    """Initial capital and PnL method a run folder's saved engine state was made with.

    None when the folder has no readable state (the caller falls back to settings).
    """
    try:
        state = orjson.loads((folder / JOURNAL_DIR / STATE_FILE).read_bytes())
        stats = state["stats"]
        # The tracker's day-end equities start with the initial capital.
        return float(stats["day_ends"][0]), PnlMethod(stats["pnl_method"])
    except (OSError, orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError):
        return None


def downsample(n: int, series: Sequence[Sequence[float]], max_points: int) -> list[int]:
    """Indices of at most about ``max_points`` points that keep every series' extremes.

    The points are cut into buckets; each bucket keeps its first and last point and, for
    each series, its lowest and highest: a drawdown's trough and a curve's peaks survive.

    Args:
        n: Number of points.
        series: Series of ``n`` values each.
        max_points: Target number of points (all are kept when ``n`` is at most this).
    """
    if n <= max_points:
        return list(range(n))
    per_bucket = 2 + 2 * len(series)
    buckets = max(1, max_points // per_bucket)
    size = -(-n // buckets)  # ceil
    keep: set[int] = set()
    for start in range(0, n, size):
        stop = min(start + size, n)
        keep.update((start, stop - 1))
        for values in series:
            chunk = values[start:stop]
            keep.add(start + min(range(len(chunk)), key=chunk.__getitem__))
            keep.add(start + max(range(len(chunk)), key=chunk.__getitem__))
    return sorted(keep)
