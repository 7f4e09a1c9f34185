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

import pytest

from argo_engine.verify import verify_path
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


def _crash(out: Path, replay: Path, sid: str) -> None:
    assert _child(out, replay, sid, "bar", KILL_AT_BAR, "limit") == -signal.SIGKILL
    assert (out / SECOND / "run_1" / ".journal").is_dir()


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
