"""A session's report: one self-contained HTML file (plotly charts, inlined; opens offline).

Every figure it shows comes from the session's stats.yaml files or is checked against them:

- the summary is the cumulative block of the session's latest stats.yaml;
- one row per trading date: the daily block of the date's latest run, which covers every run
  of the session on that date (DESIGN.md, Statistics), so the rows add up to the summary;
- equity and drawdown are the per-bar series the statistics sample, replayed from the stored
  bars and fills by the class that writes stats.yaml (:mod:`argo_engine.tools.equity`); the
  page says so, or names each figure the replay does not reproduce.

plotly is imported when a report is written, never with the package: the CLI starts without it.
The SVG charts at the end are for Prefect artifacts, whose markdown cannot run scripts.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from argo_engine.domain.ledger import PnlMethod
from argo_engine.engine.rebuild import bar_from_row, fill_from_row
from argo_engine.errors import ConfigurationError
from argo_engine.persistence.files import load_yaml
from argo_engine.persistence.schema import STATS_FILE
from argo_engine.tools.catalog import RunFolder, connect, run_folders
from argo_engine.tools.equity import (
    EquityCurve,
    downsample,
    recorded_capital_and_method,
    replay_equity,
)

W, H, PAD = 900, 260, 40
# Points per chart line at most: a long session of 1-minute bars has hundreds of thousands;
# the kept ones include every bucket's extremes (the drawdown's trough among them).
MAX_POINTS = 8000
# Differences below half a cent are float noise between sums taken in different orders.
CENT = 0.005


@dataclass(frozen=True, slots=True)
class DayRow:
    """One trading date of a session: the daily block of the date's latest run.

    Attributes:
        date: Trading date (``YYYY-MM-DD``).
        runs: The session's runs on that date, in run order.
        daily: The daily block (covers every run of the session on that date).
    """

    date: str
    runs: list[str]
    daily: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SessionReport:
    """What a session's report shows.

    Attributes:
        session_id: Session id.
        runs: The session's run folders.
        latest: The session's latest stats.yaml (its top level is the cumulative block).
        days: One row per trading date, in date order.
        curve: Per-bar equity replayed from the files.
        problems: Figures the replay or the rows do not reproduce (empty when all agree).
    """

    session_id: str
    runs: list[RunFolder]
    latest: dict[str, Any]
    days: list[DayRow]
    curve: EquityCurve
    problems: list[str] = field(default_factory=list)

    @property
    def cumulative(self) -> dict[str, Any]:
        """The cumulative block of the latest stats.yaml."""
        block = self.latest.get("cumulative", {})
        return block if isinstance(block, dict) else {}

    def day_totals(self) -> dict[str, float]:
        """Sums of the per-day rows (trades, wins, losses, realized, unrealized, total, fees)."""
        sums = dict.fromkeys(
            ("trades", "wins", "losses", "realized_pnl", "unrealized_pnl", "total_pnl", "fees"),
            0.0,
        )
        for day in self.days:
            res, pnl = _res(day.daily), _pnl(day.daily)
            sums["trades"] += _num(res.get("number_of_trades"))
            sums["wins"] += _num(res.get("number_of_winning_trades"))
            sums["losses"] += _num(res.get("number_of_losing_trades"))
            sums["realized_pnl"] += _num(pnl.get("realized_pnl"))
            sums["unrealized_pnl"] += _num(pnl.get("unrealized_pnl"))
            sums["total_pnl"] += _num(pnl.get("total_pnl"))
            sums["fees"] += _num(day.daily.get("total_fees"))
        return sums


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _res(block: dict[str, Any]) -> dict[str, Any]:
    value = block.get("trade_result", {})
    return value if isinstance(value, dict) else {}


def _pnl(block: dict[str, Any]) -> dict[str, Any]:
    value = block.get("trade_pnl", {})
    return value if isinstance(value, dict) else {}


def _read_stats(folder: Path) -> dict[str, Any]:
    try:
        data = load_yaml((folder / STATS_FILE).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _updated(stats: dict[str, Any]) -> datetime:
    """When a stats.yaml was last written (its ``last_updated``), to order runs of a date."""
    value = stats.get("last_updated")
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            value = None
    if not isinstance(value, datetime):
        return datetime.min.replace(tzinfo=UTC)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def load_session_report(
    data_output: Path, session_id: str, initial_capital: float = 100_000.0
) -> SessionReport:
    """Gather what a session's report shows, and check the figures against each other.

    Args:
        data_output: Root of the run folders.
        session_id: Session to report.
        initial_capital: Equity the session started with, used only when no run folder holds
            a saved engine state (which records the capital and PnL method the run used).

    Raises:
        ConfigurationError: If the session has no run folder under ``data_output``.
    """
    runs = [r for r in run_folders(data_output) if r.session_id == session_id]
    if not runs:
        raise ConfigurationError(f"no run of session {session_id!r} under {data_output}")
    # A date's latest run wrote the date's final daily block: it covers the earlier runs of
    # the date too, so one row per date (never one per run, which counts them twice).
    by_date: dict[str, list[tuple[RunFolder, dict[str, Any]]]] = {}
    for run in runs:
        by_date.setdefault(run.date, []).append((run, _read_stats(run.folder)))
    days: list[DayRow] = []
    latest: dict[str, Any] = {}
    for day in sorted(by_date):
        written = [(r, s) for r, s in by_date[day] if s]
        if not written:
            continue
        _, last = max(written, key=lambda rs: (_updated(rs[1]), rs[0].run_number))
        daily = last.get("daily", {})
        days.append(DayRow(day, [r.run for r, _ in by_date[day]],
                           daily if isinstance(daily, dict) else {}))  # fmt: skip
        latest = last
    capital, method = initial_capital, PnlMethod.FIFO
    for run in reversed(runs):
        recorded = recorded_capital_and_method(run.folder)
        if recorded is not None:
            capital, method = recorded
            break
    curve = _replay(data_output, session_id, capital, method)
    report = SessionReport(session_id, runs, latest, days, curve)
    return replace(report, problems=_disagreements(report))


def _replay(data_output: Path, session_id: str, capital: float, method: PnlMethod) -> EquityCurve:
    con = connect(data_output)
    try:
        # A bar or fill stored by two runs (a recovered folder, a refetched gap) counts once.
        bar_rows = con.execute(
            "SELECT DISTINCT ON (symbol, time) symbol, time, open, high, low, close, volume "
            "FROM market_data WHERE session_id = ? ORDER BY symbol, time",
            [session_id],
        ).fetchall()
        cursor = con.execute(
            "SELECT DISTINCT ON (trade_id) order_id, symbol, side, quantity, price, timestamp, "
            "executed_at, executed_qty, executed_price, commission, pnl, position_type, "
            "trade_id, commission_asset, base_commission FROM trades WHERE session_id = ? "
            "ORDER BY trade_id, date, run",
            [session_id],
        )
        names = [d[0] for d in cursor.description or ()]
        fills = [fill_from_row(dict(zip(names, r, strict=True))) for r in cursor.fetchall()]
    finally:
        con.close()
    return replay_equity([bar_from_row(r) for r in bar_rows], fills, capital, method)


def _disagreements(report: SessionReport) -> list[str]:
    cum, curve = report.cumulative, report.curve
    res, pnl = _res(cum), _pnl(cum)
    totals = report.day_totals()
    checks = [
        ("max drawdown of the per-bar equity", curve.max_drawdown_abs,
         "cumulative max_drawdown_abs", _num(res.get("max_drawdown_abs"))),
        ("equity change of the per-bar equity", curve.total_pnl,
         "cumulative total_pnl", _num(pnl.get("total_pnl"))),
        ("fills in trades.parquet", float(curve.trades),
         "cumulative number_of_trades", _num(res.get("number_of_trades"))),
        ("sum of the per-day total_pnl", totals["total_pnl"],
         "cumulative total_pnl", _num(pnl.get("total_pnl"))),
        ("sum of the per-day trades", totals["trades"],
         "cumulative number_of_trades", _num(res.get("number_of_trades"))),
    ]  # fmt: skip
    return [
        f"{ours} is {_money(a)}, stats.yaml {theirs} is {_money(b)}"
        for ours, a, theirs, b in checks
        if abs(a - b) >= CENT
    ]


# -- HTML ----------------------------------------------------------------------------------------


def _money(value: float) -> str:
    # Rounded to the cent; -0.00 is shown as 0.00.
    text = f"{value:,.2f}"
    return "0.00" if text == "-0.00" else text


def _pct(value: float) -> str:
    return f"{value:.2%}"


def _count(value: float) -> str:
    return f"{int(value):,d}"


def _detail(value: float) -> str:
    """A quantity or price: as many decimals as it needs (up to 8)."""
    text = f"{value:,.8f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _cell(text: str, value: float | None = None, cls: str = "") -> str:
    classes = [cls] if cls else []
    if value is not None and value < 0 and text.startswith("-"):
        classes.append("neg")
    attr = f' class="{" ".join(classes)}"' if classes else ""
    return f"<td{attr}>{_esc(text)}</td>"


def _x(t: datetime) -> str:
    # Plotly reads naive ISO strings as they are; the axis is labelled UTC. DuckDB returns
    # TIMESTAMP columns (UTC by contract) naive: astimezone would take them as local time.
    if t.tzinfo is not None:
        t = t.astimezone(UTC).replace(tzinfo=None)
    return t.isoformat(sep=" ")


SUMMARY = (
    # (element id, label, block path, formatter)
    ("total-pnl", "total PnL", ("trade_pnl", "total_pnl"), _money),
    ("realized-pnl", "realized PnL", ("trade_pnl", "realized_pnl"), _money),
    ("unrealized-pnl", "unrealized PnL", ("trade_pnl", "unrealized_pnl"), _money),
    ("trades", "trades (fills)", ("trade_result", "number_of_trades"), _count),
    ("win-rate", "win rate", ("trade_result", "win_rate"), _pct),
    ("max-drawdown", "max drawdown", ("trade_result", "max_drawdown"), _pct),
    ("max-drawdown-abs", "max drawdown (currency)", ("trade_result", "max_drawdown_abs"), _money),
    ("fees", "fees", ("total_fees",), _money),
    ("sharpe", "Sharpe ratio", ("trade_result", "sharpe_ratio"), lambda v: f"{v:.2f}"),
    ("sortino", "Sortino ratio", ("trade_result", "sortino_ratio"), lambda v: f"{v:.2f}"),
)


def _get(block: dict[str, Any], path: tuple[str, ...]) -> float:
    value: Any = block
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return _num(value)


def _summary_html(report: SessionReport) -> str:
    cum = report.cumulative
    items = []
    for key, label, path, fmt in SUMMARY:
        value = _get(cum, path)
        neg = " neg" if value < 0 and fmt is _money else ""
        items.append(
            f'<div class="figure"><dt>{_esc(label)}</dt><dd id="{key}" class="value{neg}" '
            f'data-value="{value!r}">{_esc(fmt(value))}</dd></div>'
        )
    curve = report.curve
    end_equity = curve.initial_capital + _get(cum, ("trade_pnl", "total_pnl"))
    items.append(
        f'<div class="figure"><dt>equity (start &rarr; end)</dt><dd id="equity" class="value" '
        f'data-start="{curve.initial_capital!r}" data-end="{end_equity!r}">'
        f"{_money(curve.initial_capital)} &rarr; {_money(end_equity)}</dd></div>"
    )
    return f'<dl id="summary">{"".join(items)}</dl>'


def _checks_html(report: SessionReport) -> str:
    if not report.problems:
        return (
            '<p id="checks" class="ok" data-ok="true">Checked: the equity replayed bar by bar '
            "from the stored bars and fills gives stats.yaml's total PnL, trades and maximum "
            "drawdown, and the per-day rows add up to the totals.</p>"
        )
    items = "".join(f"<li>{_esc(p)}</li>" for p in report.problems)
    return (
        '<div id="checks" class="warn" data-ok="false"><p>These figures disagree (the summary '
        f"and the rows are stats.yaml's):</p><ul>{items}</ul></div>"
    )


DAY_HEADERS = (
    "date", "runs", "trades", "wins", "losses", "win rate", "realized PnL",
    "unrealized PnL change", "total PnL", "fees", "max drawdown", "max drawdown (currency)",
)  # fmt: skip


def _days_html(report: SessionReport) -> str:
    rows = []
    for day in report.days:
        res, pnl = _res(day.daily), _pnl(day.daily)
        trades = _num(res.get("number_of_trades"))
        realized, unrealized = _num(pnl.get("realized_pnl")), _num(pnl.get("unrealized_pnl"))
        total, fees = _num(pnl.get("total_pnl")), _num(day.daily.get("total_fees"))
        dd, dd_abs = _num(res.get("max_drawdown")), _num(res.get("max_drawdown_abs"))
        attrs = (
            f'data-date="{_esc(day.date)}" data-runs="{_esc(" ".join(day.runs))}" '
            f'data-trades="{int(trades)}" data-realized-pnl="{realized!r}" '
            f'data-unrealized-pnl="{unrealized!r}" data-total-pnl="{total!r}" '
            f'data-fees="{fees!r}" data-max-drawdown-abs="{dd_abs!r}"'
        )
        cells = [
            _cell(day.date, cls="text"),
            _cell(", ".join(day.runs), cls="text"),
            _cell(_count(trades)),
            _cell(_count(_num(res.get("number_of_winning_trades")))),
            _cell(_count(_num(res.get("number_of_losing_trades")))),
            _cell(_pct(_num(res.get("win_rate")))),
            _cell(_money(realized), realized),
            _cell(_money(unrealized), unrealized),
            _cell(_money(total), total),
            _cell(_money(fees)),
            _cell(_pct(dd)),
            _cell(_money(dd_abs)),
        ]
        rows.append(f'<tr class="day" {attrs}>{"".join(cells)}</tr>')
    t = report.day_totals()
    foot = [
        _cell("all dates", cls="text"),
        _cell(""),
        _cell(_count(t["trades"])),
        _cell(_count(t["wins"])),
        _cell(_count(t["losses"])),
        _cell(""),
        _cell(_money(t["realized_pnl"]), t["realized_pnl"]),
        _cell(_money(t["unrealized_pnl"]), t["unrealized_pnl"]),
        _cell(_money(t["total_pnl"]), t["total_pnl"]),
        _cell(_money(t["fees"])),
        _cell(""),
        _cell(""),
    ]
    head = "".join(f"<th>{_esc(h)}</th>" for h in DAY_HEADERS)
    return (
        f'<table id="days"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody>'
        f'<tfoot><tr id="days-total" data-trades="{int(t["trades"])}" '
        f'data-total-pnl="{t["total_pnl"]!r}">{"".join(foot)}</tr></tfoot></table>'
    )


def _trades_html(trades: list[tuple[Any, ...]]) -> str:
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "executed at (UTC)",
            "date",
            "run",
            "symbol",
            "side",
            "position",
            "quantity",
            "price",
            "fee",
            "PnL",
        )
    )
    body = []
    for at, symbol, side, position, qty, price, fee, pnl, day, run in trades:
        body.append(
            "<tr>"
            + _cell(_x(at) if isinstance(at, datetime) else str(at), cls="text")
            + _cell(str(day), cls="text")
            + _cell(str(run), cls="text")
            + _cell(str(symbol), cls="text")
            + _cell(str(side), cls="text")
            + _cell(str(position), cls="text")
            + _cell(_detail(float(qty)))
            + _cell(_detail(float(price)))
            + _cell(f"{float(fee):,.4f}")
            + _cell(f"{float(pnl):,.4f}", float(pnl))
            + "</tr>"
        )
    return (
        f'<table id="trades"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    )


# -- charts (plotly figures as plain dicts: no validation pass, which costs seconds) ------------

_AXIS = {"showgrid": True, "gridcolor": "#e5e5e5", "zeroline": False, "showline": True,
         "linecolor": "#999", "ticks": "outside"}  # fmt: skip


def _layout(title: str, y_title: str, y_format: str = ",.2f") -> dict[str, Any]:
    return {
        "title": {"text": title, "x": 0, "xanchor": "left"},
        "xaxis": {**_AXIS, "type": "date", "title": {"text": "time (UTC)"}},
        "yaxis": {**_AXIS, "title": {"text": y_title}, "tickformat": y_format},
        "showlegend": True,
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        "hovermode": "x unified",
        "margin": {"l": 80, "r": 20, "t": 70, "b": 50},
        "height": 340,
        "plot_bgcolor": "white",
    }


def _equity_figures(report: SessionReport) -> list[dict[str, Any]]:
    curve = report.curve
    drawdown = curve.drawdown
    keep = downsample(len(curve.times), [curve.equity, drawdown], MAX_POINTS)
    xs = [_x(curve.times[i]) for i in keep]
    equity = [curve.equity[i] for i in keep]
    peak = [curve.peak[i] for i in keep]
    dd = [drawdown[i] for i in keep]
    dd_pct = [d / p if p > 0 else 0.0 for d, p in zip(dd, peak, strict=True)]
    step = {"shape": "hv", "width": 1.5}
    equity_fig = {
        "data": [
            {"type": "scatter", "mode": "lines", "name": "equity", "x": xs, "y": equity,
             "line": {**step, "color": "#1f77b4"}, "hovertemplate": "%{y:,.2f}"},
            {"type": "scatter", "mode": "lines", "name": "running peak", "x": xs, "y": peak,
             "line": {**step, "color": "#7f7f7f", "dash": "dot"}, "hovertemplate": "%{y:,.2f}"},
            {"type": "scatter", "mode": "lines", "name": "initial capital",
             "x": [xs[0], xs[-1]] if xs else [], "y": [curve.initial_capital] * (2 if xs else 0),
             "line": {"color": "#bbbbbb", "width": 1, "dash": "dash"}, "hoverinfo": "skip"},
        ],
        "layout": _layout(
            "Equity: initial capital + realized + unrealized PnL, per bar", "equity"
        ),
    }  # fmt: skip
    cum = _res(report.cumulative)
    dd_abs, dd_frac = _num(cum.get("max_drawdown_abs")), _num(cum.get("max_drawdown"))
    trough = min(range(len(dd)), key=dd.__getitem__) if dd else None
    drawdown_fig: dict[str, Any] = {
        "data": [
            {"type": "scatter", "mode": "lines", "name": "drawdown from the running peak",
             "x": xs, "y": dd, "customdata": dd_pct, "fill": "tozeroy",
             "line": {**step, "color": "#d62728"}, "fillcolor": "rgba(214,39,40,0.15)",
             "hovertemplate": "%{y:,.2f} (%{customdata:.2%})"},
        ],
        "layout": _layout(
            f"Drawdown: max {_money(dd_abs)} (max {_pct(dd_frac)} of its peak)",
            "drawdown (currency)",
        ),
    }  # fmt: skip
    if trough is not None:
        drawdown_fig["data"].append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "max drawdown",
                "x": [xs[trough]],
                "y": [dd[trough]],
                "customdata": [dd_pct[trough]],
                "marker": {"color": "black", "size": 9, "symbol": "x"},
                "hovertemplate": "max drawdown %{y:,.2f}",
            }
        )
    return [equity_fig, drawdown_fig]


def _daily_figure(report: SessionReport) -> dict[str, Any]:
    dates = [d.date for d in report.days]
    totals = [_num(_pnl(d.daily).get("total_pnl")) for d in report.days]
    running, cumulative = 0.0, []
    for value in totals:
        running += value
        cumulative.append(running)
    layout = _layout("PnL per trading date (equity change of the date)", "PnL")
    layout["xaxis"] = {**_AXIS, "type": "date", "title": {"text": "trading date"},
                       "tickformat": "%Y-%m-%d", "dtick": 86_400_000}  # fmt: skip
    return {
        "data": [
            {"type": "bar", "name": "total PnL of the date", "x": dates, "y": totals,
             "marker": {"color": ["#2ca02c" if v >= 0 else "#d62728" for v in totals]},
             "hovertemplate": "%{y:,.2f}"},
            {"type": "scatter", "mode": "lines+markers", "name": "cumulative total PnL",
             "x": dates, "y": cumulative, "line": {"color": "#1f77b4"},
             "hovertemplate": "%{y:,.2f}"},
        ],
        "layout": layout,
    }  # fmt: skip


def _symbol_figures(data_output: Path, session_id: str) -> list[dict[str, Any]]:
    con = connect(data_output)
    try:
        closes = con.execute(
            "SELECT DISTINCT ON (symbol, time) symbol, time, close FROM market_data "
            "WHERE session_id = ? ORDER BY symbol, time",
            [session_id],
        ).fetchall()
        fills = con.execute(
            "SELECT DISTINCT ON (trade_id) symbol, executed_at, side, executed_qty, "
            "executed_price, pnl FROM trades WHERE session_id = ? ORDER BY trade_id",
            [session_id],
        ).fetchall()
        marks = con.execute(
            "SELECT signal_symbol, signal_time, color, title, message FROM marks "
            "WHERE session_id = ? AND signal_time IS NOT NULL ORDER BY signal_time",
            [session_id],
        ).fetchall()
    finally:
        con.close()
    series: dict[str, tuple[list[datetime], list[float]]] = {}
    for symbol, t, close in closes:
        ts, cs = series.setdefault(symbol, ([], []))
        ts.append(t)
        cs.append(float(close))
    figures = []
    for symbol, (ts, cs) in sorted(series.items()):
        keep = downsample(len(ts), [cs], MAX_POINTS)
        close_at = dict(zip(ts, cs, strict=True))
        data: list[dict[str, Any]] = [
            {"type": "scatter", "mode": "lines", "name": f"{symbol} close",
             "x": [_x(ts[i]) for i in keep], "y": [cs[i] for i in keep],
             "line": {"color": "#444", "width": 1}, "hovertemplate": "%{y:,.8g}"},
        ]  # fmt: skip
        for side, color, shape in (("BUY", "#2ca02c", "triangle-up"),
                                   ("SELL", "#d62728", "triangle-down")):  # fmt: skip
            own = [f for f in fills if f[0] == symbol and f[2] == side]
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": f"{side} fills",
                    "x": [_x(f[1]) for f in own],
                    "y": [f[4] for f in own],
                    "customdata": [[f[3], f[5]] for f in own],
                    "marker": {"color": color, "symbol": shape, "size": 9},
                    "hovertemplate": f"{side} %{{customdata[0]:.8g}} at %{{y:,.8g}}, "
                    "PnL %{customdata[1]:,.2f}<extra></extra>",
                }
            )
        own_marks = [m for m in marks if m[0] == symbol]
        if own_marks:
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": "strategy marks",
                    "x": [_x(m[1]) for m in own_marks],
                    "y": [close_at.get(m[1], cs[-1]) for m in own_marks],
                    "text": [f"{m[3] or ''} {m[4] or ''}".strip() for m in own_marks],
                    "marker": {
                        "color": [m[2] or "black" for m in own_marks],
                        "size": 7,
                        "symbol": "circle-open",
                    },
                    "hovertemplate": "%{text}<extra></extra>",
                }
            )
        layout = _layout(f"{symbol}: close, fills and marks", "price", y_format=",.8~g")
        figures.append({"data": data, "layout": layout})
    return figures


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#555;margin:0 0 16px}
#summary{display:flex;flex-wrap:wrap;gap:10px;margin:0 0 12px}
.figure{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:130px}
dt{font-size:12px;color:#666}dd{margin:2px 0 0;font-size:18px;font-variant-numeric:tabular-nums}
.neg{color:#c62828}.ok{color:#2e7d32}.warn{color:#b71c1c;border:1px solid #b71c1c;padding:4px 12px}
table{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums}
td,th{border:1px solid #ddd;padding:3px 8px;font-size:12px;text-align:right}
th{background:#f5f5f5}td.text{text-align:left}tfoot td{font-weight:600;background:#fafafa}
.chart{margin:8px 0;border:1px solid #eee}
"""


def write_report(
    data_output: Path,
    session_id: str,
    out: Path,
    initial_capital: float = 100_000.0,
    *,
    loaded: SessionReport | None = None,
) -> Path:
    """Write the HTML report of a session: one file, charts included, that opens offline.

    Args:
        data_output: Root of the run folders.
        session_id: Session to report.
        out: HTML file to write (its folder is created).
        initial_capital: Equity the session started with, when no run folder records it.
        loaded: The session's figures when the caller already gathered them
            (:func:`load_session_report`), to replay the session once for several outputs.

    Returns:
        ``out``.

    Raises:
        ConfigurationError: If the session has no run folder under ``data_output``.
    """
    report = loaded or load_session_report(data_output, session_id, initial_capital)
    con = connect(data_output)
    try:
        trades = con.execute(
            "SELECT DISTINCT ON (trade_id) executed_at, symbol, side, position_type, "
            "executed_qty, executed_price, commission, pnl, date, run FROM trades "
            "WHERE session_id = ? ORDER BY trade_id, date, run",
            [session_id],
        ).fetchall()
    finally:
        con.close()
    trades.sort(key=lambda r: r[0])
    figures = [
        *_equity_figures(report),
        _daily_figure(report),
        *_symbol_figures(data_output, session_id),
    ]
    charts = _charts_html(figures)
    dates = [d.date for d in report.days]
    span = f"{dates[0]} to {dates[-1]}" if dates else "no trading date"
    strategy = report.latest.get("strategy", {})
    name = strategy.get("name", "") if isinstance(strategy, dict) else ""
    symbols = ", ".join(str(s) for s in report.latest.get("symbols", []) or [])
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>argo session {_esc(session_id)}</title><style>{CSS}</style></head>
<body data-session-id="{_esc(session_id)}">
<h1>Session {_esc(session_id)}</h1>
<p class="meta">Strategy {_esc(name)} on {_esc(symbols)}; {_esc(span)}
({len(dates)} trading dates, {len(report.runs)} run folders). Figures from stats.yaml,
money in the quote currency rounded to the cent, times in UTC.</p>
{_summary_html(report)}
{_checks_html(report)}
{charts}
<h2>Per trading date</h2>
<p class="meta">One row per date: the daily block of the date's latest run, which covers every
run of the session on that date.</p>
{_days_html(report)}
<h2>Fills</h2>
{_trades_html(trades)}
</body></html>
"""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doc, encoding="utf-8")
    return out


def _charts_html(figures: list[dict[str, Any]]) -> str:
    # Imported here: plotly (and its 4.6 MB plotly.js, inlined once) is for the report only.
    import plotly.io as pio

    config = {"displaylogo": False, "responsive": True}
    parts = []
    for i, figure in enumerate(figures):
        parts.append(
            '<div class="chart">'
            + pio.to_html(
                figure,
                config=config,
                include_plotlyjs=i == 0,
                full_html=False,
                validate=False,
                div_id=f"chart-{i}",
                default_height="340px",
            )
            + "</div>"
        )
    return "\n".join(parts)


# -- SVG charts for Prefect artifacts ------------------------------------------------------------


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


def _ts(t: datetime) -> float:
    return t.timestamp()


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


def equity_svg(curve: EquityCurve) -> str:
    """A session's per-bar equity alone, as an SVG document (for Prefect artifacts).

    The series of the HTML report (``load_session_report(...).curve``), thinned to the
    chart's width with every bucket's extremes kept.
    """
    keep = downsample(len(curve.times), [curve.equity], 2 * W)
    return _line_chart(
        "Equity per bar (initial capital + realized + unrealized PnL)",
        [_ts(curve.times[i]) for i in keep],
        [("equity", [curve.equity[i] for i in keep], "#1f77b4")],
    )


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
