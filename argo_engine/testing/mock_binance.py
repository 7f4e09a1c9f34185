"""A mock Binance spot API (REST + websocket on one port) for tests and local demos.

It speaks enough of the real protocol for the argo Binance feed and broker: ``/api/v3/ping``,
``time``, ``exchangeInfo``, ``klines``, ``ticker/price``, and the signed ``account``, ``order``
(POST/GET/DELETE), ``openOrders`` and ``myTrades``; websockets on ``/ws/<stream>`` and
``/stream?streams=a/b`` for ``<symbol>@kline_<interval>`` streams. Signed requests are verified
(HMAC-SHA256 of the query string plus body, API key, timestamp within ``recvWindow``) and
refused with Binance's error JSON.

Market data is deterministic: a smooth seeded price path per symbol (or bars loaded from a
list), a pure function of time, so every kline can be computed for any time range. The server
clock is a :class:`~argo_engine.clock.Clock`; by default a ``FakeClock`` that only moves when a
test calls :meth:`MockBinance.advance`, which also pushes the websocket updates of the time that
passed (non-final kline updates, then the final ``x: true`` kline) before it returns.

Knobs: inject HTTP errors (429 with ``Retry-After``, 418, 5xx) for the next N requests of a
path, delay responses, drop websocket connections (now, or after N more messages), reject
orders, fill resting LIMIT orders in parts, choose the commission asset; every request is
logged for assertions. The server runs on its own asyncio loop in a daemon thread; the
``MockBinance`` methods are thread-safe (they run on that loop and wait for it).

This is a test double, not an exchange: one account, no order book (orders fill at the
symbol's current price; resting LIMIT orders fill at their limit when the price crosses).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import orjson
from websockets.frames import Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from argo_engine.clock import Clock, FakeClock, LiveClock
from argo_engine.domain.market import Bar

T = TypeVar("T")

_INTERVAL_MS = {
    "1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000,
    "30m": 1_800_000, "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000,
    "6h": 21_600_000, "8h": 28_800_000, "12h": 43_200_000, "1d": 86_400_000,
    "3d": 259_200_000, "1w": 604_800_000, "1M": 2_592_000_000,
}  # fmt: skip
# (1M is a calendar month: its entry is a nominal length, for volumes only; see _next_open.)
_WEEK_OFFSET_MS = 4 * 86_400_000  # Binance weeks start on Monday; 1970-01-01 was a Thursday.
_NO_BALANCE = "Account has insufficient balance for requested action."
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            418: "I'm a teapot", 429: "Too Many Requests"}  # fmt: skip
_FAILURE_BODIES = {
    429: (-1003, "Too many requests; current limit is 6000 request weight per 1 MINUTE."),
    418: (-1003, "Way too many requests; IP banned."),
    500: (-1001, "Internal error; unable to process your request."),
}
_CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,36}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_D0 = Decimal(0)


@dataclass(frozen=True, slots=True)
class MockSymbol:
    """A tradable pair of the mock and its exchange filters.

    Attributes:
        symbol: Pair name, e.g. ``BTCUSDT``.
        base: Base asset.
        quote: Quote asset.
        price: Centre of the generated price path.
        step_size: LOT_SIZE stepSize (also minQty).
        tick_size: PRICE_FILTER tickSize.
        min_notional: Minimum quantity x price.
        notional_filter: ``NOTIONAL`` (current Binance) or ``MIN_NOTIONAL`` (legacy).
        max_qty: LOT_SIZE maxQty.
    """

    symbol: str
    base: str
    quote: str
    price: float
    step_size: str = "0.00001"
    tick_size: str = "0.01"
    min_notional: str = "5"
    notional_filter: str = "NOTIONAL"
    max_qty: str = "9000"


DEFAULT_SYMBOLS: tuple[MockSymbol, ...] = (
    MockSymbol("BTCUSDT", "BTC", "USDT", 60_000.0, "0.00001", "0.01"),
    MockSymbol("ETHUSDT", "ETH", "USDT", 2_500.0, "0.0001", "0.01"),
    MockSymbol("BNBUSDT", "BNB", "USDT", 600.0, "0.001", "0.01", notional_filter="MIN_NOTIONAL"),
    MockSymbol("SOLUSDT", "SOL", "USDT", 150.0, "0.001", "0.01"),
)
DEFAULT_BALANCES: dict[str, float] = {
    "USDT": 100_000.0, "BTC": 1.0, "ETH": 10.0, "BNB": 10.0, "SOL": 10.0,
}  # fmt: skip


@dataclass(slots=True)
class RequestRecord:
    """One request the mock received (REST or websocket handshake).

    Attributes:
        method: HTTP method.
        path: Path without the query string.
        params: Query and form parameters (last value wins).
        websocket: Whether it was a websocket handshake.
        status: HTTP status answered.
    """

    method: str
    path: str
    params: dict[str, str]
    websocket: bool = False
    status: int = 0


@dataclass(slots=True)
class _Failure:
    path: str
    method: str | None
    status: int
    remaining: int
    retry_after: float | None
    code: int | None
    msg: str | None


@dataclass(slots=True)
class _Delay:
    path: str
    seconds: float
    remaining: int


@dataclass(slots=True)
class _Sub:
    stream: str
    symbol: str
    interval: str
    step_ms: int
    last_final_open: int


@dataclass(slots=True)
class _WsConn:
    conn_id: int
    writer: asyncio.StreamWriter
    proto: ServerProtocol
    combined: bool
    subs: list[_Sub] = field(default_factory=list)
    alive: bool = True


@dataclass(slots=True)
class _Order:
    symbol: str
    order_id: int
    client_id: str
    side: str
    type: str
    orig_qty: Decimal
    price: Decimal
    time_ms: int
    status: str = "NEW"
    executed: Decimal = _D0
    cumm_quote: Decimal = _D0
    update_ms: int = 0
    locked: Decimal = _D0
    fills: list[dict[str, Any]] = field(default_factory=list)


class _ApiError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def _fmt(value: Decimal | float, places: int = 8) -> str:
    return f"{Decimal(value) if isinstance(value, Decimal) else Decimal(repr(value)):.{places}f}"


def _mix(*parts: int) -> int:
    # splitmix64 over the parts: fast, portable, deterministic noise.
    x = 0x9E3779B97F4A7C15
    for part in parts:
        x = (x ^ (part & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x = (x ^ (x >> 31)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 29
    return x


def _unit(*parts: int) -> float:
    return _mix(*parts) / 2.0**64


def _symbol_key(symbol: str) -> int:
    return int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:8], "big")


class _Exchange:
    """State and rules of the mock venue; only ever touched on the server loop."""

    def __init__(
        self,
        *,
        clock: Clock,
        seed: int,
        symbols: Sequence[MockSymbol],
        bars: Mapping[str, Sequence[Bar]] | None,
        bars_interval: str,
        balances: Mapping[str, float],
        api_keys: Mapping[str, str],
        fee_rate: float,
        fee_asset: str,
    ) -> None:
        self.clock = clock
        self.seed = seed
        self.symbols = {s.symbol: s for s in symbols}
        self.bars_interval = bars_interval
        self.loaded: dict[str, dict[int, Bar]] = {}
        for symbol, rows in (bars or {}).items():
            self.loaded[symbol] = {_to_ms(b.time): b for b in rows}
        self.loaded_sorted = {s: sorted(rows) for s, rows in self.loaded.items()}
        self.balances: dict[str, list[Decimal]] = {
            a: [Decimal(repr(float(v))), _D0] for a, v in balances.items()
        }
        self.api_keys = dict(api_keys)
        self.fee_rate = Decimal(repr(fee_rate))
        self.fee_asset = fee_asset
        self.price_override: dict[str, Decimal] = {}
        self.orders: dict[int, _Order] = {}
        self.trades: list[dict[str, Any]] = []
        self.next_order_id = 1
        self.next_trade_id = 1
        self.fill_parts = 1
        self.reject_next: list[tuple[int, str]] = []

    # -- time and prices ---------------------------------------------------------------------------

    def now_ms(self) -> int:
        return _to_ms(self.clock.now())

    def _path_price(self, symbol: str, t_s: int) -> float:
        sym = self.symbols[symbol]
        key = _symbol_key(symbol)
        ph1, ph2, ph3 = (_unit(self.seed, key, i) * 2 * math.pi for i in (1, 2, 3))
        noise = _unit(self.seed, key, t_s) * 2 - 1
        x = (
            0.03 * math.sin(2 * math.pi * t_s / 86_400 + ph1)
            + 0.012 * math.sin(2 * math.pi * t_s / 14_400 + ph2)
            + 0.004 * math.sin(2 * math.pi * t_s / 900 + ph3)
            + 0.0015 * noise
        )
        return sym.price * math.exp(x)

    def _round_tick(self, symbol: str, price: float) -> Decimal:
        tick = Decimal(self.symbols[symbol].tick_size)
        return (Decimal(repr(price)) / tick).to_integral_value() * tick

    def price(self, symbol: str) -> Decimal:
        """Current price: override, else the last loaded bar's close, else the price path."""
        if symbol in self.price_override:
            return self.price_override[symbol]
        now = self.now_ms()
        rows = self.loaded_sorted.get(symbol)
        if rows:
            table = self.loaded[symbol]
            past = [t for t in rows if t <= now]
            return Decimal(repr(table[past[-1] if past else rows[0]].close))
        return self._round_tick(symbol, self._path_price(symbol, now // 1000))

    def kline_values(self, symbol: str, interval: str, open_ms: int) -> tuple[float, ...]:
        """(open, high, low, close, volume) of the complete kline opening at ``open_ms``."""
        table = self.loaded.get(symbol)
        if table is not None and interval == self.bars_interval:
            bar = table[open_ms]
            return (bar.open, bar.high, bar.low, bar.close, bar.volume)
        step = _next_open(open_ms, interval) - open_ms
        first_s, last_s = open_ms // 1000, (open_ms + step - 1) // 1000
        n = max(1, min(12, last_s - first_s))
        samples = [
            self._path_price(symbol, first_s + (last_s - first_s) * k // n) for k in range(n + 1)
        ]
        key = _symbol_key(symbol)
        wiggle = 1 + 0.0004 * _unit(self.seed, key, open_ms, 7)
        values = (
            samples[0],
            max(samples) * wiggle,
            min(samples) / wiggle,
            samples[-1],
        )
        rounded = tuple(float(self._round_tick(symbol, v)) for v in values)
        volume = round((0.5 + _unit(self.seed, key, open_ms, 11)) * 100 * step / 60_000, 5)
        return (*rounded, volume)

    def has_kline(self, symbol: str, interval: str, open_ms: int) -> bool:
        table = self.loaded.get(symbol)
        if table is not None and interval == self.bars_interval:
            return open_ms in table
        return True

    def kline_row(self, symbol: str, interval: str, open_ms: int, now: int) -> list[Any]:
        step = _next_open(open_ms, interval) - open_ms
        o, h, lo, c, v = self.kline_values(symbol, interval, open_ms)
        if now < open_ms + step:
            # Still open: a partial kline, part of the way from open to the final close.
            frac = max(0.0, min(1.0, (now - open_ms) / step))
            c = float(self._round_tick(symbol, o + (c - o) * frac))
            h, lo, v = max(o, c), min(o, c), v * frac
        return [
            open_ms, _fmt(o), _fmt(h), _fmt(lo), _fmt(c), _fmt(v), open_ms + step - 1,
            _fmt(v * c), 100, _fmt(v / 2), _fmt(v * c / 2), "0",
        ]  # fmt: skip

    def ws_kline(
        self, symbol: str, interval: str, open_ms: int, at: int, final: bool
    ) -> dict[str, Any]:
        step = _next_open(open_ms, interval) - open_ms
        row = self.kline_row(symbol, interval, open_ms, open_ms + step if final else at)
        return {
            "e": "kline",
            "E": at,
            "s": symbol,
            "k": {
                "t": open_ms, "T": open_ms + step - 1, "s": symbol, "i": interval,
                "f": 1, "L": 100, "o": row[1], "c": row[4], "h": row[2], "l": row[3],
                "v": row[5], "n": 100, "x": final, "q": row[7], "V": row[9], "Q": row[10],
                "B": "0",
            },
        }  # fmt: skip

    def klines(self, params: Mapping[str, str]) -> list[list[Any]]:
        symbol = self.require_symbol(params)
        interval = params.get("interval", "")
        if interval not in _INTERVAL_MS:
            raise _ApiError(400, -1120, "Invalid interval.")
        limit = int(params.get("limit", "500"))
        if not 1 <= limit <= 1000:
            raise _ApiError(400, -1130, "Data sent for parameter 'limit' is not valid.")
        now = self.now_ms()
        last_open = _floor(now, interval)
        end = int(params["endTime"]) if "endTime" in params else None
        top = last_open if end is None else min(last_open, _floor(end, interval))
        table = self.loaded.get(symbol)
        if table is not None and interval == self.bars_interval:
            opens = [t for t in self.loaded_sorted[symbol] if t <= top]
            if "startTime" in params:
                opens = [t for t in opens if t >= int(params["startTime"])][:limit]
            else:
                opens = opens[-limit:]
        elif "startTime" in params:
            opens = []
            t = _ceil(int(params["startTime"]), interval)
            while t <= top and len(opens) < limit:
                opens.append(t)
                t = _next_open(t, interval)
        else:
            opens = [top]
            while len(opens) < limit:
                opens.append(_prev_open(opens[-1], interval))
            opens.reverse()
        return [self.kline_row(symbol, interval, t, now) for t in opens]

    # -- symbols and accounts ----------------------------------------------------------------------

    def require_symbol(self, params: Mapping[str, str]) -> str:
        symbol = params.get("symbol")
        if not symbol:
            raise _ApiError(400, -1102, "Mandatory parameter 'symbol' was not sent.")
        if symbol not in self.symbols:
            raise _ApiError(400, -1121, "Invalid symbol.")
        return symbol

    def symbol_list(self, params: Mapping[str, str]) -> list[str]:
        if "symbol" in params:
            return [self.require_symbol(params)]
        if "symbols" in params:
            names = orjson.loads(params["symbols"])
            for name in names:
                self.require_symbol({"symbol": name})
            return list(names)
        return list(self.symbols)

    def exchange_info(self, params: Mapping[str, str]) -> dict[str, Any]:
        entries = []
        for name in self.symbol_list(params):
            s = self.symbols[name]
            notional: dict[str, Any]
            if s.notional_filter == "MIN_NOTIONAL":
                notional = {"filterType": "MIN_NOTIONAL", "minNotional": s.min_notional,
                            "applyToMarket": True, "avgPriceMins": 5}  # fmt: skip
            else:
                notional = {"filterType": "NOTIONAL", "minNotional": s.min_notional,
                            "applyMinToMarket": True, "maxNotional": "9000000.00000000",
                            "applyMaxToMarket": False, "avgPriceMins": 5}  # fmt: skip
            entries.append({
                "symbol": name, "status": "TRADING", "baseAsset": s.base,
                "baseAssetPrecision": 8, "quoteAsset": s.quote, "quotePrecision": 8,
                "quoteAssetPrecision": 8, "orderTypes": ["LIMIT", "MARKET"],
                "isSpotTradingAllowed": True, "permissions": ["SPOT"],
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": s.tick_size,
                     "maxPrice": "1000000.00000000", "tickSize": s.tick_size},
                    {"filterType": "LOT_SIZE", "minQty": s.step_size, "maxQty": s.max_qty,
                     "stepSize": s.step_size},
                    notional,
                    {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000",
                     "maxQty": s.max_qty, "stepSize": "0.00000000"},
                ],
            })  # fmt: skip
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                 "limit": 6000},
            ],
            "exchangeFilters": [],
            "symbols": entries,
        }  # fmt: skip

    def ticker(self, params: Mapping[str, str]) -> Any:
        if "symbol" in params:
            name = self.require_symbol(params)
            return {"symbol": name, "price": _fmt(self.price(name))}
        return [{"symbol": n, "price": _fmt(self.price(n))} for n in self.symbol_list(params)]

    def balance(self, asset: str) -> list[Decimal]:
        return self.balances.setdefault(asset, [_D0, _D0])

    def account(self) -> dict[str, Any]:
        rate = _fmt(self.fee_rate)
        return {
            "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {"maker": rate, "taker": rate, "buyer": "0", "seller": "0"},
            "canTrade": True, "canWithdraw": False, "canDeposit": False, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False,
            "updateTime": self.now_ms(), "accountType": "SPOT",
            "balances": [
                {"asset": a, "free": _fmt(b[0]), "locked": _fmt(b[1])}
                for a, b in sorted(self.balances.items())
            ],
            "permissions": ["SPOT"], "uid": 1,
        }  # fmt: skip

    # -- orders ------------------------------------------------------------------------------------

    def find_order(self, params: Mapping[str, str], missing: tuple[int, str]) -> _Order:
        symbol = self.require_symbol(params)
        if "orderId" in params:
            order = self.orders.get(int(params["orderId"]))
        elif "origClientOrderId" in params:
            wanted = params["origClientOrderId"]
            matches = [o for o in self.orders.values() if o.client_id == wanted]
            order = matches[-1] if matches else None
        else:
            raise _ApiError(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent.")
        if order is None or order.symbol != symbol:
            raise _ApiError(400, *missing)
        return order

    def order_json(self, o: _Order) -> dict[str, Any]:
        return {
            "symbol": o.symbol, "orderId": o.order_id, "orderListId": -1,
            "clientOrderId": o.client_id, "price": _fmt(o.price), "origQty": _fmt(o.orig_qty),
            "executedQty": _fmt(o.executed), "cummulativeQuoteQty": _fmt(o.cumm_quote),
            "status": o.status, "timeInForce": "GTC",
            "type": o.type, "side": o.side, "stopPrice": "0.00000000",
            "icebergQty": "0.00000000", "time": o.time_ms, "updateTime": o.update_ms,
            "isWorking": True, "workingTime": o.time_ms, "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }  # fmt: skip

    def place(self, params: Mapping[str, str]) -> dict[str, Any]:
        symbol = self.require_symbol(params)
        sym = self.symbols[symbol]
        side, otype = params.get("side", ""), params.get("type", "")
        if side not in ("BUY", "SELL"):
            raise _ApiError(400, -1100, "Illegal characters found in parameter 'side'.")
        if otype not in ("MARKET", "LIMIT"):
            raise _ApiError(400, -1116, "Invalid orderType.")
        if "quantity" not in params:
            raise _ApiError(400, -1102, "Mandatory parameter 'quantity' was not sent.")
        client_id = params.get("newClientOrderId") or f"mock-{self.next_order_id}"
        if not _CLIENT_ID_RE.match(client_id):
            raise _ApiError(
                400,
                -1100,
                "Illegal characters found in parameter 'newClientOrderId'; "
                "legal range is '^[a-zA-Z0-9-_.]{1,36}$'.",
            )
        if any(o.client_id == client_id and _is_open(o) for o in self.orders.values()):
            raise _ApiError(400, -2010, "Duplicate order sent.")
        qty = Decimal(params["quantity"])
        step, tick = Decimal(sym.step_size), Decimal(sym.tick_size)
        if qty < step or qty > Decimal(sym.max_qty) or qty % step != 0:
            raise _ApiError(400, -1013, "Filter failure: LOT_SIZE")
        market_price = self.price(symbol)
        if otype == "LIMIT":
            if params.get("timeInForce") != "GTC":
                raise _ApiError(400, -1102, "Mandatory parameter 'timeInForce' was not sent.")
            if "price" not in params:
                raise _ApiError(400, -1102, "Mandatory parameter 'price' was not sent.")
            price = Decimal(params["price"])
            if price < tick or price % tick != 0:
                raise _ApiError(400, -1013, "Filter failure: PRICE_FILTER")
        else:
            price = _D0
        if qty * (price if otype == "LIMIT" else market_price) < Decimal(sym.min_notional):
            raise _ApiError(400, -1013, f"Filter failure: {sym.notional_filter}")
        if self.reject_next:
            code, msg = self.reject_next.pop(0)
            raise _ApiError(400, code, msg)
        marketable = otype == "MARKET" or (
            price >= market_price if side == "BUY" else price <= market_price
        )
        cost_price = market_price if marketable else price
        short = (
            self.balance(sym.quote)[0] < qty * cost_price
            if side == "BUY"
            else self.balance(sym.base)[0] < qty
        )
        if short:
            raise _ApiError(400, -2010, _NO_BALANCE)
        now = self.now_ms()
        order = _Order(
            symbol=symbol,
            order_id=self.next_order_id,
            client_id=client_id,
            side=side,
            type=otype,
            orig_qty=qty,
            price=price,
            time_ms=now,
            update_ms=now,
        )
        self.next_order_id += 1
        self.orders[order.order_id] = order
        if marketable:
            for part in self._parts(order, whole=True):
                self._execute(order, part, market_price, maker=False)
        else:
            locked = qty * price if side == "BUY" else qty
            asset = sym.quote if side == "BUY" else sym.base
            bal = self.balance(asset)
            bal[0] -= locked
            bal[1] += locked
            order.locked = locked
        resp_type = params.get("newOrderRespType", "FULL")
        base = {"symbol": symbol, "orderId": order.order_id, "orderListId": -1,
                "clientOrderId": client_id, "transactTime": now}  # fmt: skip
        if resp_type == "ACK":
            return base
        body = {**base, **{k: v for k, v in self.order_json(order).items()
                           if k not in ("time", "updateTime", "isWorking", "stopPrice",
                                        "icebergQty", "origQuoteOrderQty")}}  # fmt: skip
        if resp_type == "FULL":
            body["fills"] = [dict(f) for f in order.fills]
        return body

    def _parts(self, order: _Order, *, whole: bool) -> list[Decimal]:
        # Quantities of the next execution(s): the whole remainder in ``fill_parts`` pieces
        # (market orders), or one piece of it per price cross (resting orders).
        remaining = order.orig_qty - order.executed
        step = Decimal(self.symbols[order.symbol].step_size)
        piece = (order.orig_qty / self.fill_parts / step).to_integral_value(ROUND_FLOOR) * step
        if piece <= 0 or self.fill_parts == 1:
            return [remaining]
        out: list[Decimal] = []
        while remaining > 0:
            take = min(piece, remaining)
            if remaining - take < step:
                take = remaining
            out.append(take)
            remaining -= take
            if not whole:
                break
        return out

    def _execute(self, order: _Order, qty: Decimal, price: Decimal, *, maker: bool) -> None:
        sym = self.symbols[order.symbol]
        notional = qty * price
        asset = self.fee_asset
        if asset == "received":
            asset = sym.base if order.side == "BUY" else sym.quote
        elif asset in ("base", "quote"):
            asset = sym.base if asset == "base" else sym.quote
        if asset == sym.base:
            fee = qty * self.fee_rate
        elif asset == sym.quote:
            fee = notional * self.fee_rate
        else:
            other = f"{asset}{sym.quote}"
            rate = self.price(other) if other in self.symbols else Decimal(1)
            fee = (notional * self.fee_rate / rate).quantize(Decimal("1e-8"))
        base, quote = self.balance(sym.base), self.balance(sym.quote)
        if order.side == "BUY":
            if order.locked > 0:
                release = qty * order.price
                quote[1] -= release
                quote[0] += release - notional
                order.locked -= release
            else:
                quote[0] -= notional
            base[0] += qty
        else:
            if order.locked > 0:
                base[1] -= qty
                order.locked -= qty
            else:
                base[0] -= qty
            quote[0] += notional
        self.balance(asset)[0] -= fee
        now = self.now_ms()
        trade = {
            "symbol": order.symbol, "id": self.next_trade_id, "orderId": order.order_id,
            "orderListId": -1, "price": _fmt(price), "qty": _fmt(qty),
            "quoteQty": _fmt(notional), "commission": _fmt(fee), "commissionAsset": asset,
            "time": now, "isBuyer": order.side == "BUY", "isMaker": maker, "isBestMatch": True,
        }  # fmt: skip
        self.next_trade_id += 1
        self.trades.append(trade)
        order.fills.append({"price": _fmt(price), "qty": _fmt(qty), "commission": _fmt(fee),
                            "commissionAsset": asset, "tradeId": trade["id"]})  # fmt: skip
        order.executed += qty
        order.cumm_quote += notional
        order.update_ms = now
        order.status = "FILLED" if order.executed >= order.orig_qty else "PARTIALLY_FILLED"

    def match(self) -> int:
        """Fill resting LIMIT orders whose price the market crossed; return executions."""
        done = 0
        for order in sorted(self.orders.values(), key=lambda o: o.order_id):
            if order.type != "LIMIT" or not _is_open(order):
                continue
            market = self.price(order.symbol)
            crossed = market <= order.price if order.side == "BUY" else market >= order.price
            if crossed:
                for part in self._parts(order, whole=False):
                    self._execute(order, part, order.price, maker=True)
                    done += 1
        return done

    def finish(self, order: _Order, status: str) -> None:
        sym = self.symbols[order.symbol]
        if order.locked > 0:
            bal = self.balance(sym.quote if order.side == "BUY" else sym.base)
            bal[1] -= order.locked
            bal[0] += order.locked
            order.locked = _D0
        order.status = status
        order.update_ms = self.now_ms()

    def cancel(self, params: Mapping[str, str]) -> dict[str, Any]:
        order = self.find_order(params, (-2011, "Unknown order sent."))
        if not _is_open(order):
            raise _ApiError(400, -2011, "Unknown order sent.")
        self.finish(order, "CANCELED")
        body = self.order_json(order)
        for key in ("time", "updateTime", "isWorking", "workingTime", "stopPrice", "icebergQty",
                    "origQuoteOrderQty"):  # fmt: skip
            body.pop(key, None)
        body.update(origClientOrderId=order.client_id, clientOrderId=f"cancel-{order.order_id}",
                    transactTime=self.now_ms())  # fmt: skip
        return body

    def my_trades(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        symbol = self.require_symbol(params)
        rows = [t for t in self.trades if t["symbol"] == symbol]
        if "orderId" in params:
            rows = [t for t in rows if t["orderId"] == int(params["orderId"])]
        if "fromId" in params:
            rows = [t for t in rows if t["id"] >= int(params["fromId"])]
        if "startTime" in params:
            rows = [t for t in rows if t["time"] >= int(params["startTime"])]
        if "endTime" in params:
            rows = [t for t in rows if t["time"] <= int(params["endTime"])]
        return [dict(t) for t in rows[: int(params.get("limit", "500"))]]


def _is_open(order: _Order) -> bool:
    return order.status in ("NEW", "PARTIALLY_FILLED")


def _to_ms(ts: datetime) -> int:
    delta = ts - _EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def _floor(t_ms: int, interval: str) -> int:
    if interval == "1M":
        t = datetime.fromtimestamp(t_ms / 1000, tz=UTC)
        return _to_ms(datetime(t.year, t.month, 1, tzinfo=UTC))
    step = _INTERVAL_MS[interval]
    offset = _WEEK_OFFSET_MS if interval == "1w" else 0
    return (t_ms - offset) // step * step + offset


def _next_open(open_ms: int, interval: str) -> int:
    """Open of the kline after the one opening at ``open_ms`` (calendar months for 1M)."""
    if interval == "1M":
        t = datetime.fromtimestamp(open_ms / 1000, tz=UTC)
        nxt = t.replace(year=t.year + 1, month=1) if t.month == 12 else t.replace(month=t.month + 1)
        return _to_ms(nxt)
    return open_ms + _INTERVAL_MS[interval]


def _prev_open(open_ms: int, interval: str) -> int:
    return _floor(open_ms - 1, interval)


def _ceil(t_ms: int, interval: str) -> int:
    floor = _floor(t_ms, interval)
    return floor if floor == t_ms else _next_open(floor, interval)


_SIGNED_PATHS = frozenset({"/api/v3/account", "/api/v3/order", "/api/v3/openOrders",
                           "/api/v3/myTrades"})  # fmt: skip


class MockBinance:
    """The mock Binance server: REST and websocket on one loopback port.

    Use it as a context manager; ``rest_url`` and ``ws_url`` point at it.

    Args:
        host: Interface to bind (loopback by default).
        port: Port; 0 picks a free one.
        clock: Server clock (defaults to a ``FakeClock`` at ``start``). With a ``FakeClock``,
            :meth:`advance` moves time.
        start: Start time of the default clock (default 2025-10-01T00:00Z).
        seed: Seed of the generated price paths.
        symbols: Tradable pairs (default BTCUSDT, ETHUSDT, BNBUSDT, SOLUSDT).
        bars: Bars per symbol served instead of generated klines (for ``bars_interval``).
        bars_interval: Interval the loaded bars belong to.
        balances: Starting free balances per asset.
        api_key: The one API key the mock accepts.
        api_secret: Its secret.
        fee_rate: Commission rate of every execution (0.001 = 0.1%).
        fee_asset: ``received`` (Binance's default: a BUY pays in the base asset, a SELL in
            the quote asset), ``base``, ``quote``, or another asset such as ``BNB``.
        publish_every_s: Push websocket updates on a real-time timer (live demos); None for
            tests, which push with :meth:`advance`/:meth:`publish`.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        start: datetime | None = None,
        seed: int = 7,
        symbols: Sequence[MockSymbol] = DEFAULT_SYMBOLS,
        bars: Mapping[str, Sequence[Bar]] | None = None,
        bars_interval: str = "1m",
        balances: Mapping[str, float] | None = None,
        api_key: str = "mock-api-key",
        api_secret: str = "mock-api-secret",
        fee_rate: float = 0.001,
        fee_asset: str = "received",
        publish_every_s: float | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.clock: Clock = clock or FakeClock(start or datetime(2025, 10, 1, tzinfo=UTC))
        self.api_key = api_key
        self.api_secret = api_secret
        self.exchange = _Exchange(
            clock=self.clock, seed=seed, symbols=symbols, bars=bars, bars_interval=bars_interval,
            balances=DEFAULT_BALANCES if balances is None else balances,
            api_keys={api_key: api_secret}, fee_rate=fee_rate, fee_asset=fee_asset,
        )  # fmt: skip
        self.publish_every_s = publish_every_s
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._log: list[RequestRecord] = []
        self._failures: list[_Failure] = []
        self._delays: list[_Delay] = []
        self._advances: list[tuple[str, float]] = []
        self._conns: dict[int, _WsConn] = {}
        self._writers: set[asyncio.StreamWriter] = set()
        self._next_conn = 1
        self._ws_total = 0
        self._ws_messages = 0
        self._drop_after: int | None = None
        self._cond = threading.Condition()
        self._ticker: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def rest_url(self) -> str:
        """REST base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """Websocket base URL, e.g. ``ws://127.0.0.1:54321``."""
        return f"ws://{self.host}:{self.port}"

    def start(self) -> MockBinance:
        """Start serving in a background thread; returns once the port is bound."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._open())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="mock-binance", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        """Close every connection and stop the server thread."""
        loop = self._loop
        if loop is None or self._thread is None:
            return
        if loop.is_running():
            asyncio.run_coroutine_threadsafe(self._close(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        loop.close()
        self._loop = None

    def __enter__(self) -> MockBinance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _open(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self._requested_port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        if self.publish_every_s is not None:
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def _close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns.values()):
            self._abort(conn)
        for writer in list(self._writers):
            writer.transport.abort()
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _tick(self) -> None:
        assert self.publish_every_s is not None
        while True:
            await asyncio.sleep(self.publish_every_s)
            self._publish()
            self.exchange.match()

    def _call(self, fn: Callable[[], T]) -> T:
        loop = self._loop
        if loop is None:
            raise RuntimeError("MockBinance is not running; use it as a context manager")

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(30)

    # -- knobs -------------------------------------------------------------------------------------

    def now(self) -> datetime:
        """Server time."""
        return self.clock.now()

    def advance(self, seconds: float) -> None:
        """Move the server clock forward, push the websocket updates, fill crossed LIMITs.

        Requires a clock with ``advance`` (the default FakeClock).
        """
        self._call(lambda: self._advance_inline(seconds))

    def _advance_inline(self, seconds: float) -> None:
        advance = getattr(self.clock, "advance", None)
        if advance is None:
            raise TypeError("advance() needs a clock with an advance() method (FakeClock)")
        advance(seconds)
        self._publish()
        self.exchange.match()

    def publish(self) -> None:
        """Push websocket updates for the time that passed and fill crossed LIMIT orders."""

        def step() -> None:
            self._publish()
            self.exchange.match()

        self._call(step)

    def fail_next(
        self,
        path: str,
        *,
        status: int = 503,
        count: int = 1,
        retry_after: float | None = None,
        method: str | None = None,
        code: int | None = None,
        msg: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests on ``path`` with ``status`` (and Retry-After).

        Works for websocket handshake paths too (``/stream``, ``/ws/<stream>``).
        """
        item = _Failure(path, method, status, count, retry_after, code, msg)
        self._call(lambda: self._failures.append(item))

    def delay_next(self, path: str, seconds: float, *, count: int = 1) -> None:
        """Delay the answers to the next ``count`` requests on ``path`` (real seconds)."""
        self._call(lambda: self._delays.append(_Delay(path, seconds, count)))

    def advance_on_next(self, path: str, seconds: float) -> None:
        """When the next request on ``path`` arrives, advance the clock first (as :meth:`advance`).

        Lets a test make time pass at an exact point of a client's protocol, e.g. a kline
        closing between a websocket (re)connect and the REST gap fill that follows it.
        """
        self._call(lambda: self._advances.append((path, seconds)))

    def drop_ws(self) -> int:
        """Drop every websocket connection now (TCP abort, no close frame); return how many."""
        return self._call(self._drop_all)

    def drop_ws_after(self, messages: int) -> None:
        """Drop every websocket connection right after ``messages`` more messages were sent."""

        def arm() -> None:
            self._drop_after = messages

        self._call(arm)

    def reject_orders(self, count: int = 1, *, code: int = -2010, msg: str = _NO_BALANCE) -> None:
        """Reject the next ``count`` new orders (after filter checks) with a Binance error."""
        self._call(lambda: self.exchange.reject_next.extend([(code, msg)] * count))

    def set_price(self, symbol: str, price: float | None) -> None:
        """Pin (or, with None, release) the current price of ``symbol``; fills crossed LIMITs."""

        def apply() -> None:
            if price is None:
                self.exchange.price_override.pop(symbol, None)
            else:
                self.exchange.price_override[symbol] = Decimal(repr(float(price)))
            self.exchange.match()

        self._call(apply)

    def price(self, symbol: str) -> float:
        """Current price of ``symbol``."""
        return float(self._call(lambda: self.exchange.price(symbol)))

    def match(self) -> int:
        """Run LIMIT matching now; returns the number of executions."""
        return self._call(self.exchange.match)

    def set_fill_parts(self, parts: int) -> None:
        """Execute orders in ``parts`` pieces (resting LIMITs: one piece per price cross)."""

        def apply() -> None:
            self.exchange.fill_parts = max(1, parts)

        self._call(apply)

    def set_fee_asset(self, asset: str) -> None:
        """Change the commission asset (``received``, ``base``, ``quote`` or an asset)."""

        def apply() -> None:
            self.exchange.fee_asset = asset

        self._call(apply)

    def expire_order(self, client_order_id: str) -> None:
        """Expire an open order (status EXPIRED), as the venue does on its own."""

        def apply() -> None:
            for order in self.exchange.orders.values():
                if order.client_id == client_order_id and _is_open(order):
                    self.exchange.finish(order, "EXPIRED")

        self._call(apply)

    def set_balance(self, asset: str, free: float, locked: float = 0.0) -> None:
        """Set a balance."""

        def apply() -> None:
            self.exchange.balances[asset] = [Decimal(repr(free)), Decimal(repr(locked))]

        self._call(apply)

    def balance(self, asset: str) -> tuple[float, float]:
        """(free, locked) of ``asset``."""
        free, locked = self._call(lambda: list(self.exchange.balance(asset)))
        return float(free), float(locked)

    def orders(self) -> list[dict[str, Any]]:
        """Every order the mock holds, as Binance order JSON."""
        return self._call(
            lambda: [self.exchange.order_json(o) for o in self.exchange.orders.values()]
        )

    def requests(self, path: str | None = None, method: str | None = None) -> list[RequestRecord]:
        """Logged requests, optionally only those of ``path`` and/or ``method``."""
        rows = self._call(lambda: list(self._log))
        return [
            r
            for r in rows
            if (path is None or r.path == path) and (method is None or r.method == method)
        ]

    def count(self, path: str, method: str | None = None, **params: str) -> int:
        """How many logged requests of ``path`` (and ``method``) carry all of ``params``."""
        return sum(
            1
            for r in self.requests(path, method)
            if all(r.params.get(k) == v for k, v in params.items())
        )

    def clear_requests(self) -> None:
        """Forget the request log."""
        self._call(self._log.clear)

    @property
    def ws_connections_total(self) -> int:
        """Websocket connections accepted since start."""
        with self._cond:
            return self._ws_total

    @property
    def ws_open(self) -> int:
        """Websocket connections open now."""
        return self._call(lambda: sum(1 for c in self._conns.values() if c.alive))

    def wait_for_ws(self, total: int, timeout: float = 10.0) -> None:
        """Block until ``total`` websocket connections have been accepted since start.

        Raises:
            TimeoutError: If that does not happen within ``timeout`` seconds.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._ws_total >= total, timeout):
                raise TimeoutError(f"expected {total} websocket connections, saw {self._ws_total}")

    # -- HTTP --------------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = [*lines[0].split(" ", 2), "", ""][:3]
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if ":" in line:
                        key, value = line.split(":", 1)
                        headers[key.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(length) if length else b""
                if headers.get("upgrade", "").lower() == "websocket":
                    self._writers.discard(writer)
                    await self._serve_ws(reader, writer, head, target)
                    return
                status, extra, payload = await self._respond(method, target, headers, body)
                reason = _REASONS.get(status, "Error")
                close = headers.get("connection", "").lower() == "close"
                out = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json",
                       f"Content-Length: {len(payload)}",
                       f"Connection: {'close' if close else 'keep-alive'}"]  # fmt: skip
                out += [f"{k}: {v}" for k, v in extra.items()]
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + payload)
                await writer.drain()
                if close:
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._writers.discard(writer)
            if not writer.transport.is_closing():
                writer.close()

    def _take_failure(self, method: str, path: str) -> _Failure | None:
        for item in self._failures:
            if item.path == path and (item.method is None or item.method == method):
                item.remaining -= 1
                if item.remaining <= 0:
                    self._failures.remove(item)
                return item
        return None

    async def _respond(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(target)
        path, raw_query = parts.path, parts.query
        params = dict(parse_qsl(raw_query, keep_blank_values=True))
        raw_body = body.decode("latin-1")
        if body and "x-www-form-urlencoded" in headers.get("content-type", ""):
            params.update(parse_qsl(raw_body, keep_blank_values=True))
        record = RequestRecord(method, path, params)
        self._log.append(record)
        for delay in list(self._delays):
            if delay.path == path:
                delay.remaining -= 1
                if delay.remaining <= 0:
                    self._delays.remove(delay)
                await asyncio.sleep(delay.seconds)
                break
        for item in list(self._advances):
            if item[0] == path:
                self._advances.remove(item)
                self._advance_inline(item[1])
                break
        extra: dict[str, str] = {}
        failure = self._take_failure(method, path)
        if failure is not None:
            if failure.retry_after is not None:
                extra["Retry-After"] = f"{failure.retry_after:g}"
            default = _FAILURE_BODIES.get(failure.status, _FAILURE_BODIES[500])
            code = failure.code if failure.code is not None else default[0]
            status, payload = failure.status, {"code": code, "msg": failure.msg or default[1]}
        else:
            try:
                if path in _SIGNED_PATHS:
                    self._verify(headers, raw_query, raw_body, params)
                status, payload = 200, self._route(method, path, params)
            except _ApiError as exc:
                status, payload = exc.status, {"code": exc.code, "msg": exc.msg}
        record.status = status
        return status, extra, orjson.dumps(payload)

    def _verify(
        self, headers: Mapping[str, str], raw_query: str, raw_body: str, params: Mapping[str, str]
    ) -> None:
        key = headers.get("x-mbx-apikey", "")
        if not key:
            raise _ApiError(401, -2014, "API-key format invalid.")
        secret = self.exchange.api_keys.get(key)
        if secret is None:
            raise _ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        signature = params.get("signature", "")
        if not signature:
            raise _ApiError(400, -1102, "Mandatory parameter 'signature' was not sent, was "
                            "empty/null, or malformed.")  # fmt: skip

        def strip(raw: str) -> str:
            return "&".join(p for p in raw.split("&") if p and not p.startswith("signature="))

        total = strip(raw_query) + strip(raw_body)
        expected = hmac.new(secret.encode(), total.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise _ApiError(401, -1022, "Signature for this request is not valid.")
        if "timestamp" not in params:
            raise _ApiError(400, -1102, "Mandatory parameter 'timestamp' was not sent.")
        window = int(params.get("recvWindow", "5000"))
        if window > 60_000:
            raise _ApiError(400, -1131, "recvWindow must be less than 60000")
        ts, server = int(params["timestamp"]), self.exchange.now_ms()
        if ts >= server + 1000 or server - ts > window:
            raise _ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")

    def _route(self, method: str, path: str, params: Mapping[str, str]) -> Any:
        ex = self.exchange
        routes: dict[tuple[str, str], Callable[[], Any]] = {
            ("GET", "/api/v3/ping"): dict,
            ("GET", "/api/v3/time"): lambda: {"serverTime": ex.now_ms()},
            ("GET", "/api/v3/exchangeInfo"): lambda: ex.exchange_info(params),
            ("GET", "/api/v3/klines"): lambda: ex.klines(params),
            ("GET", "/api/v3/ticker/price"): lambda: ex.ticker(params),
            ("GET", "/api/v3/account"): ex.account,
            ("POST", "/api/v3/order"): lambda: ex.place(params),
            ("GET", "/api/v3/order"): lambda: ex.order_json(
                ex.find_order(params, (-2013, "Order does not exist."))
            ),
            ("DELETE", "/api/v3/order"): lambda: ex.cancel(params),
            ("GET", "/api/v3/openOrders"): lambda: [
                ex.order_json(o)
                for o in ex.orders.values()
                if _is_open(o) and ("symbol" not in params or o.symbol == ex.require_symbol(params))
            ],
            ("GET", "/api/v3/myTrades"): lambda: ex.my_trades(params),
        }
        handler = routes.get((method, path))
        if handler is None:
            raise _ApiError(404, -1, f"no route {method} {path}")
        return handler()

    # -- websocket ---------------------------------------------------------------------------------

    async def _serve_ws(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, target: str
    ) -> None:
        parts = urlsplit(target)
        params = dict(parse_qsl(parts.query))
        record = RequestRecord("GET", parts.path, params, websocket=True)
        self._log.append(record)
        proto = ServerProtocol()
        proto.receive_data(head)
        events = proto.events_received()
        request = events[0] if events and isinstance(events[0], Request) else None
        failure = self._take_failure("GET", parts.path)
        streams = self._streams(parts.path, params)
        if request is None:
            writer.transport.abort()
            return
        if failure is not None:
            response = proto.reject(failure.status, "unavailable\n")
        elif streams is None:
            response = proto.reject(404, "unknown stream\n")
        else:
            response = proto.accept(request)
        proto.send_response(response)
        record.status = response.status_code
        self._flush(writer, proto)
        if response.status_code != 101 or streams is None:
            await writer.drain()
            writer.close()
            return
        conn = _WsConn(self._next_conn, writer, proto, combined=parts.path == "/stream")
        self._next_conn += 1
        for stream in streams:
            self._subscribe(conn, stream)
        self._conns[conn.conn_id] = conn
        with self._cond:
            self._ws_total += 1
            self._cond.notify_all()
        try:
            while conn.alive and proto.state is not State.CLOSED:
                data = await reader.read(65536)
                if not data:
                    proto.receive_eof()
                    break
                proto.receive_data(data)
                for frame in proto.events_received():
                    if getattr(frame, "opcode", None) is Opcode.TEXT:
                        self._on_ws_text(conn, bytes(frame.data))  # type: ignore[union-attr]
                self._flush(writer, proto)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            conn.alive = False
            self._conns.pop(conn.conn_id, None)
            if not writer.transport.is_closing():
                self._flush(writer, proto)
                writer.close()

    def _streams(self, path: str, params: Mapping[str, str]) -> list[str] | None:
        if path == "/stream":
            names = [s for s in params.get("streams", "").split("/") if s]
        elif path.startswith("/ws/"):
            names = [s for s in path[len("/ws/") :].split("/") if s]
        elif path == "/ws":
            names = []
        else:
            return None
        for name in names:
            if self._parse_stream(name) is None:
                return None
        return names

    def _parse_stream(self, name: str) -> tuple[str, str] | None:
        symbol, _, kind = name.partition("@")
        if not kind.startswith("kline_"):
            return None
        interval = kind[len("kline_") :]
        if symbol.upper() not in self.exchange.symbols or interval not in _INTERVAL_MS:
            return None
        return symbol.upper(), interval

    def _subscribe(self, conn: _WsConn, stream: str) -> None:
        parsed = self._parse_stream(stream)
        if parsed is None:
            return
        symbol, interval = parsed
        step = _INTERVAL_MS[interval]
        current = _floor(self.exchange.now_ms(), interval)
        conn.subs.append(_Sub(stream, symbol, interval, step, _prev_open(current, interval)))

    def _on_ws_text(self, conn: _WsConn, data: bytes) -> None:
        try:
            msg = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(msg, dict):
            return
        if msg.get("method") == "SUBSCRIBE":
            for stream in msg.get("params", []):
                self._subscribe(conn, str(stream))
        elif msg.get("method") == "UNSUBSCRIBE":
            gone = set(msg.get("params", []))
            conn.subs = [s for s in conn.subs if s.stream not in gone]
        self._send(conn, {"result": None, "id": msg.get("id")}, wrap=None)

    @staticmethod
    def _flush(writer: asyncio.StreamWriter, proto: ServerProtocol) -> None:
        for chunk in proto.data_to_send():
            if chunk:
                writer.write(chunk)
            elif writer.can_write_eof():
                writer.write_eof()

    def _abort(self, conn: _WsConn) -> None:
        conn.alive = False
        conn.writer.transport.abort()
        self._conns.pop(conn.conn_id, None)

    def _drop_all(self) -> int:
        conns = [c for c in self._conns.values() if c.alive]
        for conn in conns:
            self._abort(conn)
        return len(conns)

    def _send(self, conn: _WsConn, payload: Any, *, wrap: str | None) -> bool:
        if not conn.alive:
            return False
        if conn.combined and wrap is not None:
            payload = {"stream": wrap, "data": payload}
        conn.proto.send_text(orjson.dumps(payload))
        self._flush(conn.writer, conn.proto)
        self._ws_messages += 1
        if self._drop_after is not None:
            self._drop_after -= 1
            if self._drop_after <= 0:
                self._drop_after = None
                self._drop_all()
        return conn.alive

    def _publish(self) -> None:
        now = self.exchange.now_ms()
        ex = self.exchange
        for conn in list(self._conns.values()):
            for sub in conn.subs:
                nxt = _next_open(sub.last_final_open, sub.interval)
                while conn.alive:
                    step = _next_open(nxt, sub.interval) - nxt
                    if nxt + step > now:
                        break
                    if ex.has_kline(sub.symbol, sub.interval, nxt):
                        # Two in-progress updates, then the closed kline (x: true).
                        for k in (1, 2):
                            at = nxt + step * k // 3
                            self._send(conn, ex.ws_kline(sub.symbol, sub.interval, nxt, at, False),
                                       wrap=sub.stream)  # fmt: skip
                        self._send(conn, ex.ws_kline(sub.symbol, sub.interval, nxt, nxt + step,
                                                     True), wrap=sub.stream)  # fmt: skip
                    sub.last_final_open = nxt
                    nxt += step
                if conn.alive and now >= nxt and ex.has_kline(sub.symbol, sub.interval, nxt):
                    self._send(conn, ex.ws_kline(sub.symbol, sub.interval, nxt, now, False),
                               wrap=sub.stream)  # fmt: skip


def serve(host: str = "127.0.0.1", port: int = 8765, *, seed: int = 7) -> None:
    """Serve the mock on ``host:port`` in real time until interrupted (``argo mock-binance``).

    Klines follow the wall clock; websocket updates are pushed every second. The demo API key
    and secret are ``mock-api-key`` / ``mock-api-secret``.
    """
    mock = MockBinance(host=host, port=port, clock=LiveClock(), seed=seed, publish_every_s=1.0)
    with mock:
        print(f"mock Binance REST {mock.rest_url}  websocket {mock.ws_url}", flush=True)
        print("API key 'mock-api-key', secret 'mock-api-secret'; Ctrl-C stops.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
