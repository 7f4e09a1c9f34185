"""The HTML report in headless Chromium: its charts render, and the figures shown are stats.yaml's.

Debian's chromium (.ci/run installs it when /usr/bin/chromium is missing). Without it the test
is skipped, unless REQUIRE_CHROMIUM=1 (set by .ci/run), where a missing browser fails it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from argo_engine.tools.report import write_report
from tests.tools.report_page import money, read_page, stats_by_date

# Read at import: the tests' environment isolation runs later.
REQUIRED = os.environ.get("REQUIRE_CHROMIUM") == "1"

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--virtual-time-budget=10000",
    "--enable-logging=stderr",
    "--v=0",
]


def _chromium() -> str:
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if found is None:
        if REQUIRED:
            pytest.fail("chromium is not installed (REQUIRE_CHROMIUM=1)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def _dump_dom(page: Path, profile: Path) -> tuple[str, str]:
    proc = subprocess.run(
        [_chromium(), *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, proc.stderr


def test_report_renders_in_chromium_with_the_figures_of_stats_yaml(
    resumed_session: dict[str, Any], tmp_path: Path
) -> None:
    out, sid = resumed_session["out"], resumed_session["session"]
    dom, log = _dump_dom(write_report(out, sid, tmp_path / "report.html"), tmp_path / "profile")
    page = read_page(dom)

    # Every chart was drawn by plotly (its SVG is in the DOM), with a date axis, gridlines and
    # a legend naming what is drawn.
    legends = {
        "chart-0": ["equity", "running peak", "initial capital"],
        "chart-1": ["drawdown from the running peak", "max drawdown"],
        "chart-2": ["total PnL of the date", "cumulative total PnL"],
        "chart-3": ["BTCUSDT close", "strategy marks"],
        "chart-4": ["ETHUSDT close", "BUY fills", "SELL fills", "strategy marks"],
    }
    assert sorted(page.charts) == sorted(legends)
    for chart_id, legend in legends.items():
        chart = page.charts[chart_id]
        assert chart.classes.get("main-svg", 0) >= 2, chart_id
        assert chart.classes.get("js-line", 0) + chart.classes.get("point", 0) >= 1, chart_id
        assert chart.classes.get("xgrid", 0) >= 2, chart_id
        assert chart.classes.get("ygrid", 0) >= 2, chart_id
        assert chart.legend == legend
        assert any("2025" in tick for tick in chart.x_ticks), (chart_id, chart.x_ticks)
    console_errors = [
        line for line in log.splitlines()
        if "CONSOLE" in line and ("Uncaught" in line or "ERROR" in line)
    ]  # fmt: skip
    assert console_errors == []

    # The figures shown are stats.yaml's, to the cent.
    by_date = stats_by_date(out, sid)
    cumulative = by_date[max(by_date)][1]["cumulative"]
    result, pnl = cumulative["trade_result"], cumulative["trade_pnl"]
    shown = {key: element.text for key, element in page.summary.items()}
    assert shown["total-pnl"] == money(pnl["total_pnl"])
    assert shown["realized-pnl"] == money(pnl["realized_pnl"])
    assert shown["trades"] == f"{result['number_of_trades']:,d}"
    assert shown["max-drawdown-abs"] == money(result["max_drawdown_abs"])
    assert shown["max-drawdown"] == f"{result['max_drawdown']:.2%}"
    assert shown["win-rate"] == f"{result['win_rate']:.2%}"
    assert page.charts["chart-1"].title.startswith(
        f"Drawdown: max {money(result['max_drawdown_abs'])}"
    )
    assert page.checks is not None
    assert page.checks.attrs["data-ok"] == "true"
    # One row per date (2025-10-02 had two runs), each the date's stats.yaml, adding up.
    assert [r.cells[0] for r in page.days] == list(by_date)
    for row in page.days:
        runs, stats = by_date[row.cells[0]]
        daily = stats["daily"]
        assert row.cells[1] == ", ".join(runs)
        assert row.cells[2] == str(daily["trade_result"]["number_of_trades"])
        assert row.cells[8] == money(daily["trade_pnl"]["total_pnl"])
    assert sum(int(r.cells[2]) for r in page.days) == result["number_of_trades"]
    assert sum(float(r.attrs["data-total-pnl"]) for r in page.days) == pytest.approx(
        pnl["total_pnl"], abs=1e-6
    )
    assert page.total is not None
    assert page.total.cells[8] == shown["total-pnl"]
