"""Kill test: SIGKILL a paper session at seeded moments, resume it, compare with no crash."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from argo_engine.verify import verify_path
from tests.engine.helpers import utc, wave_bars, write_replay

CHILD = Path(__file__).with_name("kill_child.py")
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
BARS_PER_SYMBOL = 700  # 22:00 -> 09:40 next day: one rollover
TOTAL_BARS = BARS_PER_SYMBOL * len(SYMBOLS)


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bars = wave_bars(SYMBOLS, utc(2025, 10, 1, 22, 0), BARS_PER_SYMBOL, period=40)
    return write_replay(tmp_path_factory.mktemp("replay") / "bars.parquet", bars)


def _child(out: Path, replay: Path, session_id: str, mode: str, n: int) -> int:
    proc = subprocess.run(
        [sys.executable, str(CHILD), str(out), str(replay), session_id, mode, str(n)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
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


FILL_COLS = (
    "symbol, side, executed_at, executed_qty, executed_price, commission, pnl, position_type"
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, replay: Path) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("reference") / "out"
    assert _child(out, replay, "reference", "none", 0) == 0
    return {
        "bars": _all(out, "market_data", "*"),
        "fills": _all(out, "trades", FILL_COLS),
        "stats": _final_stats(out)["cumulative"],
    }


TRIALS = [
    *[("bar", seed) for seed in range(12)],
    *[("flush", seed) for seed in range(5)],
    *[("rollover", seed) for seed in range(1)],
    *[("double", seed) for seed in range(2)],
]


@pytest.mark.parametrize(("mode", "seed"), TRIALS)
def test_sigkill_then_resume_loses_and_duplicates_nothing(
    tmp_path: Path, replay: Path, reference: dict[str, Any], mode: str, seed: int
) -> None:
    rng = random.Random(f"{mode}-{seed}")
    out = tmp_path / "out"
    sid = f"kill-{mode}-{seed}"
    if mode == "bar":
        assert _child(out, replay, sid, "bar", rng.randint(1, TOTAL_BARS - 1)) == -signal.SIGKILL
    elif mode == "flush":
        assert _child(out, replay, sid, "flush", rng.randint(1, 40)) == -signal.SIGKILL
    elif mode == "rollover":
        assert _child(out, replay, sid, "rollover", 1) == -signal.SIGKILL
    else:  # killed twice, then resumed
        first = rng.randint(1, TOTAL_BARS // 2)
        assert _child(out, replay, sid, "bar", first) == -signal.SIGKILL
        assert _child(out, replay, sid, "bar", rng.randint(1, TOTAL_BARS // 2)) in (
            -signal.SIGKILL,
            0,
        )
    assert _child(out, replay, sid, "none", 0) == 0

    bars = _all(out, "market_data", "*")
    assert len(bars) == len(set(bars)) == TOTAL_BARS
    assert bars == reference["bars"]
    assert _all(out, "trades", FILL_COLS) == reference["fills"]
    final = _final_stats(out)["cumulative"]
    ref = reference["stats"]
    assert final["trade_result"]["number_of_trades"] == ref["trade_result"]["number_of_trades"]
    assert final["trade_pnl"]["realized_pnl"] == pytest.approx(ref["trade_pnl"]["realized_pnl"])
    assert final["trade_pnl"]["unrealized_pnl"] == pytest.approx(ref["trade_pnl"]["unrealized_pnl"])
    assert final["total_fees"] == pytest.approx(ref["total_fees"])
    assert verify_path(out) == {}
