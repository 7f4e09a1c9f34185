"""stats.yaml on disk: atomic rewrites that a concurrent reader process never sees half-done."""

from __future__ import annotations

import multiprocessing as mp
from datetime import UTC, date, datetime
from pathlib import Path

import yaml

from argo_engine.domain.ledger import PnlMethod
from argo_engine.engine.stats import StatsTracker, StrategyInfo
from argo_engine.persistence.stats_yaml import read_stats_yaml, write_stats_yaml


def _reader(path: str, stop: object, result: object) -> None:
    reads = errors = 0
    while not stop.is_set() or reads == 0:  # type: ignore[attr-defined]
        try:
            doc = yaml.safe_load(Path(path).read_text())
            if not isinstance(doc, dict) or "cumulative" not in doc or "daily" not in doc:
                errors += 1
        except (yaml.YAMLError, OSError):
            errors += 1
        reads += 1
    result.put((reads, errors))  # type: ignore[attr-defined]


def test_concurrent_reader_never_sees_a_partial_stats_yaml(tmp_path: Path) -> None:
    tracker = StatsTracker(
        session_id="s",
        run_id="run_1",
        symbols=["BTCUSDT"],
        initial_capital=1000.0,
        pnl_method=PnlMethod.FIFO,
        session_start=datetime(2025, 10, 1, tzinfo=UTC),
        strategy=StrategyInfo("id", "1", "rsi"),
        trading_date=date(2025, 10, 1),
    )
    path = tmp_path / "stats.yaml"
    doc = tracker.document(now=datetime(2025, 10, 1, tzinfo=UTC), run_folder=tmp_path)
    write_stats_yaml(path, doc)
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    result = ctx.Queue()
    proc = ctx.Process(target=_reader, args=(str(path), stop, result))
    proc.start()
    # Make the document big enough that a torn write would be visible.
    doc["symbols"] = [f"S{i}" for i in range(2000)]
    for i in range(300):
        doc["total_fees"] = float(i)
        write_stats_yaml(path, doc)
    stop.set()
    reads, errors = result.get(timeout=60)
    proc.join(60)
    assert reads > 0
    assert errors == 0
    final = read_stats_yaml(path)
    assert final["total_fees"] == 299.0
    assert isinstance(final["session_start"], str)
    assert final["session_start"].endswith("Z")
