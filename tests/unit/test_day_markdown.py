"""The per-day Prefect artifact shows every figure of the day's stats.yaml blocks it lists."""

from __future__ import annotations

from pathlib import Path

from argo_engine.reporting import day_markdown


def _block(realized: float, unmatched: float) -> dict[str, object]:
    return {
        "trade_result": {"number_of_trades": 2, "unmatched_qty": unmatched},
        "trade_pnl": {"realized_pnl": realized, "unrealized_pnl": 0.0, "total_pnl": realized},
        "total_fees": 0.25,
    }


def test_unmatched_sell_quantity_is_shown_daily_and_cumulative(tmp_path: Path) -> None:
    summary = {
        "date": "2025-10-02",
        "run_id": "run_1",
        "folder": str(tmp_path),
        "daily": _block(12.5, 0.004),
        "cumulative": _block(20.0, 0.014),
    }
    rows = {
        line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:4]]
        for line in day_markdown(summary, "s1").splitlines()
        if line.startswith("| ") and not line.startswith("| figure")
    }
    assert rows["unmatched SELL qty"] == ["0.004", "0.014"]
    assert rows["realized PnL"] == ["12.5000", "20.0000"]
