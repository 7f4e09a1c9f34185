"""Human-readable renderings of stats (markdown for Prefect artifacts, tables for CLIs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

ROWS = (
    ("trades", ("trade_result", "number_of_trades"), "{:d}"),
    ("winning", ("trade_result", "number_of_winning_trades"), "{:d}"),
    ("losing", ("trade_result", "number_of_losing_trades"), "{:d}"),
    ("win rate", ("trade_result", "win_rate"), "{:.2%}"),
    ("max drawdown", ("trade_result", "max_drawdown"), "{:.2%}"),
    ("realized PnL", ("trade_pnl", "realized_pnl"), "{:.4f}"),
    ("unrealized PnL", ("trade_pnl", "unrealized_pnl"), "{:.4f}"),
    ("total PnL", ("trade_pnl", "total_pnl"), "{:.4f}"),
    ("fees", ("total_fees",), "{:.4f}"),
    # A SELL beyond the open lots (coins held before the session): not in the PnL above.
    ("unmatched SELL qty", ("trade_result", "unmatched_qty"), "{:g}"),
)


def _get(block: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = block
    for key in path:
        value = value.get(key, 0) if isinstance(value, dict) else 0
    return value


def day_markdown(summary: dict[str, Any], session_id: str) -> str:
    """Markdown table of a day's daily and cumulative stats, with the run folder's path."""
    folder = Path(summary["folder"]).resolve()
    lines = [
        f"# {summary['date']} {summary['run_id']} (session `{session_id}`)",
        "",
        f"Run folder: `{folder}` (on the worker's machine)",
        "",
        "| figure | daily | cumulative |",
        "|---|---:|---:|",
    ]
    for label, path, fmt in ROWS:
        daily = _get(summary.get("daily", {}), path)
        cumulative = _get(summary.get("cumulative", {}), path)
        lines.append(f"| {label} | {fmt.format(daily)} | {fmt.format(cumulative)} |")
    if summary.get("problems"):
        lines += ["", "**Integrity problems:**", *[f"- {p}" for p in summary["problems"]]]
    return "\n".join(lines) + "\n"


def trades_table(folder: Path) -> list[dict[str, Any]]:
    """The day's trades as JSON-friendly rows (for a Prefect table artifact)."""
    path = folder / "trades.parquet"
    if not path.exists():
        return []
    con = duckdb.connect()
    try:
        rel = con.execute(
            "SELECT executed_at::VARCHAR AS executed_at, symbol, side, position_type, "
            "executed_qty, executed_price, commission, pnl, order_id "
            "FROM read_parquet(?) ORDER BY executed_at",
            [str(path)],
        )
        cols = [d[0] for d in rel.description]
        return [dict(zip(cols, row, strict=True)) for row in rel.fetchall()]
    finally:
        con.close()
