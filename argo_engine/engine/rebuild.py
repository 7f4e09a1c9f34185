"""Statistics rebuilt from what a session stored: its trades and its bars.

stats.yaml and the statistics of a saved engine state are derived data. After a crash whose
recovery had to drop or re-derive rows (a damaged journal line), the restored figures may count
a fill that no file holds, or miss one that is back: the engine then replays the session's
stored bars and fills, date by date and in time order (a bar before the fills on it, as the
bar loop does), into a fresh :class:`StatsTracker`, and continues with that one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb

from argo_engine.domain.enums import PositionType, Side
from argo_engine.domain.market import Bar
from argo_engine.domain.orders import Fill
from argo_engine.engine.stats import StatsTracker
from argo_engine.errors import DataError
from argo_engine.persistence.parquet_append import ParquetAppendError, check_file
from argo_engine.persistence.schema import MARKET_DATA, TRADES

_BAR_SQL = "SELECT symbol, time, open, high, low, close, volume FROM read_parquet(?)"


def _utc(value: object) -> datetime:
    assert isinstance(value, datetime)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def fill_from_row(row: Mapping[str, Any]) -> Fill:
    """A fill from a trades row (a dict keyed by column name)."""
    return Fill(
        trade_id=str(row["trade_id"]),
        order_id=str(row["order_id"]),
        symbol=str(row["symbol"]),
        side=Side(row["side"]),
        quantity=float(row["quantity"]),
        price=float(row["price"]),
        timestamp=_utc(row["timestamp"]),
        executed_at=_utc(row["executed_at"]),
        executed_qty=float(row["executed_qty"]),
        executed_price=float(row["executed_price"]),
        commission=float(row["commission"]),
        position_type=PositionType(row["position_type"]),
        pnl=float(row["pnl"]),
        commission_asset=str(row.get("commission_asset") or ""),
        base_commission=float(row.get("base_commission") or 0.0),
    )


def bar_from_row(row: Sequence[object]) -> Bar:
    """A bar from (symbol, time, open, high, low, close, volume)."""
    symbol, t, o, h, lo, c, v = row
    return Bar(str(symbol), _utc(t), *(float(str(x)) for x in (o, h, lo, c, v)))


def _checked(path: Path) -> bool:
    """Whether ``path`` exists; raises when its bytes differ from its footer's checksums."""
    if not path.exists():
        return False
    try:
        mismatch = check_file(path)
    except (ParquetAppendError, OSError) as exc:
        raise DataError(f"{path} is damaged: {exc}", path=str(path)) from exc
    if mismatch is not None:
        raise DataError(f"{path} is damaged: {mismatch}", path=str(path))
    return True


def read_folder_rows(folder: Path) -> tuple[list[Bar], list[Fill]]:
    """The bars and fills stored in a run folder's parquet files (a missing file: none).

    Raises:
        DataError: If a file is damaged (its checksums differ, or it cannot be read): its
            rows must not be taken for the session's.
    """
    bars: list[Bar] = []
    fills: list[Fill] = []
    con = duckdb.connect(config={"threads": 1})
    try:
        md = folder / MARKET_DATA.file_name
        trades = folder / TRADES.file_name
        try:
            if _checked(md):
                bars = [bar_from_row(r) for r in con.execute(_BAR_SQL, [str(md)]).fetchall()]
            if _checked(trades):
                cursor = con.execute("SELECT * FROM read_parquet(?)", [str(trades)])
                names = [d[0] for d in cursor.description or ()]
                fills = [fill_from_row(dict(zip(names, r, strict=True))) for r in cursor.fetchall()]
        except duckdb.Error as exc:
            raise DataError(f"{folder} holds an unreadable file: {exc}", path=str(folder)) from exc
    finally:
        con.close()
    return bars, fills


def in_engine_order(bars: Iterable[Bar], fills: Iterable[Fill]) -> list[Bar | Fill]:
    """Bars and fills in the order the bar loop met them.

    By time, then symbol, a bar before the fills on it, fills by trade id. A row given twice
    (a bar's symbol and time, a fill's trade id) counts once.
    """
    events: dict[tuple[datetime, str, int, str], Bar | Fill] = {}
    for bar in bars:
        events[(bar.time, bar.symbol, 0, "")] = bar
    for fill in fills:
        events[(fill.executed_at, fill.symbol, 1, fill.trade_id)] = fill
    return [events[key] for key in sorted(events)]


def replay_stats(
    tracker: StatsTracker,
    days: Mapping[date, tuple[Iterable[Bar], Iterable[Fill]]],
    until: date,
) -> dict[str, float]:
    """Feed a session's stored bars and fills into ``tracker``, date by date.

    Rows repeated across folders of a date (two runs) count once: bars by (symbol, time),
    fills by trade id.

    Args:
        tracker: A fresh tracker whose trading date is the session's first date.
        days: Bars and fills of each trading date.
        until: The date the tracker must end on (rolled to when no rows of it exist).

    Returns:
        The realized PnL the tracker booked for each fill, by trade id.
    """
    pnl: dict[str, float] = {}
    for day in sorted(d for d in days if d <= until):
        bars, fills = days[day]
        if day != tracker.trading_date:
            tracker.roll_day(day)
        for item in in_engine_order(bars, fills):
            if isinstance(item, Bar):
                tracker.on_bar(item)
            else:
                pnl[item.trade_id] = tracker.record_fill(item).pnl
    if tracker.trading_date != until:
        tracker.roll_day(until)
    return pnl


__all__ = ["bar_from_row", "fill_from_row", "in_engine_order", "read_folder_rows", "replay_stats"]
