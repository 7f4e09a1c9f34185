"""SIGTERM (what a Prefect cancellation sends to a flow-run process) stops the stream cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from argo_engine.verify import verify_path

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e

SCRIPT = """
import sys
from argo_engine.options import RunOptions
from flows.session import trading_session
trading_session(options=RunOptions(data_output=sys.argv[1], feed="synthetic", pace="realtime",
                                   interval="1s", bars=3600, symbols=["BTCUSDT"]),
                session_id="cancel-me")
"""


def streamed_bars(path: Path) -> int:
    try:
        with path.open("rb") as handle:  # one open: one consistent version of the file
            return int(pq.ParquetFile(handle).metadata.num_rows)
    except (OSError, pa.ArrowException):
        return 0  # not created yet


def test_sigterm_during_stream_flushes_and_finalizes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARGO_", "PREFECT_"))}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    # As `argo run` sets them: a slow first start of the temporary API must not fail the test.
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    market = out / "2025-10-01" / "run_1" / "market_data.parquet"
    deadline = time.monotonic() + 180
    # Wait (bounded) until the paced stream has materialized a few bars: an external process
    # offers no other signal than its files.
    while streamed_bars(market) < 3:
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:] if proc.stdout else ""
        assert time.monotonic() < deadline, "the stream never started"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output.decode()[-3000:]
    folder = out / "2025-10-01" / "run_1"
    con = duckdb.connect()
    (bars,) = con.execute(
        f"SELECT count(*) FROM read_parquet('{folder / 'market_data.parquet'}')"
    ).fetchone()  # type: ignore[misc]
    assert 0 < bars < 3600
    assert verify_path(out) == {}  # journal drained, stats.yaml consistent, files readable
