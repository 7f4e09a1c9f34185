"""The HTML report agrees with stats.yaml to the cent (read from the written file, no browser).

Two sessions with a date of two runs: a session started again with its id (a planned resume)
and one killed mid-date and started again. stats.yaml is read here directly from the folders.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from argo_engine.tools.equity import downsample
from argo_engine.tools.report import load_session_report, write_report
from tests.tools.report_page import (
    all_daily_blocks,
    money,
    plotted_traces,
    read_page,
    stats_by_date,
)


@pytest.fixture(params=["resumed_session", "crashed_session"])
def session(request: pytest.FixtureRequest) -> dict[str, Any]:
    value: dict[str, Any] = request.getfixturevalue(request.param)
    return value


def test_per_date_rows_add_up_to_the_header_on_a_date_with_two_runs(
    session: dict[str, Any], tmp_path: Path
) -> None:
    out, sid = session["out"], session["session"]
    page = read_page(write_report(out, sid, tmp_path / "report.html"))
    by_date = stats_by_date(out, sid)
    cumulative = by_date[max(by_date)][1]["cumulative"]
    assert by_date[session["two_runs"]][0] == ["run_1", "run_2"]
    # One row per date, the date's runs named in it.
    assert [r.attrs["data-date"] for r in page.days] == list(by_date)
    for row in page.days:
        runs, stats = by_date[row.attrs["data-date"]]
        daily = stats["daily"]
        assert row.attrs["data-runs"].split() == runs
        assert int(row.attrs["data-trades"]) == daily["trade_result"]["number_of_trades"]
        assert float(row.attrs["data-total-pnl"]) == daily["trade_pnl"]["total_pnl"]
        # date, runs, trades, wins, losses, win rate, realized, unrealized, total, fees, dd, dd
        assert row.cells[2] == str(daily["trade_result"]["number_of_trades"])
        assert row.cells[5] == f"{daily['trade_result']['win_rate']:.2%}"
        assert row.cells[8] == money(daily["trade_pnl"]["total_pnl"])
        assert row.cells[9] == money(daily["total_fees"])
    # The rows add up to the header, which is stats.yaml's cumulative block.
    trades = sum(int(r.attrs["data-trades"]) for r in page.days)
    total = sum(float(r.attrs["data-total-pnl"]) for r in page.days)
    assert trades == cumulative["trade_result"]["number_of_trades"]
    assert total == pytest.approx(cumulative["trade_pnl"]["total_pnl"], abs=1e-6)
    assert page.summary["trades"].text == f"{trades:,d}"
    assert page.summary["total-pnl"].text == money(cumulative["trade_pnl"]["total_pnl"])
    assert page.total is not None
    assert page.total.cells[2] == page.summary["trades"].text
    assert page.total.cells[8] == page.summary["total-pnl"].text
    assert page.checks is not None
    assert page.checks.attrs["data-ok"] == "true"


def test_a_row_per_run_folder_would_count_the_date_of_two_runs_twice(
    resumed_session: dict[str, Any],
) -> None:
    # What the report did before: one row per run folder. Each run's daily block covers the
    # earlier runs of its date, so the first run's trades of that date were counted twice.
    out, sid = resumed_session["out"], resumed_session["session"]
    by_date = stats_by_date(out, sid)
    cumulative = by_date[max(by_date)][1]["cumulative"]["trade_result"]["number_of_trades"]
    first_run = by_date[resumed_session["two_runs"]][0][0]
    first = yaml.safe_load(
        (out / resumed_session["two_runs"] / first_run / "stats.yaml").read_text()
    )
    assert first["daily"]["trade_result"]["number_of_trades"] > 0
    per_folder = sum(b["trade_result"]["number_of_trades"] for b in all_daily_blocks(out, sid))
    assert per_folder == cumulative + first["daily"]["trade_result"]["number_of_trades"]


def test_drawdown_shown_is_stats_yaml_max_drawdown(session: dict[str, Any], tmp_path: Path) -> None:
    out, sid = session["out"], session["session"]
    by_date = stats_by_date(out, sid)
    result = by_date[max(by_date)][1]["cumulative"]["trade_result"]
    report = write_report(out, sid, tmp_path / "report.html")
    page = read_page(report)
    assert float(page.summary["max-drawdown-abs"].attrs["data-value"]) == result["max_drawdown_abs"]
    assert page.summary["max-drawdown-abs"].text == money(result["max_drawdown_abs"])
    assert page.summary["max-drawdown"].text == f"{result['max_drawdown']:.2%}"
    assert page.summary["win-rate"].text == f"{result['win_rate']:.2%}"
    # The charted series is the per-bar equity the statistics sample: its deepest drawdown is
    # stats.yaml's, and it starts from the capital the session ran with (not the default).
    curve = load_session_report(out, sid).curve
    assert curve.initial_capital == session["capital"]
    assert -min(curve.drawdown) == pytest.approx(result["max_drawdown_abs"], abs=1e-9)
    assert float(page.summary["equity"].attrs["data-start"]) == session["capital"]
    # And the charts plot it: the drawdown line reaches the trough, the equity line ends at the
    # capital plus the total PnL.
    text = report.read_text()
    drawdown = plotted_traces(text, "chart-1")[0]
    assert min(drawdown["y"]) == pytest.approx(-result["max_drawdown_abs"], abs=1e-9)
    equity = plotted_traces(text, "chart-0")[0]
    total = by_date[max(by_date)][1]["cumulative"]["trade_pnl"]["total_pnl"]
    assert equity["y"][-1] == pytest.approx(session["capital"] + total, abs=1e-6)


def test_a_stats_yaml_the_files_do_not_reproduce_is_named(
    resumed_session: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(resumed_session["out"], out)
    by_date = stats_by_date(out, "multi")
    last = out / max(by_date) / by_date[max(by_date)][0][-1] / "stats.yaml"
    doc = yaml.safe_load(last.read_text())
    doc["cumulative"]["trade_result"]["max_drawdown_abs"] += 10.0
    last.write_text(yaml.safe_dump(doc, sort_keys=False))
    page = read_page(write_report(out, "multi", tmp_path / "report.html"))
    assert page.checks is not None
    assert page.checks.attrs["data-ok"] == "false"
    assert "cumulative max_drawdown_abs" in page.checks.text


def test_downsampling_keeps_every_buckets_extremes() -> None:
    values = [float((i * 37) % 101) for i in range(10_000)]
    values[4321] = -500.0
    keep = downsample(len(values), [values], 400)
    assert len(keep) <= 400
    assert keep[0] == 0
    assert keep[-1] == len(values) - 1
    assert 4321 in keep
    assert min(values[i] for i in keep) == -500.0
    assert downsample(10, [values[:10]], 400) == list(range(10))


def test_runs_of_other_sessions_on_the_same_dates_stay_out(
    fixture_output: dict[str, Any], tmp_path: Path
) -> None:
    # alpha is run_1 and beta run_2 on each of the three dates: each report shows its own.
    out = fixture_output["out"]
    for session_id, run in fixture_output["sessions"]:
        page = read_page(write_report(out, session_id, tmp_path / f"{session_id}.html"))
        by_date = stats_by_date(out, session_id)
        assert [r.attrs["data-date"] for r in page.days] == list(by_date)
        assert {r.attrs["data-runs"] for r in page.days} == {f"run_{run}"}
        assert page.checks is not None
        assert page.checks.attrs["data-ok"] == "true", page.checks.text
