"""The Binance spot broker (testnet or live) behind the :class:`~argo_engine.ports.Broker` port.

Orders:
- MARKET and LIMIT (GTC), signed with HMAC-SHA256, timestamps corrected by the offset to
  Binance's clock. ``newClientOrderId`` is derived from our order id
  (:func:`~argo_engine.providers.binance.parsing.client_order_id`), so the venue shows our ids.
- Before sending, the quantity is floored to ``LOT_SIZE`` and the price rounded to
  ``PRICE_FILTER``; an order that still breaks a filter (or the minimum notional) is REJECTED
  locally with a reason and never sent. The reported order carries the rounded figures.
- Spot holds no SHORT positions: SHORT orders are REJECTED (``unsupported_position_type``).
- Venue refusals (``-2010`` insufficient balance, filter failures...) become REJECTED order
  updates; auth failures raise AuthenticationError; 5xx/429/network raise ProviderUnavailable.
  A submit whose answer was lost stays "in doubt" and is looked up by client id on the next
  poll, so an order the venue did accept is never forgotten (and never sent twice).

Fills come from the order response (``fills``) and later from ``myTrades``: ``on_bar`` polls
the open orders of the bar's symbol at most every ``poll_interval_s``. A poll (or submit, or
cancel) whose requests fail midway records no fill as seen, so a later poll reports it: fills
are never lost to a 5xx. Status mapping:
NEW/PARTIALLY_FILLED -> PENDING, FILLED -> FILLED, CANCELED/EXPIRED -> CANCELLED,
REJECTED -> REJECTED.

Commission: our ``commission`` column is in the quote asset. Binance charges a BUY in the base
asset it delivers (unless BNB pays fees): that fee is converted at the fill price; a fee in a
third asset (BNB) is converted with that asset's ticker price in the quote asset. The raw asset
is kept in ``Fill.commission_asset``. A base-asset fee leaves less base than bought (or takes
more than sold): its amount in base units is ``Fill.base_commission``, which the engine's
ledger deducts from the position, so that the position it books is the base the account got
and a sale of it closes it; ``positions()`` reports the real balance.

Positions are the base-asset balances of the traded pairs (LONG only; balances below the
pair's minimum quantity are dust and count as flat). ``account().cash`` is the free quote
asset. Realized/unrealized PnL are left to the engine's ledger.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import orjson
from pydantic import SecretStr

from argo_engine.clock import Clock, LiveClock
from argo_engine.domain.enums import OrderStatus, OrderType, PositionType, Side
from argo_engine.domain.market import Bar
from argo_engine.domain.orders import Fill, Order
from argo_engine.domain.positions import Position
from argo_engine.errors import AuthenticationError, ConfigurationError, ProviderUnavailable
from argo_engine.ports import Account, OrderUpdate
from argo_engine.providers.binance.client import BinanceApiError, BinanceRestClient, RetryPolicy
from argo_engine.providers.binance.filters import (
    SymbolFilters,
    format_decimal,
    parse_symbol_filters,
)
from argo_engine.providers.binance.parsing import (
    VenueFill,
    VenueOrder,
    client_order_id,
    commission_in_quote,
    map_order_status,
    parse_my_trade,
    parse_order,
)
from argo_engine.settings import ArgoSettings, validate_symbol

log = logging.getLogger(__name__)

TESTNET_URL = "https://testnet.binance.vision"
LIVE_URL = "https://api.binance.com"

_INVALID_SYMBOL = -1121
_ORDER_MISSING = -2013
_UNKNOWN_ORDER = -2011
_QTY_TOL = 1e-12
# A SELL asking for at most this much more than our fills hold is taken as "sell it all" (the
# difference is a BUY fee Binance took in the base asset).
_FEE_SLACK = 0.01


@dataclass(slots=True)
class _Tracked:
    order: Order
    client_id: str
    venue_id: int | None = None
    executed: float = 0.0
    trade_ids: set[int] = field(default_factory=set)
    in_doubt: bool = False

    @property
    def open(self) -> bool:
        return not self.order.status.is_final


class BinanceBroker:
    """Orders on Binance spot (testnet or live).

    Args:
        base_url: REST base URL (testnet ``https://testnet.binance.vision``).
        api_key: API key.
        api_secret: API secret (only used to sign).
        symbols: Pairs traded in this session (positions and account valuation).
        clock: Clock for request timestamps, poll pacing and retry waits.
        live: Real-money endpoint (name ``binance-live``) instead of the testnet.
        allow_live: Must be True when ``live`` is.
        recv_window_ms: ``recvWindow`` of signed requests.
        poll_interval_s: Minimum seconds between two order polls of one symbol.
        cache_ttl_s: How long account balances are reused between calls.
        timeout_s: HTTP timeout.
        retry: Retry policy of read-only requests (orders are never retried blindly).

    Raises:
        ConfigurationError: Missing keys, or ``live`` without ``allow_live``.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: SecretStr,
        api_secret: SecretStr,
        symbols: Sequence[str] = (),
        clock: Clock | None = None,
        live: bool = False,
        allow_live: bool = False,
        recv_window_ms: int = 5000,
        poll_interval_s: float = 5.0,
        cache_ttl_s: float = 2.0,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        if live and not allow_live:
            raise ConfigurationError(
                "binance-live trades real money: set ARGO_BROKER__ALLOW_LIVE=true to use it",
                field="broker.allow_live",
            )
        if not api_key.get_secret_value() or not api_secret.get_secret_value():
            raise ConfigurationError(
                "the Binance broker needs an API key and secret "
                "(ARGO_BROKER__API_KEY, ARGO_BROKER__API_SECRET)",
                field="broker.api_key",
            )
        self.name = "binance-live" if live else "binance-testnet"
        self.clock = clock or LiveClock()
        self.symbols = [validate_symbol(s) for s in symbols]
        self.poll_interval_s = poll_interval_s
        self.cache_ttl_s = cache_ttl_s
        self._rest = BinanceRestClient(
            base_url,
            clock=self.clock,
            api_key=api_key,
            api_secret=api_secret,
            recv_window_ms=recv_window_ms,
            retry=retry or RetryPolicy(max_attempts=3),
            timeout_s=timeout_s,
        )
        self._filters: dict[str, SymbolFilters] = {}
        self._orders: dict[str, _Tracked] = {}
        self._last_poll: dict[str, float] = {}
        self._fees = 0.0
        self._holdings: dict[str, list[float]] = {}  # symbol -> [qty, cost] of our own fills
        self._account_cache: tuple[float, dict[str, Any]] | None = None

    @classmethod
    def from_settings(cls, settings: ArgoSettings, *, clock: Clock | None = None) -> BinanceBroker:
        """Build the broker of ``settings.broker`` (kind ``binance-testnet``/``binance-live``).

        ``binance-live`` with the default (testnet) base URL goes to ``api.binance.com``; a
        testnet broker pointed at a ``*.binance.com`` host is refused.

        Raises:
            ConfigurationError: Missing keys, live without allow_live, or mismatched URL.
        """
        broker = settings.broker
        live = broker.kind == "binance-live"
        base_url = broker.base_url.rstrip("/")
        host = urlsplit(base_url).hostname or ""
        if live and base_url == TESTNET_URL:
            base_url = LIVE_URL
        elif not live and (host == "binance.com" or host.endswith(".binance.com")):
            raise ConfigurationError(
                f"broker kind binance-testnet points at the live endpoint {base_url!r}; "
                "use binance-live (with allow_live) or the testnet URL",
                field="broker.base_url",
            )
        return cls(
            base_url=base_url,
            api_key=broker.api_key,
            api_secret=broker.api_secret,
            symbols=settings.session.symbols,
            clock=clock,
            live=live,
            allow_live=broker.allow_live,
            recv_window_ms=broker.recv_window_ms,
            poll_interval_s=broker.poll_interval_s,
            timeout_s=broker.timeout_s,
        )

    def __repr__(self) -> str:
        return f"BinanceBroker(name={self.name!r}, base_url={self._rest.base_url!r})"

    # -- port --------------------------------------------------------------------------------------

    def submit(self, order: Order, bar: Bar | None) -> list[OrderUpdate]:
        """Round and send an order; return its immediate fate (fills, resting or rejected).

        Raises:
            AuthenticationError: Credentials refused.
            ProviderUnavailable: Binance unreachable; the order stays tracked and is looked
                up on the next poll.
        """
        if order.position_type is PositionType.SHORT:
            reason = "unsupported_position_type"
            return [_rejected(order, reason, "Binance spot cannot hold SHORT positions")]
        try:
            filters = self._symbol_filters(order.symbol)
        except BinanceApiError as exc:
            if exc.code != _INVALID_SYMBOL:
                raise
            return [_rejected(order, "invalid_symbol", f"Binance does not list {order.symbol}")]
        limit = order.order_type is OrderType.LIMIT
        reference = bar.close if bar is not None else order.price
        quantity = order.quantity
        held = self._holdings.get(order.symbol)
        if (
            order.side is Side.SELL
            and held is not None
            and held[0] < quantity <= held[0] * (1 + _FEE_SLACK)
        ):
            # Binance took a BUY's fee in the asset bought, so our fills hold a little less
            # than was bought: selling "what was bought" sells what is held (then floored to
            # the lot step), instead of failing or eating into other funds of the account.
            quantity = held[0]
        check = filters.check(
            order_type=str(order.order_type),
            quantity=quantity,
            price=order.price if limit else None,
            reference_price=reference if not limit else None,
        )
        if not check.ok:
            assert check.reason is not None
            return [_rejected(order, check.reason, check.message)]
        sent = replace(
            order,
            quantity=float(check.quantity),
            price=float(check.price) if check.price is not None else order.price,
        )
        client_id = client_order_id(order.order_id)
        params: list[tuple[str, Any]] = [
            ("symbol", order.symbol),
            ("side", str(order.side)),
            ("type", str(order.order_type)),
            ("quantity", format_decimal(check.quantity)),
            ("newClientOrderId", client_id),
            ("newOrderRespType", "FULL"),
        ]
        if check.price is not None:
            params[3:3] = [("timeInForce", "GTC"), ("price", format_decimal(check.price))]
        tracked = _Tracked(order=sent, client_id=client_id, in_doubt=True)
        self._orders[order.order_id] = tracked
        try:
            body = self._rest.request("POST", "/api/v3/order", params, signed=True, retry=False)
        except BinanceApiError as exc:
            del self._orders[order.order_id]
            detail = f"{exc.venue_message or 'no message'} (code {exc.code})"
            return [
                _rejected(sent, _rejection_reason(exc), f"Binance rejected the order: {detail}")
            ]
        except ProviderUnavailable:
            log.warning(
                "order %s may or may not have reached Binance; it is looked up on the next poll",
                order.order_id,
            )
            raise
        except (AuthenticationError, ConfigurationError):
            del self._orders[order.order_id]
            raise
        venue = parse_order(body)
        # Valuing the fees may ask Binance again; should that fail, the order stays in doubt
        # and the next poll reports it with its fills.
        priced = self._priced(tracked, venue.fills)
        tracked.in_doubt = False
        tracked.venue_id = venue.order_id
        update = self._update(tracked, venue, priced)
        return [update if update is not None else OrderUpdate(tracked.order)]

    def cancel(self, order_id: str) -> list[OrderUpdate]:
        """Cancel an open order; return its final state (with fills made before the cancel)."""
        tracked = self._orders.get(order_id)
        if tracked is None or not tracked.open:
            return []
        symbol = tracked.order.symbol
        try:
            body = self._rest.request(
                "DELETE",
                "/api/v3/order",
                [("symbol", symbol), ("origClientOrderId", tracked.client_id)],
                signed=True,
                retry=False,
            )
            venue = parse_order(body)
        except BinanceApiError as exc:
            if exc.code != _UNKNOWN_ORDER:
                raise
            # Already filled, cancelled or expired at the venue: report what it became.
            found = self._query_order(tracked)
            if found is None:
                return []
            venue = found
        update = self._update(
            tracked, venue, self._priced(tracked, self._new_trades(tracked, venue))
        )
        return [update] if update is not None else []

    def on_bar(self, bar: Bar) -> list[OrderUpdate]:
        """Poll the open orders of ``bar.symbol`` (at most every ``poll_interval_s``)."""
        if not any(t.open and t.order.symbol == bar.symbol for t in self._orders.values()):
            return []
        now = self.clock.monotonic()
        last = self._last_poll.get(bar.symbol)
        if last is not None and now - last < self.poll_interval_s:
            return []
        self._last_poll[bar.symbol] = now
        return self.poll(bar.symbol)

    def poll(self, symbol: str) -> list[OrderUpdate]:
        """Ask Binance about our open orders of ``symbol`` now; return what changed.

        Every request is answered before anything is recorded: a poll that fails midway
        (ProviderUnavailable) changes nothing, and the next one reports all of it. Recording
        an order's new fills as seen and then failing on the next order would lose them.
        """
        rows = self._rest.get("/api/v3/openOrders", [("symbol", symbol)], signed=True)
        on_book = {v.client_order_id: v for v in (parse_order(r) for r in rows)}
        answers: list[tuple[_Tracked, VenueOrder, list[tuple[VenueFill, float]]]] = []
        never_received: list[str] = []
        for order_id, tracked in self._orders.items():
            if not tracked.open or tracked.order.symbol != symbol:
                continue
            venue = on_book.get(tracked.client_id)
            if venue is None:
                venue = self._query_order(tracked)
                if venue is None:
                    if tracked.in_doubt:
                        never_received.append(order_id)
                    continue
            answers.append(
                (tracked, venue, self._priced(tracked, self._new_trades(tracked, venue)))
            )
        for order_id in never_received:
            # The lost submit never reached Binance; the engine already failed it.
            del self._orders[order_id]
        updates: list[OrderUpdate] = []
        for tracked, venue, priced in answers:
            tracked.in_doubt = False
            tracked.venue_id = venue.order_id
            update = self._update(tracked, venue, priced)
            if update is not None:
                updates.append(update)
        return updates

    def recover(self, orders: Sequence[Order]) -> list[OrderUpdate]:
        """Resolve orders recorded before a crash whose outcome this broker does not know.

        Each is looked up by its client order id: an order Binance has is tracked again and
        reported with its status and fills (the engine skips fills it already journaled, by
        trade id); an order Binance never received is FAILED and never sent again.
        """
        updates: list[OrderUpdate] = []
        for order in orders:
            tracked = _Tracked(order=order, client_id=client_order_id(order.order_id))
            venue = self._query_order(tracked)
            if venue is None:
                updates.append(
                    OrderUpdate(
                        order.with_status(
                            OrderStatus.FAILED,
                            reason="lost_on_restart",
                            message="Binance never received this order; it was not sent again",
                        )
                    )
                )
                continue
            priced = self._priced(tracked, self._new_trades(tracked, venue))
            tracked.venue_id = venue.order_id
            self._orders[order.order_id] = tracked
            update = self._update(tracked, venue, priced)
            # Always answer for every order: an unchanged PENDING one is open at the venue.
            updates.append(update if update is not None else OrderUpdate(tracked.order))
        return updates

    def open_orders(self) -> list[Order]:
        """Our orders whose final state has not been reported yet."""
        return [t.order for t in self._orders.values() if t.open]

    def positions(self) -> list[Position]:
        """LONG positions: base-asset balances of the traded pairs (dust excluded)."""
        balances = self._balances()
        prices: dict[str, float] | None = None
        out: list[Position] = []
        for symbol in self._traded_symbols():
            filters = self._symbol_filters(symbol)
            free, locked = balances.get(filters.base_asset, (0.0, 0.0))
            qty = free + locked
            if qty <= 0 or qty < float(filters.min_qty):
                continue
            held = self._holdings.get(symbol)
            if held is not None and held[0] > _QTY_TOL:
                average = held[1] / held[0]
            else:
                prices = prices if prices is not None else self._prices()
                average = prices.get(symbol, 0.0)
            out.append(
                Position(
                    symbol=symbol,
                    position_type=PositionType.LONG,
                    quantity=qty,
                    average_price=average,
                )
            )
        return out

    def account(self) -> Account:
        """Balances; cash = free quote asset; equity includes base assets at ticker prices."""
        balances = self._balances()
        symbols = self._traded_symbols()
        quote = self._symbol_filters(symbols[0]).quote_asset if symbols else "USDT"
        cash_free, cash_locked = balances.get(quote, (0.0, 0.0))
        equity = cash_free + cash_locked
        prices = self._prices() if symbols else {}
        seen: set[str] = set()
        for symbol in symbols:
            filters = self._symbol_filters(symbol)
            if filters.quote_asset != quote or filters.base_asset in seen:
                continue
            seen.add(filters.base_asset)
            free, locked = balances.get(filters.base_asset, (0.0, 0.0))
            equity += (free + locked) * prices.get(symbol, 0.0)
        return Account(
            cash=cash_free,
            equity=equity,
            total_fees=self._fees,
            balances={a: f + lk for a, (f, lk) in balances.items() if f + lk > 0},
        )

    def check_connection(self) -> None:
        """Make one signed request (account) so bad keys fail before trading starts.

        Raises:
            AuthenticationError: Credentials refused.
            ProviderUnavailable: Binance unreachable.
        """
        self._account_cache = None
        self._balances()

    def save_state(self) -> dict[str, Any]:
        """Client order id map and progress of every order not yet final, fees, holdings."""
        return {
            "orders": [
                {
                    "order": Order.to_dict(t.order),
                    "client_id": t.client_id,
                    "venue_id": t.venue_id,
                    "executed": t.executed,
                    "trade_ids": sorted(t.trade_ids),
                    "in_doubt": t.in_doubt,
                }
                for t in self._orders.values()
                if t.open
            ],
            "fees": self._fees,
            "holdings": {s: list(v) for s, v in self._holdings.items()},
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`save_state` output; restored open orders are polled on the next bar."""
        self._orders = {}
        for item in state.get("orders", []):
            order = Order.from_dict(item["order"])
            self._orders[order.order_id] = _Tracked(
                order=order,
                client_id=str(item["client_id"]),
                venue_id=int(item["venue_id"]) if item.get("venue_id") is not None else None,
                executed=float(item.get("executed", 0.0)),
                trade_ids={int(x) for x in item.get("trade_ids", [])},
                in_doubt=bool(item.get("in_doubt", False)),
            )
        self._fees = float(state.get("fees", 0.0))
        self._holdings = {
            str(s): [float(v[0]), float(v[1])] for s, v in state.get("holdings", {}).items()
        }
        self._last_poll.clear()

    def close(self) -> None:
        """Close the HTTP connections."""
        self._rest.close()

    # -- internals ---------------------------------------------------------------------------------

    def _symbol_filters(self, symbol: str) -> SymbolFilters:
        cached = self._filters.get(symbol)
        if cached is None:
            body = self._rest.get("/api/v3/exchangeInfo", [("symbol", symbol)])
            entries = [e for e in body.get("symbols", []) if e.get("symbol") == symbol]
            if not entries:
                raise BinanceApiError(
                    f"Binance exchangeInfo has no entry for {symbol}",
                    code=_INVALID_SYMBOL,
                    status=400,
                    venue_message="Invalid symbol.",
                )
            cached = self._filters[symbol] = parse_symbol_filters(entries[0])
        return cached

    def _traded_symbols(self) -> list[str]:
        symbols = list(self.symbols)
        for tracked in self._orders.values():
            if tracked.order.symbol not in symbols:
                symbols.append(tracked.order.symbol)
        for symbol in self._holdings:
            if symbol not in symbols:
                symbols.append(symbol)
        return symbols

    def _balances(self) -> dict[str, tuple[float, float]]:
        now = self.clock.monotonic()
        if self._account_cache is None or now - self._account_cache[0] > self.cache_ttl_s:
            body = self._rest.get("/api/v3/account", signed=True)
            self._account_cache = (now, body)
        body = self._account_cache[1]
        return {
            str(b["asset"]): (float(b["free"]), float(b["locked"]))
            for b in body.get("balances", [])
        }

    def _prices(self) -> dict[str, float]:
        symbols = self._traded_symbols()
        if not symbols:
            return {}
        rows = self._rest.get("/api/v3/ticker/price", [("symbols", orjson.dumps(symbols).decode())])
        return {str(r["symbol"]): float(r["price"]) for r in rows}

    def _asset_price(self, asset: str, quote: str) -> float | None:
        try:
            body = self._rest.get("/api/v3/ticker/price", [("symbol", f"{asset}{quote}")])
            return float(body["price"])
        except BinanceApiError:
            log.warning(
                "no %s%s price to value a commission paid in %s; counted as 0", asset, quote, asset
            )
            return None

    def _query_order(self, tracked: _Tracked) -> VenueOrder | None:
        try:
            body = self._rest.get(
                "/api/v3/order",
                [("symbol", tracked.order.symbol), ("origClientOrderId", tracked.client_id)],
                signed=True,
            )
        except BinanceApiError as exc:
            if exc.code == _ORDER_MISSING:
                return None
            raise
        return parse_order(body)

    def _new_trades(self, tracked: _Tracked, venue: VenueOrder) -> list[VenueFill]:
        if venue.executed_qty <= tracked.executed + _QTY_TOL:
            return []
        rows = self._rest.get(
            "/api/v3/myTrades",
            [("symbol", tracked.order.symbol), ("orderId", venue.order_id)],
            signed=True,
        )
        fills = []
        for row in rows:
            venue_order_id, fill = parse_my_trade(row)
            if venue_order_id == venue.order_id:
                fills.append(fill)
        return fills

    def _priced(
        self, tracked: _Tracked, venue_fills: Sequence[VenueFill]
    ) -> list[tuple[VenueFill, float]]:
        """The executions not reported yet, in trade order, each with its fee in the quote asset.

        It may ask Binance (the symbol's filters, a third asset's price) and changes nothing,
        so that a failed request leaves the executions to be reported later, not lost.
        """
        new: dict[int, VenueFill] = {}
        for vf in sorted(venue_fills, key=lambda f: f.trade_id):
            if vf.trade_id not in tracked.trade_ids:
                new.setdefault(vf.trade_id, vf)
        if not new:
            return []
        filters = self._symbol_filters(tracked.order.symbol)
        priced: list[tuple[VenueFill, float]] = []
        for vf in new.values():
            asset_price = None
            if vf.commission and vf.commission_asset not in (
                "",
                filters.base_asset,
                filters.quote_asset,
            ):
                asset_price = self._asset_price(vf.commission_asset, filters.quote_asset)
            commission = commission_in_quote(
                vf,
                base_asset=filters.base_asset,
                quote_asset=filters.quote_asset,
                asset_price=asset_price,
            )
            priced.append((vf, commission))
        return priced

    def _update(
        self, tracked: _Tracked, venue: VenueOrder, priced: Sequence[tuple[VenueFill, float]]
    ) -> OrderUpdate | None:
        """Record what Binance answered about an order (no request); None if nothing changed.

        Args:
            tracked: The order.
            venue: Its state at Binance.
            priced: Its new executions with their fees (:meth:`_priced`).
        """
        fills: list[Fill] = []
        for vf, commission in priced:
            tracked.trade_ids.add(vf.trade_id)
            tracked.executed += vf.qty
            fills.append(self._fill(tracked.order, vf, commission))
        status = map_order_status(venue.status)
        order = tracked.order
        if status is not order.status:
            if status is OrderStatus.CANCELLED:
                expired = venue.status.startswith("EXPIRED")
                order = order.with_status(
                    status,
                    reason="expired" if expired else "cancelled",
                    message=f"Binance status {venue.status}; executed "
                    f"{_qty_text(venue.executed_qty)} of "
                    f"{_qty_text(venue.orig_qty)}",
                )
            elif status is OrderStatus.REJECTED:
                order = order.with_status(
                    status,
                    reason="rejected_by_venue",
                    message=f"Binance status {venue.status}",
                )
            else:
                order = order.with_status(status)
        if not fills and order == tracked.order:
            return None
        tracked.order = order
        return OrderUpdate(order, tuple(fills))

    def _fill(self, order: Order, vf: VenueFill, commission: float) -> Fill:
        # The filters are cached: _priced fetched them.
        filters = self._symbol_filters(order.symbol)
        self._fees += commission
        self._account_cache = None
        held = self._holdings.setdefault(order.symbol, [0.0, 0.0])
        # A fee in the base asset is base the account does not get (BUY) or gives on top of
        # what it sold (SELL).
        base_fee = vf.commission if vf.commission_asset == filters.base_asset else 0.0
        if order.side is Side.BUY:
            held[0] += vf.qty - base_fee
            held[1] += vf.qty * vf.price + (commission if base_fee == 0.0 else 0.0)
        elif held[0] > _QTY_TOL:
            gone = vf.qty + base_fee
            ratio = min(1.0, gone / held[0])
            held[1] -= held[1] * ratio
            held[0] = max(0.0, held[0] - gone)
        return order.fill(
            trade_id=f"binance-{order.symbol}-{vf.trade_id}",
            executed_at=vf.time or self.clock.now(),
            executed_qty=vf.qty,
            executed_price=vf.price,
            commission=commission,
            commission_asset=vf.commission_asset,
            base_commission=base_fee,
        )


def _qty_text(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:.8f}".rstrip("0").rstrip(".") or "0"


def _rejection_reason(exc: BinanceApiError) -> str:
    message = exc.venue_message.lower()
    if exc.code == -2010 and "insufficient balance" in message:
        return "insufficient_balance"
    if exc.code == -1013:
        return "filter_failure"
    if exc.code == _INVALID_SYMBOL:
        return "invalid_symbol"
    return "rejected_by_venue"


def _rejected(order: Order, reason: str, message: str) -> OrderUpdate:
    return OrderUpdate(order.with_status(OrderStatus.REJECTED, reason, message))
