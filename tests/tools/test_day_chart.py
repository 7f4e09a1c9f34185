"""The day's equity chart of the Prefect artifact: drawn from the day's fills alone."""

from __future__ import annotations

from datetime import UTC, datetime

from argo_engine.tools.report import day_equity_svg


def test_day_chart_starts_at_the_equity_before_the_day_and_ends_with_unrealized() -> None:
    fills = [
        (datetime(2025, 10, 2, 1, tzinfo=UTC), 10.0),
        (datetime(2025, 10, 2, 2, tzinfo=UTC), -5.0),
    ]
    svg = day_equity_svg(fills, start_equity=1000.0, unrealized=2.0, title="Equity on 2025-10-02")
    # Points 1000 -> 1010 -> 1005 -> 1007: the axis labels are the extremes.
    assert ">1010.00<" in svg
    assert ">1000.00<" in svg
    assert svg.count("<polyline") == 1


def test_day_without_fills_draws_an_empty_chart() -> None:
    svg = day_equity_svg([], start_equity=1000.0, unrealized=0.0, title="Equity on 2025-10-02")
    assert "no data" in svg
