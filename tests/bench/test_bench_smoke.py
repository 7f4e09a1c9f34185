"""Each benchmark runs at a tiny size and prints one parseable JSON line with sane figures."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CASES = {
    "throughput": ["--symbols", "2", "--bars-per-symbol", "500"],
    "throughput-cadence": ["--symbols", "2", "--bars-per-symbol", "500", "--cadence", "1000"],
    "persist_scaling": ["--sizes", "1000,5000", "--probe", "50", "--argo-probe", "2"],
    "persist_scaling-interval": [
        "--sizes",
        "1000",
        "--probe",
        "50",
        "--argo-max-size",
        "0",
        "--version-interval",
        "5",
    ],
    "latency": ["--symbols", "2", "--bars", "400", "--window", "100"],
    "memory": ["--symbols", "2", "--early", "200", "--total", "1000"],
    "prefetch": ["--days", "1", "--symbols", "1"],
    "date_change": ["--days", "3"],
    "big_day": ["--symbols", "2", "--bars-per-symbol", "600", "--read-every", "0.02"],
    "checksums": [
        "--sizes",
        "2000",
        "--probe",
        "50",
        "--symbols",
        "2",
        "--bars-per-symbol",
        "300",
        "--repeats",
        "1",
    ],
    "orchestration": [
        "--short",
        "1",
        "--long",
        "2",
        "--interval",
        "1h",
        "--modes",
        "in-process,temporary",
    ],
    "orchestration-profile": [
        "--short",
        "1",
        "--long",
        "2",
        "--interval",
        "1h",
        "--modes",
        "server",
        "--profile",
    ],
    "instructions": ["--bars", "100"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_benchmark_prints_figures(name: str) -> None:
    bench = name.split("-")[0]
    if bench == "instructions" and shutil.which("valgrind") is None:
        pytest.skip("valgrind is not installed")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", bench, *CASES[name]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["benchmark"] == bench
    if bench == "throughput":
        assert figures["market_data_rows_ok"] is True
        assert figures["trades_match_stats_ok"] is True
        assert figures["rows"]["market_data"] == 1000
        assert figures["bars_per_s"] > 0
        # Every thread's CPU counts towards "one core"; the engine thread's is part of it.
        assert 0 < figures["engine_thread_cpu_s"] <= figures["cpu_s"]
        assert figures["cadence_bars_per_s"] == (1000 if name == "throughput-cadence" else None)
    elif name == "checksums":
        assert figures["writer"][0]["versions"] > 0
        assert figures["writer"][0]["checksum_ms_per_version"] > 0
        assert figures["engine"]["median_on"] > 0
    elif name == "persist_scaling-interval":
        assert figures["version_interval_s"] == 5.0
        assert figures["versions"] == [1]
        assert figures["probe_rows"][0] >= 50
    elif name == "persist_scaling":
        assert figures["data"] == "walk"
        assert len(figures["ours_bar_us"]) == 2
        assert all(v > 0 for v in figures["argo_bar_us"])
        assert all(v >= 1 for v in figures["write_amplification"])
        assert all(v >= 1 for v in figures["versions"])
    elif name == "big_day":
        assert figures["bars"] == 1200
        assert figures["rows_ok"] is True
        assert figures["reader_failure_count"] == 0
        assert figures["reader_saw_fewer_rows"] == []
        assert figures["bytes_written_mb"] > 0
    elif name == "date_change":
        assert figures["date_changes"] == 2
        assert figures["rows_ok"] is True
        assert figures["roll_ms_median"] > 0
    elif name == "latency":
        assert figures["bars"] == 400
        assert figures["p50_ms_start"] <= figures["p99_ms_start"]
    elif name == "orchestration-profile":
        pieces = figures["server_pieces_s"]
        for piece in ("child_run", "stream_session", "finalize_day", "publish_stats"):
            assert pieces[piece]["first"] > 0
            assert pieces[piece]["last"] > 0
    elif name == "instructions":
        assert figures["bars"] == 1000
        assert 0 < figures["engine_thread_instructions"] < figures["all_threads_instructions"]
    elif name == "orchestration":
        assert set(figures["wall_s"]) == {"in-process", "temporary"}
        assert all(v > 0 for v in figures["wall_s"]["temporary"].values())
        assert "temporary" in figures["orchestration_s_per_date"]
        assert figures["cold_start_s"] > 0
    elif name == "memory":
        assert figures["rss_mb_after_total"] > 0
    else:
        assert figures["bars"] == 1440
        assert figures["bars_ok"] is True
