"""Orders as a strategy asks for them, as the engine records them, and their fills."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from argo_engine.domain.enums import OrderStatus, OrderType, PositionType, Side


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderIntent:
    """What a strategy asks for; the engine turns it into an :class:`Order`.

    Attributes:
        symbol: Instrument symbol.
        side: BUY opens or increases the bucket, SELL closes or decreases it.
        quantity: Order quantity in base units (> 0).
        order_type: MARKET or LIMIT.
        price: Limit price for LIMIT orders; ignored (None) for MARKET orders.
        position_type: LONG or SHORT bucket.
        reason: Short machine-readable reason (``strategy``, ``stop_loss``...).
        message: Free text shown next to the order.
    """

    symbol: str
    side: Side
    quantity: float
    order_type: OrderType = OrderType.MARKET
    price: float | None = None
    position_type: PositionType = PositionType.LONG
    reason: str = "strategy"
    message: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Order:
    """An order as recorded in orders.parquet (one row per order, latest status).

    Attributes:
        order_id: Unique id, also the base of the venue client order id.
        symbol: Instrument symbol.
        side: BUY or SELL.
        order_type: MARKET or LIMIT.
        quantity: Ordered quantity.
        price: Limit price, or the reference price of a MARKET order.
        timestamp: Placement time (bar time, UTC).
        status: Latest status.
        strategy_name: Name of the strategy that placed it.
        position_type: LONG or SHORT.
        reason: Why the order exists or why it ended (rejection reason).
        message: Human-readable detail.
    """

    order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    quantity: float
    price: float
    timestamp: datetime
    status: OrderStatus
    strategy_name: str
    position_type: PositionType
    reason: str = "strategy"
    message: str = ""

    def with_status(
        self, status: OrderStatus, reason: str | None = None, message: str | None = None
    ) -> Order:
        """A copy in another status (and, when given, another reason and message).

        What ``dataclasses.replace`` does, without its per-call field introspection: an order
        changes status once or twice in its life, on the engine's hot path.
        """
        return Order(
            order_id=self.order_id,
            symbol=self.symbol,
            side=self.side,
            order_type=self.order_type,
            quantity=self.quantity,
            price=self.price,
            timestamp=self.timestamp,
            status=status,
            strategy_name=self.strategy_name,
            position_type=self.position_type,
            reason=self.reason if reason is None else reason,
            message=self.message if message is None else message,
        )

    def fill(
        self,
        *,
        trade_id: str,
        executed_at: datetime,
        executed_qty: float,
        executed_price: float,
        commission: float,
        commission_asset: str = "",
        base_commission: float = 0.0,
    ) -> Fill:
        """A fill of this order: the execution's figures, and the order's own on it.

        Every broker builds its fills here, so that what a trades row takes from its order
        (id, symbol, side, ordered quantity and price, placement time, position type) is said
        once.
        """
        return Fill(
            trade_id=trade_id,
            order_id=self.order_id,
            symbol=self.symbol,
            side=self.side,
            quantity=self.quantity,
            price=self.price,
            timestamp=self.timestamp,
            executed_at=executed_at,
            executed_qty=executed_qty,
            executed_price=executed_price,
            commission=commission,
            position_type=self.position_type,
            commission_asset=commission_asset,
            base_commission=base_commission,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (timestamp as ISO 8601), for saved run state."""
        return {
            "order_id": self.order_id,
            "symbol": self.symbol,
            "side": str(self.side),
            "order_type": str(self.order_type),
            "quantity": self.quantity,
            "price": self.price,
            "timestamp": self.timestamp.isoformat(),
            "status": str(self.status),
            "strategy_name": self.strategy_name,
            "position_type": str(self.position_type),
            "reason": self.reason,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Order:
        """Inverse of :meth:`to_dict` (also accepts a datetime timestamp, as rows hold)."""
        ts = data["timestamp"]
        return cls(
            order_id=str(data["order_id"]),
            symbol=str(data["symbol"]),
            side=Side(data["side"]),
            order_type=OrderType(data["order_type"]),
            quantity=float(data["quantity"]),
            price=float(data["price"]),
            timestamp=ts if isinstance(ts, datetime) else datetime.fromisoformat(str(ts)),
            status=OrderStatus(data["status"]),
            strategy_name=str(data["strategy_name"]),
            position_type=PositionType(data["position_type"]),
            reason=str(data.get("reason") or ""),
            message=str(data.get("message") or ""),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Fill:
    """One execution of an order, one row of trades.parquet.

    Attributes:
        trade_id: Unique id of this fill (dedupe key across restarts).
        order_id: Id of the filled order.
        symbol: Instrument symbol.
        side: BUY or SELL.
        quantity: Ordered quantity.
        price: Order price.
        timestamp: Order placement time (UTC).
        executed_at: Execution time (UTC).
        executed_qty: Filled quantity.
        executed_price: Fill price.
        commission: Fee in quote currency (its whole value, ``base_commission`` included).
        pnl: Realized PnL booked by this fill (SELL fills only, fees included).
        position_type: LONG or SHORT.
        commission_asset: Asset the venue charged the fee in.
        base_commission: The fee when the venue took it out of the traded (base) asset, in
            base units; 0 otherwise. A BUY then delivers ``executed_qty - base_commission``
            and a SELL costs ``executed_qty + base_commission`` of the base asset.
    """

    trade_id: str
    order_id: str
    symbol: str
    side: Side
    quantity: float
    price: float
    timestamp: datetime
    executed_at: datetime
    executed_qty: float
    executed_price: float
    commission: float
    position_type: PositionType
    pnl: float = 0.0
    commission_asset: str = field(default="")
    base_commission: float = 0.0

    def with_pnl(self, pnl: float) -> Fill:
        """A copy with the realized PnL the engine's ledger booked (as Order.with_status)."""
        return Fill(
            trade_id=self.trade_id,
            order_id=self.order_id,
            symbol=self.symbol,
            side=self.side,
            quantity=self.quantity,
            price=self.price,
            timestamp=self.timestamp,
            executed_at=self.executed_at,
            executed_qty=self.executed_qty,
            executed_price=self.executed_price,
            commission=self.commission,
            position_type=self.position_type,
            pnl=pnl,
            commission_asset=self.commission_asset,
            base_commission=self.base_commission,
        )
