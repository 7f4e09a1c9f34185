"""instructions: callgrind instruction counts of a replay, to compare two checkouts.

Wall and CPU times on these shared 2-core machines vary by 20-40% from run to run; the
instructions a run executes vary by well under 1%. This benchmark runs the throughput
benchmark's replay (10 symbols, RSI, paper broker, persistence, stats.yaml; the cadence clock,
so flushes fall on the same bars) under ``valgrind --tool=callgrind --separate-threads=yes``
with instrumentation switched on only around ``run_session``, and prints the instructions of
the engine thread (the main thread) and of all threads.

Compare two checkouts by running it in each (at once: one per core does not disturb the
counts), e.g. ``uv run python -m bench instructions --bars 5000`` (50,000 bars: about four
minutes under valgrind). Needs ``valgrind`` and ``callgrind_control`` on PATH.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import report

N_SYMBOLS = 10
_TOTALS = re.compile(r"^totals:\s+(\d+)", re.MULTILINE)


def workload(workdir: Path, bars: int) -> None:
    """The instrumented part: a replay through ``run_session`` (run inside valgrind)."""
    from argo_engine.session import run_session
    from argo_engine.settings import load_settings
    from bench.common import replay_file, symbols
    from bench.throughput import CadenceClock

    replay = replay_file(workdir / "data", N_SYMBOLS, bars, interval="1m")
    settings = load_settings(
        None,
        session={
            "data_output": str(workdir / f"out-{time.time_ns()}"),
            "symbols": symbols(N_SYMBOLS),
            "initial_capital": 1e9,
        },
        feed={"kind": "replay", "replay_file": str(replay)},
    )
    pid = str(os.getpid())
    subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
    run_session(settings, clock=CadenceClock(2000.0))
    subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)


def totals(out: Path) -> dict[str, int]:
    """Instructions per thread file of a callgrind run (``cg.PID-NN``)."""
    counts = {}
    for path in sorted(out.glob("cg.*")):
        found = _TOTALS.search(path.read_text(errors="replace"))
        counts[path.name] = int(found.group(1)) if found else 0
    return counts


def run(bars: int) -> dict[str, Any]:
    """Run the workload under callgrind in a child process; its instruction counts."""
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            raise SystemExit(f"instructions: {tool} is not installed")
    root = Path(tempfile.mkdtemp(prefix="argo-bench-cg-"))
    out = root / "callgrind"
    out.mkdir()
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--separate-threads=yes",
        "--instr-atstart=no",
        f"--callgrind-out-file={out}/cg.%p",
        sys.executable,
        "-m",
        "bench.instructions",
        "--workload",
        str(root / "work"),
        "--bars",
        str(bars),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"instructions: the workload failed: {proc.stderr[-2000:]}")
    counts = totals(out)
    shutil.rmtree(root, ignore_errors=True)
    main_thread = [v for k, v in counts.items() if k.endswith("-01")]
    return {
        "bars": bars * N_SYMBOLS,
        "engine_thread_instructions": main_thread[0] if main_thread else None,
        "all_threads_instructions": sum(counts.values()),
        "threads": len(counts),
    }


def main(argv: list[str]) -> None:
    """CLI of the benchmark."""
    parser = argparse.ArgumentParser(prog="python -m bench instructions")
    parser.add_argument("--bars", type=int, default=5000, help="Bars per symbol (10 symbols).")
    parser.add_argument("--workload", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.workload is not None:
        workload(args.workload, args.bars)
        return
    figures = run(args.bars)
    report("instructions", list(figures.items()), figures)


if __name__ == "__main__":
    main(sys.argv[1:])
