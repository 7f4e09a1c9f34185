"""argo sessions / stats / query / report on a generated 3-day, 2-run output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
import typer
from typer.testing import CliRunner

from argo_engine.tools.commands import register

runner = CliRunner()


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    application = typer.Typer()
    register(application)
    return application


def _json(app: typer.Typer, *args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_sessions_lists_every_run_folder(app: typer.Typer, fixture_output: dict[str, Any]) -> None:
    out = fixture_output["out"]
    rows = _json(app, "sessions", "--data-output", str(out), "--format", "json")
    assert [(r["date"], r["run"], r["session_id"]) for r in rows] == [
        (d, f"run_{n}", s)
        for d in ("2025-10-01", "2025-10-02", "2025-10-03")
        for s, n in (("alpha", 1), ("beta", 2))
    ]
    con = duckdb.connect()
    for r in rows:
        path = out / r["date"] / r["run"] / "trades.parquet"
        n, pnl = con.execute(
            f"SELECT count(*), coalesce(sum(pnl), 0) FROM read_parquet('{path}')"
        ).fetchone()  # type: ignore[misc]
        assert r["trades"] == n
        assert r["realized_pnl"] == pytest.approx(pnl)
        assert r["status"] == "closed"
    assert {r["strategy"] for r in rows} == {"rsi", "ma_cross"}


def test_query_views_span_dates_and_runs(app: typer.Typer, fixture_output: dict[str, Any]) -> None:
    out = fixture_output["out"]
    got = _json(app, "query", "SELECT session_id, date, run, count(*) AS n, sum(pnl) AS pnl "
                "FROM trades GROUP BY ALL ORDER BY ALL", "--data-output", str(out),
                "--format", "json")  # fmt: skip
    con = duckdb.connect()
    want = con.execute(
        "SELECT CASE WHEN filename LIKE '%run_1%' THEN 'alpha' ELSE 'beta' END, "
        "regexp_extract(filename, '(\\d{4}-\\d{2}-\\d{2})', 1), "
        "regexp_extract(filename, '(run_\\d+)', 1), count(*), sum(pnl) "
        f"FROM read_parquet('{out}/*/run_*/trades.parquet', filename = true) "
        "GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert [(g["session_id"], g["date"], g["run"], g["n"]) for g in got] == [
        (w[0], w[1], w[2], w[3]) for w in want
    ]
    assert [g["pnl"] for g in got] == pytest.approx([w[4] for w in want])
    csv_out = runner.invoke(app, ["query", "SELECT count(*) AS n FROM market_data",
                                  "--data-output", str(out), "--format", "csv"])  # fmt: skip
    (n_bars,) = con.execute(
        f"SELECT count(*) FROM read_parquet('{out}/*/run_*/market_data.parquet')"
    ).fetchone()  # type: ignore[misc]
    assert csv_out.output.splitlines() == ["n", str(n_bars)]
    bad = runner.invoke(app, ["query", "SELECT nope FROM trades", "--data-output", str(out)])
    assert bad.exit_code == 2


def test_stats_per_day_and_cumulative(app: typer.Typer, fixture_output: dict[str, Any]) -> None:
    out = fixture_output["out"]
    rows = _json(app, "stats", "--session", "alpha", "--data-output", str(out), "--format", "json")
    con = duckdb.connect()
    total = 0
    for row in rows[:-1]:
        path = out / row["date"] / row["run"] / "trades.parquet"
        (n,) = con.execute(f"SELECT count(*) FROM read_parquet('{path}')").fetchone()  # type: ignore[misc]
        assert row["trades"] == n
        total += n
    assert rows[-1]["date"] == "cumulative"
    assert rows[-1]["trades"] == total
    folder = out / "2025-10-02" / "run_1"
    one = _json(app, "stats", str(folder), "--format", "json")
    assert [r["block"] for r in one] == ["daily", "cumulative"]


def test_seed_queries_work_verbatim(fixture_output: dict[str, Any]) -> None:
    path = fixture_output["out"] / "2025-10-03" / "run_1" / "trades.parquet"
    con = duckdb.connect()
    winners = con.execute(f"SELECT * FROM read_parquet('{path}') WHERE pnl > 0;").fetchall()
    total = con.execute(
        "SELECT\n    COUNT(*) as total_trades,\n    SUM(pnl) as total_pnl,\n"
        f"    AVG(pnl) as avg_pnl\nFROM read_parquet('{path}');"
    ).fetchone()
    assert total is not None
    assert total[0] >= len(winners)


def test_report_writes_html_with_charts(
    app: typer.Typer, fixture_output: dict[str, Any], tmp_path: Path
) -> None:
    out = fixture_output["out"]
    target = tmp_path / "report.html"
    result = runner.invoke(app, ["report", "--session", "alpha", "--out", str(target),
                                 "--data-output", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    text = target.read_text()
    # Equity, drawdown, PnL per date, one price chart per symbol (with fills and marks); the
    # browser test renders them.
    assert text.count('class="plotly-graph-div"') == 5
    assert '"name":"strategy marks"' in text
    assert "<script src=" not in text  # plotly.js inlined: the file opens offline
    missing = runner.invoke(app, ["report", "--session", "nobody", "--out", str(target),
                                  "--data-output", str(out)])  # fmt: skip
    assert missing.exit_code == 2
