"""A self-contained HTML report of a session: inline SVG charts, no scripts, no network."""

from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path
from typing import Any

from argo_engine.errors import ConfigurationError
from argo_engine.tools.catalog import connect, session_stats

W, H, PAD = 900, 260, 40


def _scale(values: list[float], lo: float, hi: float, size: float, invert: bool) -> list[float]:
    span = (hi - lo) or 1.0
    out = [(v - lo) / span * (size - 2 * PAD) + PAD for v in values]
    return [size - v for v in out] if invert else out


def _line_chart(title: str, xs: list[float], series: list[tuple[str, list[float], str]],
                marks: list[tuple[float, float, str, str]] | None = None) -> str:  # fmt: skip
    all_y = [y for _, ys, _ in series for y in ys] + [m[1] for m in marks or []]
    if not xs or not all_y:
        return f'<svg class="chart" width="{W}" height="60"><text x="10" y="30">{html.escape(title)}: no data</text></svg>'  # noqa: E501
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(all_y), max(all_y)
    px = _scale(xs, x0, x1, W, invert=False)
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="{PAD}" y="20" font-size="14">{html.escape(title)}</text>',
        f'<text x="4" y="{PAD}" font-size="10">{y1:.2f}</text>',
        f'<text x="4" y="{H - PAD}" font-size="10">{y0:.2f}</text>',
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#999"/>',
    ]
    for name, ys, color in series:
        py = _scale(ys, y0, y1, H, invert=True)
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(px, py, strict=True))
        parts.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="1.5" '
            f'points="{points}"><title>{html.escape(name)}</title></polyline>'
        )
    for mx, my, color, label in marks or []:
        (sx,) = _scale([mx], x0, x1, W, invert=False)
        (sy,) = _scale([my], y0, y1, H, invert=True)
        parts.append(f'<circle cx="{sx:.1f}" cy="{sy:.1f}" r="4" fill="{html.escape(color)}">'
                     f"<title>{html.escape(label)}</title></circle>")  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.4f}"
    return str(v)


def _ts(t: datetime) -> float:
    return t.timestamp()


EQUITY_TITLE = "Equity (initial capital + realized, last point + unrealized)"


def _equity(
    trades: list[tuple[Any, ...]], initial_capital: float, unrealized: float
) -> tuple[list[float], list[float], list[float]]:
    if not trades:
        return [], [], []
    times, equity = [_ts(trades[0][0])], [initial_capital]
    realized = 0.0
    for row in trades:
        realized += float(row[6])
        times.append(_ts(row[0]))
        equity.append(initial_capital + realized)
    times.append(times[-1])
    equity.append(equity[-1] + unrealized)
    peak, drawdown = float("-inf"), []
    for value in equity:
        peak = max(peak, value)
        drawdown.append(value - peak)
    return times, equity, drawdown


def equity_svg(data_output: Path, session_id: str, initial_capital: float = 100_000.0) -> str:
    """The session's equity chart alone, as an SVG document (for Prefect artifacts)."""
    con = connect(data_output)
    try:
        trades = con.execute(
            "SELECT executed_at, symbol, side, executed_qty, executed_price, commission, pnl "
            "FROM trades WHERE session_id = ? ORDER BY executed_at, trade_id",
            [session_id],
        ).fetchall()
    finally:
        con.close()
    cumulative = session_stats(data_output, session_id)["cumulative"]
    unrealized = float(cumulative.get("trade_pnl", {}).get("unrealized_pnl", 0.0) or 0.0)
    times, equity, _ = _equity(trades, initial_capital, unrealized)
    return _line_chart(EQUITY_TITLE, times, [("equity", equity, "#1f77b4")])


def day_equity_svg(
    fills: list[tuple[datetime, float]], start_equity: float, unrealized: float, title: str
) -> str:
    """Equity over one trading date, from that date's fills alone (for a day's artifact).

    Costs what the day's trades cost, however long the session already is: the curve starts
    at ``start_equity`` (initial capital plus the realized PnL of the earlier dates, from the
    cumulative block of the day's stats.yaml) instead of being replayed from the first date.

    Args:
        fills: ``(executed_at, pnl)`` of the date's fills, in execution order.
        start_equity: Equity before the date's first fill.
        unrealized: Unrealized PnL at the date's close (added to the last point).
        title: Chart title.
    """
    rows = [(t, "", "", 0.0, 0.0, 0.0, pnl) for t, pnl in fills]
    times, equity, _ = _equity(rows, start_equity, unrealized)
    return _line_chart(title, times, [("equity", equity, "#1f77b4")])


def write_report(
    data_output: Path, session_id: str, out: Path, initial_capital: float = 100_000.0
) -> Path:
    """Write the HTML report of a session.

    Equity is initial capital plus realized PnL after each fill (the last point adds the
    unrealized PnL of stats.yaml); drawdown is its distance below the running peak.

    Raises:
        ConfigurationError: If the session has no run folder under ``data_output``.
    """
    con = connect(data_output)
    try:
        trades = con.execute(
            "SELECT executed_at, symbol, side, executed_qty, executed_price, commission, pnl, "
            "date, run FROM trades WHERE session_id = ? ORDER BY executed_at, trade_id",
            [session_id],
        ).fetchall()
        bars = con.execute(
            "SELECT DISTINCT ON (symbol, time) symbol, time, close FROM market_data "
            "WHERE session_id = ? ORDER BY symbol, time",
            [session_id],
        ).fetchall()
        marks = con.execute(
            "SELECT signal_symbol, signal_time, color, title, message FROM marks "
            "WHERE session_id = ? AND signal_time IS NOT NULL",
            [session_id],
        ).fetchall()
        (n_runs,) = con.execute(
            "SELECT count(*) FROM runs WHERE session_id = ?", [session_id]
        ).fetchone() or (0,)
    finally:
        con.close()
    if not n_runs:
        raise ConfigurationError(f"no run of session {session_id!r} under {data_output}")
    stats = session_stats(data_output, session_id)
    cumulative = stats["cumulative"]
    unrealized = float(cumulative.get("trade_pnl", {}).get("unrealized_pnl", 0.0) or 0.0)
    times, equity, drawdown = _equity(trades, initial_capital, unrealized)
    charts = [
        _line_chart(EQUITY_TITLE, times, [("equity", equity, "#1f77b4")]),
        _line_chart("Drawdown (currency)", times, [("drawdown", drawdown, "#d62728")]),
    ]
    by_symbol: dict[str, tuple[list[float], list[float]]] = {}
    for symbol, t, close in bars:
        xs, ys = by_symbol.setdefault(symbol, ([], []))
        xs.append(_ts(t))
        ys.append(float(close))
    closes = {(s, _ts(t)): float(c) for s, t, c in bars}
    for symbol, (xs, ys) in sorted(by_symbol.items()):
        sym_marks = [
            (_ts(t), closes.get((s, _ts(t)), ys[-1]), color or "black", f"{title} {message}")
            for s, t, color, title, message in marks
            if s == symbol
        ]
        charts.append(_line_chart(f"{symbol} close with marks", xs, [(symbol, ys, "#444")],
                                  sym_marks))  # fmt: skip
    day_rows = []
    for day in stats["days"]:
        d = day["daily"]
        res, pnl = d.get("trade_result", {}), d.get("trade_pnl", {})
        day_rows.append([day["date"], day["run"], res.get("number_of_trades", 0),
                         res.get("win_rate", 0.0), pnl.get("realized_pnl", 0.0),
                         d.get("total_fees", 0.0), res.get("max_drawdown", 0.0)])  # fmt: skip
    trade_rows = [[str(t), s, side, q, p, c, pnl, str(d), r]
                  for t, s, side, q, p, c, pnl, d, r in trades]  # fmt: skip
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>argo session {html.escape(session_id)}</title>
<style>body{{font-family:sans-serif;margin:24px}}table{{border-collapse:collapse;margin:12px 0}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:12px;text-align:right}}
.chart{{display:block;margin:12px 0;border:1px solid #eee}}</style></head>
<body><h1>Session {html.escape(session_id)}</h1>
<p>Realized PnL {float(cumulative.get("trade_pnl", {}).get("realized_pnl", 0.0)):,.4f},
unrealized {unrealized:,.4f}, trades {len(trades)}.</p>
{"".join(charts)}
<h2>Per day</h2>
{_table(["date", "run", "trades", "win rate", "realized", "fees", "max drawdown"], day_rows)}
<h2>Trades</h2>
{_table(["executed at", "symbol", "side", "qty", "price", "fee", "pnl", "date", "run"], trade_rows)}
</body></html>
"""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doc, encoding="utf-8")
    return out
