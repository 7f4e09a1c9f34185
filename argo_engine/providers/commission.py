"""Commission models of the paper broker (argo's: zero, binance-style rate, per share)."""

from __future__ import annotations

from typing import Protocol

from argo_engine.settings import BrokerSettings


class CommissionModel(Protocol):
    """Fee of one fill in quote currency."""

    def fee(self, *, quantity: float, price: float) -> float:
        """Fee for ``quantity`` at ``price``."""
        ...


class ZeroCommission:
    """No fees."""

    def fee(self, *, quantity: float, price: float) -> float:
        """Always 0."""
        return 0.0


class FixedRateCommission:
    """A rate of the notional (Binance spot: 0.1%).

    Args:
        rate: Fraction of |quantity| x |price|.
    """

    def __init__(self, rate: float = 0.001) -> None:
        self.rate = rate

    def fee(self, *, quantity: float, price: float) -> float:
        """Rate x |qty| x |price|."""
        return self.rate * abs(quantity) * abs(price)


class PerShareCommission:
    """A fee per unit with a minimum per order (Interactive Brokers style).

    Args:
        per_unit: Fee per unit.
        minimum: Minimum fee per fill.
    """

    def __init__(self, per_unit: float = 0.005, minimum: float = 1.0) -> None:
        self.per_unit = per_unit
        self.minimum = minimum

    def fee(self, *, quantity: float, price: float) -> float:
        """max(minimum, per_unit x |qty|)."""
        return max(self.minimum, self.per_unit * abs(quantity))


def commission_from_settings(settings: BrokerSettings) -> CommissionModel:
    """The commission model named by the broker settings."""
    if settings.commission == "zero":
        return ZeroCommission()
    if settings.commission == "per_share":
        return PerShareCommission(settings.per_share_fee, settings.per_share_minimum)
    return FixedRateCommission(settings.commission_rate)
