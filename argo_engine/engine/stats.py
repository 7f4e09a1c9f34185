"""Real-time statistics: daily and cumulative accumulators behind stats.yaml.

Definitions (DESIGN.md, Statistics):

- number_of_trades counts fills; winning/losing count closing fills with pnl > 0 / < 0;
  win_rate = winning / closing fills (0 when none).
- realized_pnl = sum of fill pnl (booked by the ledger: FIFO or average cost, fees included);
  unrealized_pnl = open positions marked at the last close (cumulative); in the daily block
  the change of that open PnL over the date (now minus at the previous date's last bar), so
  the daily total_pnl = realized + unrealized is the date's equity change;
  maximum_profit / maximum_loss = best / worst closing fill (0 when none).
- max_drawdown: peak-to-trough of equity (initial capital + realized + unrealized, sampled per
  bar) as a fraction of the peak; max_drawdown_abs in currency. The daily block's peak starts at
  the equity the day opened with.
- trade_holding_time: seconds from entry fill to exit fill of each closed lot (min, max, avg;
  avg rounded down).
- unmatched_qty: SELL quantity that found no open position to close (coins held at the venue
  before the session, say): booked as neither PnL nor position, counted here and logged.
- sharpe_ratio / sortino_ratio: from daily equity returns once two or more day-end equities
  exist (mean / sample stdev, annualized with sqrt(365) since crypto trades every day; sortino
  uses the downside deviation); 0 otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from argo_engine.domain.ledger import Ledger, PnlMethod
from argo_engine.domain.market import Bar
from argo_engine.domain.orders import Fill

PERIODS_PER_YEAR = 365


@dataclass(frozen=True, slots=True)
class StrategyInfo:
    """Identity of the strategy in stats.yaml."""

    id: str
    version: str
    name: str


class _Block:
    """One accumulator (daily or cumulative)."""

    __slots__ = (
        "closing",
        "dd_abs",
        "dd_frac",
        "fees",
        "hold_max",
        "hold_min",
        "hold_n",
        "hold_sum",
        "losses",
        "max_loss",
        "max_profit",
        "peak",
        "realized",
        "trades",
        "unmatched_qty",
        "wins",
    )

    def __init__(self, peak: float) -> None:
        self.trades = 0
        self.wins = 0
        self.losses = 0
        self.closing = 0
        self.realized = 0.0
        self.fees = 0.0
        self.max_profit = 0.0
        self.max_loss = 0.0
        self.hold_n = 0
        self.hold_sum = 0.0
        self.hold_min = 0.0
        self.hold_max = 0.0
        self.peak = peak
        self.dd_frac = 0.0
        self.dd_abs = 0.0
        self.unmatched_qty = 0.0

    def add_fill(
        self,
        pnl: float,
        fee: float,
        closing: bool,
        holds: tuple[float, ...],
        unmatched_qty: float = 0.0,
    ) -> None:
        self.trades += 1
        self.unmatched_qty += unmatched_qty
        self.fees += fee
        self.realized += pnl
        if closing:
            if self.closing == 0:
                self.max_profit = pnl
                self.max_loss = pnl
            else:
                self.max_profit = max(self.max_profit, pnl)
                self.max_loss = min(self.max_loss, pnl)
            self.closing += 1
            if pnl > 0:
                self.wins += 1
            elif pnl < 0:
                self.losses += 1
        for h in holds:
            if self.hold_n == 0:
                self.hold_min = self.hold_max = h
            else:
                self.hold_min = min(self.hold_min, h)
                self.hold_max = max(self.hold_max, h)
            self.hold_n += 1
            self.hold_sum += h

    def sample_equity(self, equity: float) -> None:
        if equity > self.peak:
            self.peak = equity
            return
        drop = self.peak - equity
        if drop > self.dd_abs:
            self.dd_abs = drop
        if self.peak > 0:
            frac = drop / self.peak
            if frac > self.dd_frac:
                self.dd_frac = frac

    def to_state(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> _Block:
        block = cls(0.0)
        for name in cls.__slots__:
            # States saved before a figure existed lack it: it starts from its initial value.
            if name in state:
                setattr(block, name, state[name])
        return block


def _ratios(day_end_equities: list[float]) -> tuple[float, float]:
    returns = [b / a - 1.0 for a, b in pairwise(day_end_equities) if a > 0]
    if len(returns) < 2:
        return 0.0, 0.0
    mean = sum(returns) / len(returns)
    var = sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    sd = math.sqrt(var)
    sharpe = mean / sd * math.sqrt(PERIODS_PER_YEAR) if sd > 0 else 0.0
    downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in returns) / (len(returns) - 1))
    sortino = mean / downside * math.sqrt(PERIODS_PER_YEAR) if downside > 0 else 0.0
    return sharpe, sortino


class StatsTracker:
    """Daily and cumulative statistics of a session.

    Args:
        session_id: Session id.
        run_id: ``run_N``.
        symbols: Traded symbols.
        initial_capital: Equity at session start.
        pnl_method: FIFO or average cost.
        session_start: When the session started.
        strategy: Strategy identity.
        trading_date: Current trading date.
    """

    def __init__(
        self,
        *,
        session_id: str,
        run_id: str,
        symbols: list[str],
        initial_capital: float,
        pnl_method: PnlMethod,
        session_start: datetime,
        strategy: StrategyInfo,
        trading_date: date,
    ) -> None:
        self.session_id = session_id
        self.run_id = run_id
        self.symbols = list(symbols)
        self.initial_capital = initial_capital
        self.session_start = session_start
        self.strategy = strategy
        self._date = trading_date
        self._ledger = Ledger(pnl_method)
        self._last_close: dict[str, float] = {}
        self._unrealized = 0.0
        # Held symbols and their unrealized PnL at their last close: a bar revalues its own
        # symbol only (the ledger changes on fills, which revalue everything).
        self._held: dict[str, tuple[float, float, float, float]] = {}
        self._parts: dict[str, float] = {}
        self._cum = _Block(initial_capital)
        self._day = _Block(initial_capital)
        self._day_ends: list[float] = [initial_capital]
        # Open PnL at the previous date's last bar: the daily block's unrealized_pnl is the
        # change since then, so daily totals are equity changes and add up to cumulative.
        self._day_open_unrealized = 0.0
        self._last_updated = session_start
        #: SELL quantity of the last recorded fill that matched no open position (0 when it
        #: all matched): the engine logs it, the blocks count it as ``unmatched_qty``.
        self.last_unmatched_qty = 0.0

    # -- updates ---------------------------------------------------------------------------------

    @property
    def trading_date(self) -> date:
        """Current trading date."""
        return self._date

    @property
    def ledger(self) -> Ledger:
        """Open lots (positions) as booked by the stats."""
        return self._ledger

    @property
    def realized_pnl(self) -> float:
        """Cumulative realized PnL."""
        return self._cum.realized

    @property
    def unrealized_pnl(self) -> float:
        """Unrealized PnL at the last close."""
        return self._unrealized

    @property
    def equity(self) -> float:
        """Initial capital + realized + unrealized."""
        return self.initial_capital + self._cum.realized + self._unrealized

    def record_fill(self, fill: Fill) -> Fill:
        """Book a fill's PnL with the ledger and add it to both accumulators.

        Returns:
            The fill with its realized ``pnl`` set.
        """
        outcome = self._ledger.apply(
            symbol=fill.symbol,
            side=fill.side,
            position_type=fill.position_type,
            qty=fill.executed_qty,
            price=fill.executed_price,
            fee=fill.commission,
            time=fill.executed_at,
            # A fee the venue took in the base asset: the position is what the account got.
            base_fee=fill.base_commission,
        )
        for block in (self._cum, self._day):
            block.add_fill(
                outcome.pnl,
                fill.commission,
                outcome.closing,
                outcome.holding_seconds,
                outcome.unmatched_qty,
            )
        self.last_unmatched_qty = outcome.unmatched_qty
        self._last_close.setdefault(fill.symbol, fill.executed_price)
        self._revalue_symbol(fill.symbol)  # a fill changes its own symbol's buckets only
        self._unrealized = sum(self._parts.values())
        self._last_updated = fill.executed_at
        equity = self.equity
        self._cum.sample_equity(equity)
        self._day.sample_equity(equity)
        return fill.with_pnl(outcome.pnl)

    def on_bar(self, bar: Bar) -> None:
        """Mark open positions at the bar's close and sample equity for drawdown."""
        symbol = bar.symbol
        self._last_close[symbol] = bar.close
        self._last_updated = bar.time
        held = self._held.get(symbol)
        if held is not None:
            # What Ledger.unrealized_of computes, from the open quantities and bases that
            # the last fill left (the same float operations, in the same order).
            close = bar.close
            lq, lb, sq, sb = held
            value = lq * close - lb if lq > 0.0 else 0.0
            if sq > 0.0:
                value += sb - sq * close
            parts = self._parts
            parts[symbol] = value
            self._unrealized = sum(parts.values())
            equity = self.initial_capital + self._cum.realized + self._unrealized
            self._cum.sample_equity(equity)
            self._day.sample_equity(equity)
        # Otherwise equity is what it was at the last sample (only held symbols' closes and
        # fills move it), and sampling the same value again changes no figure.

    def _revalue_symbol(self, symbol: str) -> None:
        """Value ``symbol`` again after a fill changed its buckets."""
        amounts = self._ledger.open_amounts(symbol)
        if amounts[0] > 0.0 or amounts[2] > 0.0:
            self._held[symbol] = amounts
            close = self._last_close.get(symbol)
            if close is not None:
                self._parts[symbol] = self._ledger.unrealized_of(symbol, close)
        else:
            self._held.pop(symbol, None)
            self._parts.pop(symbol, None)

    def _revalue(self) -> None:
        """Value every held symbol at its last close (symbols without one count 0)."""
        ledger, last = self._ledger, self._last_close
        self._held = {s: ledger.open_amounts(s) for s in ledger.open_symbols()}
        self._parts = {s: ledger.unrealized_of(s, last[s]) for s in self._held if s in last}

    def roll_day(self, new_date: date) -> dict[str, Any]:
        """Close the current trading date and start ``new_date``.

        Returns:
            The closing day's final daily block.
        """
        final = self.daily_block()
        self._day_ends.append(self.equity)
        self._day = _Block(self.equity)
        self._day_open_unrealized = self._unrealized
        self._date = new_date
        return final

    # -- documents -------------------------------------------------------------------------------

    def _block(self, block: _Block) -> dict[str, Any]:
        sharpe, sortino = _ratios([*self._day_ends, self.equity] if block is self._cum else [])
        holds = block.hold_n
        unrealized = self._unrealized
        if block is self._day:
            unrealized -= self._day_open_unrealized
        return {
            "trade_result": {
                "number_of_trades": block.trades,
                "number_of_winning_trades": block.wins,
                "number_of_losing_trades": block.losses,
                "win_rate": block.wins / block.closing if block.closing else 0.0,
                "max_drawdown": block.dd_frac,
                "max_drawdown_abs": block.dd_abs,
                "sharpe_ratio": sharpe,
                "sortino_ratio": sortino,
                "unmatched_qty": block.unmatched_qty,
            },
            "trade_pnl": {
                "realized_pnl": block.realized,
                "unrealized_pnl": unrealized,
                "total_pnl": block.realized + unrealized,
                "maximum_loss": block.max_loss,
                "maximum_profit": block.max_profit,
            },
            "trade_holding_time": {
                "min": int(block.hold_min) if holds else 0,
                "max": int(block.hold_max) if holds else 0,
                "avg": int(block.hold_sum // holds) if holds else 0,
            },
            "total_fees": block.fees,
        }

    def daily_block(self) -> dict[str, Any]:
        """This trading date's figures (all runs of the session on this date)."""
        return self._block(self._day)

    def cumulative_block(self) -> dict[str, Any]:
        """Figures since the session started (across days and restarts)."""
        return self._block(self._cum)

    def document(self, *, now: datetime, run_folder: Path) -> dict[str, Any]:
        """The full stats.yaml mapping (key order of DESIGN.md)."""
        cumulative = self.cumulative_block()
        doc: dict[str, Any] = {
            "id": self.run_id,
            "session_id": self.session_id,
            "date": self._date.isoformat(),
            "session_start": self.session_start,
            "last_updated": now,
            "symbols": list(self.symbols),
            **cumulative,
        }
        for name in ("orders", "trades", "marks", "logs", "market_data"):
            doc[f"{name}_file_path"] = str(run_folder / f"{name}.parquet")
        doc["strategy"] = {
            "id": self.strategy.id,
            "version": self.strategy.version,
            "name": self.strategy.name,
        }
        doc["daily"] = self.daily_block()
        doc["cumulative"] = cumulative
        return doc

    # -- state -----------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """JSON-serializable state (resume a session with the same figures)."""
        return {
            "trading_date": self._date.isoformat(),
            "pnl_method": str(self._ledger.method),
            "ledger": self._ledger.to_state(),
            "last_close": dict(self._last_close),
            "unrealized": self._unrealized,
            "cumulative": self._cum.to_state(),
            "daily": self._day.to_state(),
            "day_ends": list(self._day_ends),
            "day_open_unrealized": self._day_open_unrealized,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], **kwargs: Any) -> StatsTracker:
        """Rebuild a tracker saved with :meth:`to_state` (kwargs as for ``__init__``)."""
        tracker = cls(**kwargs)
        tracker._date = date.fromisoformat(state["trading_date"])
        tracker._ledger = Ledger.from_state(PnlMethod(state["pnl_method"]), state["ledger"])
        tracker._last_close = {str(k): float(v) for k, v in state["last_close"].items()}
        tracker._unrealized = float(state["unrealized"])
        tracker._revalue()
        tracker._cum = _Block.from_state(state["cumulative"])
        tracker._day = _Block.from_state(state["daily"])
        tracker._day_ends = [float(x) for x in state["day_ends"]]
        opened = state.get("day_open_unrealized")
        if opened is None:
            # States of earlier versions: the date opened with equity day_ends[-1], booked
            # realized PnL cum - day by then, and the rest of it was open PnL.
            opened = (
                tracker._day_ends[-1]
                - tracker.initial_capital
                - (tracker._cum.realized - tracker._day.realized)
            )
        tracker._day_open_unrealized = float(opened)
        return tracker
