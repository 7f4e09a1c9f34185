"""Kill test: SIGKILL a paper session at seeded moments, resume it, compare with no crash.

Two strategies: ``rsi`` (MARKET orders) and ``limit`` (resting LIMIT orders, cancels and
MARKET exits), so that kills also land while orders rest at the paper broker.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from argo_engine.verify import verify_path
from tests.engine.helpers import utc, wave_bars, write_replay

CHILD = "tests.recovery.kill_child"
ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
BARS_PER_SYMBOL = 700  # 22:00 -> 09:40 next day: one rollover
TOTAL_BARS = BARS_PER_SYMBOL * len(SYMBOLS)
# Kill points of the flush modes, in counted writes. The child's clock moves with the bars, so
# the N-th write is the same one in every run, however loaded the machine: in ``bgflush`` the
# writes up to 320 span the first date (orders, fills, resting orders), its close and the
# next date's open; in ``flush`` (parquet writes only) about half the session. A full run
# makes well over 320 of either.
WRITE_KILL_POINTS = 320


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bars = wave_bars(SYMBOLS, utc(2025, 10, 1, 22, 0), BARS_PER_SYMBOL, period=40)
    return write_replay(tmp_path_factory.mktemp("replay") / "bars.parquet", bars)


def _child(out: Path, replay: Path, session_id: str, mode: str, n: int, strategy: str) -> int:
    proc = subprocess.run(
        [sys.executable, "-m", CHILD, str(out), str(replay), session_id, mode, str(n), strategy],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=ROOT,
    )
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.returncode


def _all(out: Path, table: str, cols: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    try:
        return con.execute(
            f"SELECT {cols} FROM read_parquet('{out}/*/run_*/{table}.parquet') ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()


def _final_stats(out: Path) -> dict[str, Any]:
    latest = max(
        out.glob("*/run_*/stats.yaml"), key=lambda p: (p.parent.parent.name, p.stat().st_mtime)
    )
    return yaml.safe_load(latest.read_text())


def _final_orders(out: Path) -> list[tuple[Any, ...]]:
    """Each order's last row across the session's folders (later date, then later run, wins).

    Order ids are left out: a resumed session numbers the orders of its new run differently.
    """
    con = duckdb.connect()
    try:
        return con.execute(
            "SELECT symbol, side, order_type, quantity, price, timestamp, status, reason "
            f"FROM read_parquet('{out}/*/run_*/orders.parquet', filename = true) "
            "QUALIFY row_number() OVER (PARTITION BY order_id ORDER BY filename DESC) = 1 "
            "ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()


FILL_COLS = (
    "symbol, side, executed_at, executed_qty, executed_price, commission, pnl, position_type"
)


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, replay: Path
) -> Callable[[str], dict[str, Any]]:
    """The uninterrupted run of a strategy (computed once per strategy)."""
    done: dict[str, dict[str, Any]] = {}

    def get(strategy: str) -> dict[str, Any]:
        if strategy not in done:
            out = tmp_path_factory.mktemp(f"reference-{strategy}") / "out"
            assert _child(out, replay, "reference", "none", 0, strategy) == 0
            done[strategy] = {
                "bars": _all(out, "market_data", "*"),
                "fills": _all(out, "trades", FILL_COLS),
                "orders": _final_orders(out),
                "stats": _final_stats(out)["cumulative"],
            }
        return done[strategy]

    return get


TRIALS = [
    *[("rsi", "bar", seed) for seed in range(6)],
    *[("rsi", "flush", seed) for seed in range(3)],
    *[("rsi", "bgflush", seed) for seed in range(3)],
    *[("rsi", "rollover", seed) for seed in range(1)],
    *[("rsi", "double", seed) for seed in range(1)],
    *[("limit", "bar", seed) for seed in range(10)],
    *[("limit", "flush", seed) for seed in range(3)],
    *[("limit", "bgflush", seed) for seed in range(3)],
    *[("limit", "rollover", seed) for seed in range(1)],
    *[("limit", "double", seed) for seed in range(2)],
]


@pytest.mark.parametrize(("strategy", "mode", "seed"), TRIALS)
def test_sigkill_then_resume_loses_and_duplicates_nothing(
    tmp_path: Path,
    replay: Path,
    reference: Callable[[str], dict[str, Any]],
    strategy: str,
    mode: str,
    seed: int,
) -> None:
    rng = random.Random(f"{mode}-{seed}" if strategy == "rsi" else f"{strategy}-{mode}-{seed}")
    out = tmp_path / "out"
    sid = f"kill-{mode}-{seed}"

    def child(kind: str, n: int) -> int:
        return _child(out, replay, sid, kind, n, strategy)

    if mode == "bar":
        assert child("bar", rng.randint(1, TOTAL_BARS - 1)) == -signal.SIGKILL
    elif mode in ("flush", "bgflush"):
        assert child(mode, rng.randint(1, WRITE_KILL_POINTS)) == -signal.SIGKILL
    elif mode == "rollover":
        assert child("rollover", 1) == -signal.SIGKILL
    else:  # killed twice, then resumed
        assert child("bar", rng.randint(1, TOTAL_BARS // 2)) == -signal.SIGKILL
        assert child("bar", rng.randint(1, TOTAL_BARS // 2)) in (-signal.SIGKILL, 0)
    assert child("none", 0) == 0

    expected = reference(strategy)
    bars = _all(out, "market_data", "*")
    assert len(bars) == len(set(bars)) == TOTAL_BARS
    assert bars == expected["bars"]
    assert _all(out, "trades", FILL_COLS) == expected["fills"]
    # Every order ends as in the uninterrupted run: resting ones rest on, none is FAILED.
    assert _final_orders(out) == expected["orders"]
    final = _final_stats(out)["cumulative"]
    ref = expected["stats"]
    assert final["trade_result"]["number_of_trades"] == ref["trade_result"]["number_of_trades"]
    assert final["trade_pnl"]["realized_pnl"] == pytest.approx(ref["trade_pnl"]["realized_pnl"])
    assert final["trade_pnl"]["unrealized_pnl"] == pytest.approx(ref["trade_pnl"]["unrealized_pnl"])
    assert final["total_fees"] == pytest.approx(ref["total_fees"])
    assert verify_path(out) == {}
