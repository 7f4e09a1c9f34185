"""Fault injection: damage one file of a crashed session, restart, compare with no crash.

The session is SIGKILLed at a bar of its second date (the first date's folder is closed, the
second one's was streaming), one file is damaged, and the session is started again. Whatever
the damage, the restart ends with what an uninterrupted run stores (bars, fills, final
orders, cumulative stats) and verify finds the folders sound, or the loss is reported.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
import yaml
from typer.testing import CliRunner

from argo_engine.cli import app
from argo_engine.persistence.parquet_append import read_footer
from argo_engine.session import needs_recovery
from argo_engine.verify import check_path, verify_path
from tests.recovery.test_kill_recovery import (
    FILL_COLS,
    TOTAL_BARS,
    _all,
    _child,
    _final_orders,
    _final_stats,
    reference,
    replay,
)

__all__ = ["reference", "replay"]  # module fixtures, shared with the kill test

# A bar of the second date (22:00 -> midnight is 240 bars of both symbols).
KILL_AT_BAR = 600
FIRST = "2025-10-01"
SECOND = "2025-10-02"


def _crash(out: Path, replay: Path, sid: str, mode: str = "bar") -> None:
    """SIGKILL the session at KILL_AT_BAR; ``bar-closed``: the first date's folder is final."""
    assert _child(out, replay, sid, mode, KILL_AT_BAR, "limit") == -signal.SIGKILL
    assert (out / SECOND / "run_1" / ".journal").is_dir()
    if mode == "bar-closed":
        assert not needs_recovery(out / FIRST / "run_1")


def _resume(out: Path, replay: Path, sid: str) -> int:
    return _child(out, replay, sid, "none", 0, "limit")


def _same_as_uninterrupted(out: Path, expected: dict[str, Any]) -> None:
    bars = _all(out, "market_data", "*")
    assert len(bars) == len(set(bars)) == TOTAL_BARS
    assert bars == expected["bars"]
    assert _all(out, "trades", FILL_COLS) == expected["fills"]
    assert _final_orders(out) == expected["orders"]
    final = _final_stats(out)["cumulative"]
    ref = expected["stats"]
    assert final["trade_result"]["number_of_trades"] == ref["trade_result"]["number_of_trades"]
    assert final["trade_pnl"]["realized_pnl"] == pytest.approx(ref["trade_pnl"]["realized_pnl"])
    assert final["total_fees"] == pytest.approx(ref["total_fees"])


RUN_YAML_DAMAGE: dict[str, Callable[[Path], None]] = {
    "garbled": lambda p: p.write_text("garbage: [\n"),
    "empty": lambda p: p.write_bytes(b""),
    "binary": lambda p: p.write_bytes(bytes(range(256))),
    "deleted": lambda p: p.unlink(),
}


@pytest.mark.parametrize(
    ("day", "damage"),
    [(SECOND, "garbled"), (SECOND, "empty"), (SECOND, "deleted"), (FIRST, "garbled")],
    ids=["streaming-garbled", "streaming-empty", "streaming-deleted", "closed-garbled"],
)
def test_unreadable_run_yaml_of_a_crashed_session_is_rebuilt_and_recovered(
    tmp_path: Path,
    replay: Path,
    reference: Callable[[str], dict[str, Any]],
    damage: str,
    day: str,
) -> None:
    out = tmp_path / "out"
    sid = f"runyaml-{damage}"
    _crash(out, replay, sid)
    run_yaml = out / day / "run_1" / "run.yaml"
    RUN_YAML_DAMAGE[damage](run_yaml)
    assert _resume(out, replay, sid) == 0
    _same_as_uninterrupted(out, reference("limit"))
    rebuilt = run_yaml.read_text()
    assert f"session_id: {sid}" in rebuilt
    assert f"date: '{day}'" in rebuilt
    if damage != "deleted":
        assert len(list(run_yaml.parent.glob("run.yaml.corrupt-*"))) == 1
    assert verify_path(out) == {}


def _all_of(folder: Path, table: str, cols: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    try:
        return con.execute(
            f"SELECT {cols} FROM read_parquet('{folder}/{table}.parquet') ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()


def _garble_line(journal: Path, number: int) -> bytes:
    """Change one digit inside line ``number`` (1-based) so that it still parses as JSON.

    Returns:
        The line as it was.
    """
    lines = journal.read_bytes().split(b"\n")
    line = lines[number - 1]
    at = line.index(b".") + 1  # a digit after the first decimal point: still valid JSON
    digit = line[at : at + 1]
    lines[number - 1] = line[:at] + (b"7" if digit != b"7" else b"3") + line[at + 1 :]
    journal.write_bytes(b"\n".join(lines))
    return line


def _fill_lines(journal: Path, side: str) -> list[tuple[int, str]]:
    """(line number, trade id) of each fill line of the shared journal on ``side``."""
    out = []
    for number, line in enumerate(journal.read_bytes().split(b"\n"), start=1):
        if line.startswith(b'["trades",'):
            row = orjson.loads(line.rsplit(b"\t", 1)[0])[1]
            if row[2] == side:
                out.append((number, row[12]))
    return out


def _stats_match_trades(out: Path) -> None:
    """Every stats.yaml equals a DuckDB recomputation over the session's trades.parquet files.

    A folder's daily block covers its date's folders up to its own run; its cumulative block
    every earlier date, plus those.
    """
    con = duckdb.connect()
    try:
        con.execute(
            "CREATE TABLE t AS SELECT "
            "regexp_extract(filename, '/(\\d{4}-\\d{2}-\\d{2})/', 1) AS d, "
            "CAST(regexp_extract(filename, '/run_(\\d+)/', 1) AS INT) AS n, * "
            f"FROM read_parquet('{out}/*/run_*/trades.parquet', filename = true)"
        )
        for path in sorted(out.glob("*/run_*/stats.yaml")):
            day, run = path.parent.parent.name, int(path.parent.name.removeprefix("run_"))
            stats = yaml.safe_load(path.read_text())
            for block, where in (
                ("daily", "d = ? AND n <= ?"),
                ("cumulative", "d < ? OR (d = ? AND n <= ?)"),
            ):
                args = [day, run] if block == "daily" else [day, day, run]
                count, pnl, fees = con.execute(
                    f"SELECT count(*), coalesce(sum(pnl), 0), coalesce(sum(commission), 0) "
                    f"FROM t WHERE {where}",
                    args,
                ).fetchone() or (0, 0.0, 0.0)
                figures = stats[block]
                assert figures["trade_result"]["number_of_trades"] == count, (path, block)
                assert figures["trade_pnl"]["realized_pnl"] == pytest.approx(pnl), (path, block)
                assert figures["total_fees"] == pytest.approx(fees), (path, block)
    finally:
        con.close()


def _filled_without_trade(out: Path) -> list[str]:
    con = duckdb.connect()
    try:
        rows = con.execute(
            "WITH latest AS (SELECT order_id, status "
            f"FROM read_parquet('{out}/*/run_*/orders.parquet', filename = true) "
            "QUALIFY row_number() OVER (PARTITION BY order_id ORDER BY filename DESC) = 1) "
            "SELECT order_id FROM latest WHERE status = 'FILLED' AND order_id NOT IN "
            f"(SELECT order_id FROM read_parquet('{out}/*/run_*/trades.parquet'))"
        ).fetchall()
    finally:
        con.close()
    return [str(r[0]) for r in rows]


@pytest.mark.parametrize("side", ["BUY", "SELL"])
def test_damaged_fill_line_is_resolved_and_stats_are_rebuilt(
    tmp_path: Path,
    replay: Path,
    reference: Callable[[str], dict[str, Any]],
    side: str,
) -> None:
    out = tmp_path / "out"
    sid = f"fill-line-{side.lower()}"
    _crash(out, replay, sid)
    journal = out / SECOND / "run_1" / ".journal" / "durable.jsonl"
    fills = _fill_lines(journal, side)
    # The last fill of the side: a closing SELL books PnL that every later figure carries.
    number, trade_id = fills[-1]
    _garble_line(journal, number)
    assert _resume(out, replay, sid) == 0
    # The fill was derived again from the stored bars: nothing differs from no crash.
    _same_as_uninterrupted(out, reference("limit"))
    assert _filled_without_trade(out) == []
    _stats_match_trades(out)
    # The dropped line and the fill's resolution are in the folder's logs.
    logs = _all(out, "logs", "level, fields")
    order_id = trade_id.rsplit("-f", 1)[0]
    assert ("warning", f'{{"order_id":"{order_id}"}}') in logs
    assert len(list(journal.parent.glob("durable.jsonl.corrupt-*"))) == 1
    assert verify_path(out) == {}


def _flip_64_in_data(path: Path) -> None:
    middle = read_footer(path).data_end // 2
    data = bytearray(path.read_bytes())
    for i in range(middle - 32, middle + 32):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


def test_damaged_trades_of_the_closed_folder_are_never_read_as_rows(
    tmp_path: Path, replay: Path, reference: Callable[[str], dict[str, Any]]
) -> None:
    out = tmp_path / "out"
    sid = "closed-trades"
    _crash(out, replay, sid, "bar-closed")
    trades = out / FIRST / "run_1" / "trades.parquet"
    _flip_64_in_data(trades)
    assert _resume(out, replay, sid) == 0
    # The recovery of the crashed folder did not rebuild its figures from the damaged file:
    # they stay those counted before, and the session ends as without the damage.
    expected = reference("limit")
    final = _final_stats(out)["cumulative"]
    assert (
        final["trade_result"]["number_of_trades"]
        == (expected["stats"]["trade_result"]["number_of_trades"])
    )
    assert final["trade_pnl"]["realized_pnl"] == pytest.approx(
        expected["stats"]["trade_pnl"]["realized_pnl"]
    )
    logs = _all_of(out / SECOND / "run_1", "logs", "level, fields")
    assert ("error", f'{{"folder":"{trades.parent}"}}') in logs
    report = check_path(out)
    assert list(report) == [trades.parent]
    assert report[trades.parent].damaged == [trades]


def test_truncated_market_data_of_a_folder_no_restart_reopens_is_reported_and_quarantined(
    tmp_path: Path, replay: Path, reference: Callable[[str], dict[str, Any]]
) -> None:
    out = tmp_path / "out"
    sid = "closed-bars"
    _crash(out, replay, sid, "bar-closed")
    bars = out / FIRST / "run_1" / "market_data.parquet"
    kept = bars.read_bytes()
    bars.write_bytes(kept[: len(kept) // 2])
    assert _resume(out, replay, sid) == 0
    expected = reference("limit")
    assert _all(out, "trades", FILL_COLS) == expected["fills"]
    assert _final_orders(out) == expected["orders"]
    report = check_path(out)
    assert list(report) == [bars.parent]
    assert report[bars.parent].damaged == [bars]
    result = CliRunner().invoke(app, ["verify", str(out), "--quarantine"])
    assert result.exit_code == 1
    moved = list(bars.parent.glob("market_data.parquet.corrupt-*"))
    assert [p.read_bytes() for p in moved] == [kept[: len(kept) // 2]]


def test_temp_files_left_in_folders_of_the_session_are_removed_at_restart(
    tmp_path: Path, replay: Path
) -> None:
    out = tmp_path / "out"
    sid = "temps"
    _crash(out, replay, sid, "bar-closed")
    litter = [
        out / FIRST / "run_1" / ".trades.parquet.99999.tmp",  # a folder no recovery reopens
        out / FIRST / "run_1" / ".stats.yaml.99999.tmp",
        out / SECOND / "run_1" / ".market_data.parquet.99999.part.tmp",
    ]
    for path in litter:
        path.write_bytes(b"PAR1")
    assert _resume(out, replay, sid) == 0
    assert [p for p in litter if p.exists()] == []
    assert verify_path(out) == {}


def test_damaged_bar_line_is_reported_and_stats_still_match_the_trades(
    tmp_path: Path, replay: Path
) -> None:
    out = tmp_path / "out"
    sid = "bar-line"
    _crash(out, replay, sid)
    journal = out / SECOND / "run_1" / ".journal" / "durable.jsonl"
    lines = journal.read_bytes().split(b"\n")
    number = next(i for i, line in enumerate(lines, 1) if line.startswith(b'["market_data",'))
    _garble_line(journal, number)
    assert _resume(out, replay, sid) == 0
    # The bars of that line are lost (reported); nothing derived disagrees with what is stored.
    assert _filled_without_trade(out) == []
    _stats_match_trades(out)
    levels = [level for level, fields in _all_of(journal.parent.parent, "logs", "level, fields")]
    assert "error" in levels
    assert len(list(journal.parent.glob("durable.jsonl.corrupt-*"))) == 1
