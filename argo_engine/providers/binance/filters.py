"""Symbol filters from Binance ``exchangeInfo`` and the rounding an order needs to pass them.

Binance refuses an order whose quantity is not a multiple of ``LOT_SIZE.stepSize`` (or of
``MARKET_LOT_SIZE`` for market orders), whose price is not a multiple of
``PRICE_FILTER.tickSize``, or whose notional is below ``MIN_NOTIONAL``/``NOTIONAL``. We round
before sending: the quantity is floored to the step (never trade more than the strategy asked),
the price goes to the nearest tick. What still cannot pass is rejected locally, with a reason,
so the venue never sees a doomed order.

All arithmetic is Decimal on the float's shortest representation, so ``0.29`` stays ``0.29``
(the Go original floored the binary float and sent ``0.28999999``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

_ZERO = Decimal(0)


def to_decimal(value: float | str) -> Decimal:
    """Exact decimal of a float's shortest representation (or of a venue string)."""
    try:
        return Decimal(value if isinstance(value, str) else repr(float(value)))
    except InvalidOperation as exc:  # pragma: no cover - venue strings are numeric
        raise ValueError(f"not a number: {value!r}") from exc


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Largest multiple of ``step`` not above ``value`` (``value`` itself when step is 0)."""
    if step <= _ZERO:
        return value
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def round_to_tick(value: Decimal, tick: Decimal) -> Decimal:
    """Nearest multiple of ``tick`` (half up); ``value`` itself when tick is 0."""
    if tick <= _ZERO:
        return value
    return (value / tick).to_integral_value(rounding=ROUND_HALF_UP) * tick


def format_decimal(value: Decimal) -> str:
    """Plain decimal text as Binance expects it: no exponent, no trailing zeros."""
    text = format(value.normalize(), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


@dataclass(frozen=True, slots=True)
class OrderCheck:
    """An order's quantity and price after rounding, or why it cannot be sent.

    Attributes:
        quantity: Quantity floored to the step size.
        price: Limit price rounded to the tick size (None for MARKET orders).
        reason: Rejection reason (``invalid_quantity``, ``invalid_price``, ``lot_size``,
            ``price_filter``, ``min_notional``, ``max_notional``, ``symbol_not_trading``) or
            None when the order may be sent.
        message: Human-readable detail of the rejection.
    """

    quantity: Decimal
    price: Decimal | None
    reason: str | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        """Whether the order passes every filter."""
        return self.reason is None


@dataclass(frozen=True, slots=True)
class SymbolFilters:
    """The trading rules of one symbol (0 means "no limit" for every bound).

    Attributes:
        symbol: Trading pair, e.g. ``BTCUSDT``.
        base_asset: Asset bought and sold (``BTC``).
        quote_asset: Asset prices are quoted in (``USDT``).
        status: Symbol status; only ``TRADING`` accepts orders.
        step_size: LOT_SIZE step.
        min_qty: LOT_SIZE minimum quantity.
        max_qty: LOT_SIZE maximum quantity.
        market_step_size: MARKET_LOT_SIZE step (0: LOT_SIZE applies).
        market_min_qty: MARKET_LOT_SIZE minimum quantity.
        market_max_qty: MARKET_LOT_SIZE maximum quantity.
        tick_size: PRICE_FILTER tick.
        min_price: PRICE_FILTER minimum price.
        max_price: PRICE_FILTER maximum price.
        min_notional: MIN_NOTIONAL/NOTIONAL minimum of quantity x price.
        min_notional_market: Whether the minimum notional also applies to MARKET orders.
        max_notional: NOTIONAL maximum of quantity x price.
        max_notional_market: Whether the maximum notional also applies to MARKET orders.
    """

    symbol: str
    base_asset: str
    quote_asset: str
    status: str = "TRADING"
    step_size: Decimal = _ZERO
    min_qty: Decimal = _ZERO
    max_qty: Decimal = _ZERO
    market_step_size: Decimal = _ZERO
    market_min_qty: Decimal = _ZERO
    market_max_qty: Decimal = _ZERO
    tick_size: Decimal = _ZERO
    min_price: Decimal = _ZERO
    max_price: Decimal = _ZERO
    min_notional: Decimal = _ZERO
    min_notional_market: bool = True
    max_notional: Decimal = _ZERO
    max_notional_market: bool = False

    def check(
        self,
        *,
        order_type: str,
        quantity: float,
        price: float | None = None,
        reference_price: float | None = None,
    ) -> OrderCheck:
        """Round an order to the filters and say whether it can be sent.

        Args:
            order_type: ``MARKET`` or ``LIMIT``.
            quantity: Requested quantity in base units.
            price: Limit price (LIMIT orders).
            reference_price: Expected fill price of a MARKET order, for the notional check; the
                check is skipped when it is unknown (the venue still applies it).

        Returns:
            The rounded quantity and price, or the reason the order cannot pass.
        """
        market = order_type == "MARKET"
        if self.status != "TRADING":
            return OrderCheck(
                _ZERO,
                None,
                "symbol_not_trading",
                f"{self.symbol} is not trading (status {self.status})",
            )
        if not (math.isfinite(quantity) and quantity > 0):
            return OrderCheck(
                _ZERO,
                None,
                "invalid_quantity",
                f"quantity must be a positive number, got {quantity!r}",
            )
        step, min_qty, max_qty = self.step_size, self.min_qty, self.max_qty
        if market and self.market_step_size > _ZERO:
            step = self.market_step_size
        if market and self.market_min_qty > min_qty:
            min_qty = self.market_min_qty
        if market and self.market_max_qty > _ZERO:
            max_qty = self.market_max_qty if max_qty <= _ZERO else min(max_qty, self.market_max_qty)
        qty = floor_to_step(to_decimal(quantity), step)
        if qty <= _ZERO or qty < min_qty:
            return OrderCheck(
                qty,
                None,
                "lot_size",
                f"quantity {quantity!r} of {self.symbol} rounds down to {format_decimal(qty)}, "
                f"below the minimum {format_decimal(min_qty)} (LOT_SIZE stepSize "
                f"{format_decimal(step)})",
            )
        if max_qty > _ZERO and qty > max_qty:
            return OrderCheck(
                qty,
                None,
                "lot_size",
                f"quantity {format_decimal(qty)} of {self.symbol} is above the "
                f"maximum {format_decimal(max_qty)} (LOT_SIZE)",
            )
        limit: Decimal | None = None
        if not market:
            if price is None or not (math.isfinite(price) and price > 0):
                return OrderCheck(
                    qty,
                    None,
                    "invalid_price",
                    f"limit price must be a positive number, got {price!r}",
                )
            limit = round_to_tick(to_decimal(price), self.tick_size)
            too_low = limit <= _ZERO or (self.min_price > _ZERO and limit < self.min_price)
            too_high = self.max_price > _ZERO and limit > self.max_price
            if too_low or too_high:
                return OrderCheck(
                    qty,
                    limit,
                    "price_filter",
                    f"limit price {price!r} of {self.symbol} rounds to {format_decimal(limit)}, "
                    f"outside [{format_decimal(self.min_price)}, "
                    f"{format_decimal(self.max_price) if self.max_price else 'inf'}] "
                    f"(PRICE_FILTER tickSize {format_decimal(self.tick_size)})",
                )
        notional_price = limit
        if market and reference_price is not None and math.isfinite(reference_price):
            notional_price = to_decimal(reference_price) if reference_price > 0 else None
        if notional_price is not None:
            notional = qty * notional_price
            if (
                self.min_notional > _ZERO
                and (not market or self.min_notional_market)
                and notional < self.min_notional
            ):
                return OrderCheck(
                    qty,
                    limit,
                    "min_notional",
                    f"notional {format_decimal(notional)} {self.quote_asset} of {self.symbol} is "
                    f"below the minimum {format_decimal(self.min_notional)} (MIN_NOTIONAL)",
                )
            if (
                self.max_notional > _ZERO
                and (not market or self.max_notional_market)
                and notional > self.max_notional
            ):
                return OrderCheck(
                    qty,
                    limit,
                    "max_notional",
                    f"notional {format_decimal(notional)} {self.quote_asset} of {self.symbol} is "
                    f"above the maximum {format_decimal(self.max_notional)} (NOTIONAL)",
                )
        return OrderCheck(qty, limit)


def parse_symbol_filters(info: Mapping[str, Any]) -> SymbolFilters:
    """Build :class:`SymbolFilters` from one ``exchangeInfo`` ``symbols[]`` entry.

    Both the legacy ``MIN_NOTIONAL`` filter and its successor ``NOTIONAL`` are understood.

    Raises:
        KeyError: If the entry has no symbol, baseAsset or quoteAsset.
    """
    values: dict[str, Any] = {
        "symbol": str(info["symbol"]),
        "base_asset": str(info["baseAsset"]),
        "quote_asset": str(info["quoteAsset"]),
        "status": str(info.get("status", "TRADING")),
    }

    def dec(flt: Mapping[str, Any], key: str) -> Decimal:
        raw = flt.get(key)
        return to_decimal(str(raw)) if raw is not None else _ZERO

    for flt in info.get("filters", []):
        kind = flt.get("filterType")
        if kind == "LOT_SIZE":
            values.update(
                step_size=dec(flt, "stepSize"),
                min_qty=dec(flt, "minQty"),
                max_qty=dec(flt, "maxQty"),
            )
        elif kind == "MARKET_LOT_SIZE":
            values.update(
                market_step_size=dec(flt, "stepSize"),
                market_min_qty=dec(flt, "minQty"),
                market_max_qty=dec(flt, "maxQty"),
            )
        elif kind == "PRICE_FILTER":
            values.update(
                tick_size=dec(flt, "tickSize"),
                min_price=dec(flt, "minPrice"),
                max_price=dec(flt, "maxPrice"),
            )
        elif kind == "MIN_NOTIONAL":
            values.update(
                min_notional=dec(flt, "minNotional"),
                min_notional_market=bool(flt.get("applyToMarket", True)),
            )
        elif kind == "NOTIONAL":
            values.update(
                min_notional=dec(flt, "minNotional"),
                min_notional_market=bool(flt.get("applyMinToMarket", True)),
                max_notional=dec(flt, "maxNotional"),
                max_notional_market=bool(flt.get("applyMaxToMarket", False)),
            )
    return SymbolFilters(**values)
