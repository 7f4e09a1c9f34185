"""Engine callbacks: optional hooks fired by the engine, with argo's error semantics.

A callback's error is logged and reported through ``on_error`` but never stops trading,
except ``on_engine_start`` and ``on_market_data``, whose errors stop the run (as in argo).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from argo_engine.domain.enums import EngineStatus, ProviderStatus
from argo_engine.domain.market import Bar
from argo_engine.domain.orders import Fill, Order


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What ``on_engine_start`` receives.

    Attributes:
        session_id: Logical session id (spans days and restarts).
        run_id: ``run_N`` of this engine start.
        run_number: N.
        symbols: Traded symbols.
        interval: Bar interval.
        strategy: Strategy name.
        data_output: Root of the run folders.
        run_folder: Folder of the current trading date.
    """

    session_id: str
    run_id: str
    run_number: int
    symbols: tuple[str, ...]
    interval: str
    strategy: str
    data_output: str
    run_folder: str


@dataclass(frozen=True, slots=True)
class EngineCallbacks:
    """All optional engine callbacks (DESIGN.md, Callbacks)."""

    on_engine_start: Callable[[SessionInfo], object] | None = None
    on_engine_stop: Callable[[BaseException | None], object] | None = None
    on_market_data: Callable[[str, Bar], object] | None = None
    on_order_placed: Callable[[Order], object] | None = None
    on_order_filled: Callable[[Fill], object] | None = None
    on_stats_update: Callable[[Mapping[str, Any]], object] | None = None
    on_status_update: Callable[[EngineStatus], object] | None = None
    on_error: Callable[[BaseException], object] | None = None
    on_strategy_error: Callable[[Bar, BaseException], object] | None = None
    on_prefetch_progress: Callable[[str, int, int], object] | None = None
    on_provider_status_change: Callable[[Mapping[str, ProviderStatus]], object] | None = None
    on_day_closed: Callable[[date, Mapping[str, Any]], object] | None = None

    def merged(self, other: EngineCallbacks) -> EngineCallbacks:
        """Callbacks calling both ``self``'s and ``other``'s hook where both are set."""
        values: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            first, second = getattr(self, name), getattr(other, name)
            if first is None or second is None:
                values[name] = first or second
            else:
                values[name] = _chain(first, second)
        return EngineCallbacks(**values)


def _chain(first: Callable[..., object], second: Callable[..., object]) -> Callable[..., object]:
    def both(*args: Any) -> None:
        first(*args)
        second(*args)

    return both
