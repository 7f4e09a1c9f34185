"""Pure translations from Binance JSON to argo values (no I/O, no clocks).

Binance sends numbers as strings and times as epoch milliseconds. A kline's time is its open
time; a REST kline row is ``[openTime, open, high, low, close, volume, closeTime, ...]``; a
websocket kline event carries the same fields under ``k`` with ``x`` true once the kline closed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from argo_engine.domain.enums import OrderStatus
from argo_engine.domain.market import Bar
from argo_engine.errors import DataError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,36}$")

# Binance order status -> ours. PARTIALLY_FILLED stays PENDING (fills are reported as they
# come); a filled order is FILLED, never FAILED (the Go original reported every order that
# had left the open list as FAILED).
_STATUS = {
    "NEW": OrderStatus.PENDING,
    "PENDING_NEW": OrderStatus.PENDING,
    "PARTIALLY_FILLED": OrderStatus.PENDING,
    "PENDING_CANCEL": OrderStatus.PENDING,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELLED,
    "EXPIRED": OrderStatus.CANCELLED,
    "EXPIRED_IN_MATCH": OrderStatus.CANCELLED,
    "REJECTED": OrderStatus.REJECTED,
}


def ms_to_datetime(ms: int) -> datetime:
    """UTC datetime of epoch milliseconds."""
    return _EPOCH + timedelta(milliseconds=int(ms))


def datetime_to_ms(ts: datetime) -> int:
    """Epoch milliseconds of a timezone-aware datetime."""
    delta = ts - _EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


@dataclass(frozen=True, slots=True)
class Kline:
    """One kline as Binance reports it.

    Attributes:
        bar: The bar (time = kline open time).
        close_ms: Kline close time in epoch ms (open + interval - 1).
        final: Whether the kline is closed (websocket ``x``; REST rows are final once their
            close time has passed, which the caller decides).
    """

    bar: Bar
    close_ms: int
    final: bool


def _num(value: Any, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"Binance sent a non-numeric {what}: {value!r}", field=what) from exc


def parse_rest_kline(symbol: str, row: Sequence[Any]) -> Kline:
    """Parse one row of ``GET /api/v3/klines``.

    Raises:
        DataError: If the row is short or holds non-numeric values.
    """
    if len(row) < 7:
        raise DataError(f"Binance kline row of {symbol} has {len(row)} fields, expected 12")
    bar = Bar(
        symbol=symbol,
        time=ms_to_datetime(int(row[0])),
        open=_num(row[1], "open"),
        high=_num(row[2], "high"),
        low=_num(row[3], "low"),
        close=_num(row[4], "close"),
        volume=_num(row[5], "volume"),
    )
    return Kline(bar=bar, close_ms=int(row[6]), final=True)


def parse_ws_message(payload: Mapping[str, Any]) -> Kline | None:
    """Parse a websocket message of a kline stream (raw or combined ``{stream, data}``).

    Returns:
        The kline, or None for messages that are not kline events (subscription replies).

    Raises:
        DataError: If a kline event is malformed.
    """
    data = payload.get("data", payload) if "stream" in payload else payload
    if not isinstance(data, Mapping) or data.get("e") != "kline":
        return None
    k = data.get("k")
    if not isinstance(k, Mapping):
        raise DataError("Binance kline event without 'k'")
    try:
        symbol = str(k.get("s") or data["s"]).upper()
        bar = Bar(
            symbol=symbol,
            time=ms_to_datetime(int(k["t"])),
            open=_num(k["o"], "open"),
            high=_num(k["h"], "high"),
            low=_num(k["l"], "low"),
            close=_num(k["c"], "close"),
            volume=_num(k["v"], "volume"),
        )
        return Kline(bar=bar, close_ms=int(k["T"]), final=bool(k["x"]))
    except KeyError as exc:
        raise DataError(f"Binance kline event misses field {exc.args[0]!r}") from exc


def parse_error(body: Any) -> tuple[int | None, str]:
    """Binance error body ``{"code": -1022, "msg": "..."}`` -> (code, msg)."""
    if not isinstance(body, Mapping):
        return None, ""
    raw = body.get("code")
    try:
        code = int(raw) if raw is not None else None
    except (TypeError, ValueError):
        code = None
    return code, str(body.get("msg", ""))


def map_order_status(status: str) -> OrderStatus:
    """Binance order status -> our :class:`OrderStatus`.

    ``NEW``/``PARTIALLY_FILLED`` -> PENDING, ``FILLED`` -> FILLED, ``CANCELED``/``EXPIRED`` ->
    CANCELLED, ``REJECTED`` -> REJECTED. Unknown statuses stay PENDING (polled again).
    """
    return _STATUS.get(status, OrderStatus.PENDING)


def client_order_id(order_id: str) -> str:
    """Binance ``newClientOrderId`` for one of our order ids (deterministic).

    Ids that already fit Binance's rule (1-36 of ``[A-Za-z0-9._-]``) are used as they are, so
    the venue shows our ids; others become ``argo-`` + 31 hex digits of their SHA-256.
    """
    if _CLIENT_ID_RE.match(order_id):
        return order_id
    return "argo-" + hashlib.sha256(order_id.encode()).hexdigest()[:31]


@dataclass(frozen=True, slots=True)
class VenueFill:
    """One execution reported by Binance.

    Attributes:
        trade_id: Binance trade id.
        price: Execution price.
        qty: Executed quantity (base units).
        commission: Fee amount in ``commission_asset``.
        commission_asset: Asset the fee was charged in.
        time: Execution time, when reported.
    """

    trade_id: int
    price: float
    qty: float
    commission: float
    commission_asset: str
    time: datetime | None = None


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """An order as Binance reports it (order, openOrders and order-response payloads)."""

    symbol: str
    order_id: int
    client_order_id: str
    status: str
    side: str
    order_type: str
    orig_qty: float
    executed_qty: float
    price: float
    time: datetime | None
    fills: tuple[VenueFill, ...] = ()


def parse_order(payload: Mapping[str, Any]) -> VenueOrder:
    """Parse an order object (POST/GET/DELETE order, openOrders rows).

    The ``fills`` of a FULL order response have no time: they get the order's transact time.
    """
    when_ms = payload.get("transactTime", payload.get("updateTime", payload.get("time")))
    when = ms_to_datetime(int(when_ms)) if when_ms is not None else None
    fills = tuple(
        VenueFill(
            trade_id=int(f.get("tradeId", -1)),
            price=_num(f["price"], "price"),
            qty=_num(f["qty"], "qty"),
            commission=_num(f.get("commission", 0), "commission"),
            commission_asset=str(f.get("commissionAsset", "")),
            time=when,
        )
        for f in payload.get("fills", ())
    )
    return VenueOrder(
        symbol=str(payload["symbol"]),
        order_id=int(payload["orderId"]),
        client_order_id=str(payload.get("clientOrderId", payload.get("origClientOrderId", ""))),
        status=str(payload["status"]),
        side=str(payload.get("side", "")),
        order_type=str(payload.get("type", "")),
        orig_qty=_num(payload.get("origQty", 0), "origQty"),
        executed_qty=_num(payload.get("executedQty", 0), "executedQty"),
        price=_num(payload.get("price", 0), "price"),
        time=when,
        fills=fills,
    )


def parse_my_trade(payload: Mapping[str, Any]) -> tuple[int, VenueFill]:
    """Parse one ``GET /api/v3/myTrades`` row -> (Binance order id, fill)."""
    fill = VenueFill(
        trade_id=int(payload["id"]),
        price=_num(payload["price"], "price"),
        qty=_num(payload["qty"], "qty"),
        commission=_num(payload.get("commission", 0), "commission"),
        commission_asset=str(payload.get("commissionAsset", "")),
        time=ms_to_datetime(int(payload["time"])) if "time" in payload else None,
    )
    return int(payload["orderId"]), fill


def commission_in_quote(
    fill: VenueFill, *, base_asset: str, quote_asset: str, asset_price: float | None = None
) -> float:
    """Value of a fill's commission in the quote asset (our commission column).

    A fee in the quote asset is taken as is; a fee in the base asset (Binance charges a BUY in
    the asset received) is worth ``commission x execution price``; a fee in a third asset (BNB)
    is converted with ``asset_price`` (that asset's price in the quote asset), or counts 0 when
    no price is known.
    """
    if fill.commission == 0.0 or fill.commission_asset in ("", quote_asset):
        return fill.commission
    if fill.commission_asset == base_asset:
        return fill.commission * fill.price
    return fill.commission * asset_price if asset_price is not None else 0.0
