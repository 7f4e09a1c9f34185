"""orchestration: the same session in-process and as the trading-session Prefect flow.

Each run is ``argo run`` in a child process (what a user starts, start-up included) on the
synthetic feed, one symbol, for a short and a long session, modes interleaved. Figures:

- ``wall_s``: whole runs.
- ``marginal_s_per_date``: (long - short) / (long dates - short dates), per mode; what a
  further trading date costs.
- ``orchestration_s_per_date``: a mode's marginal minus the in-process one (the acceptance
  figure of issue 23, target <= 1.0 s).
- ``fixed_startup_s``: short wall minus short dates x marginal, per mode.
- ``first_dates_s`` / ``last_dates_s``: median gap between consecutive dates' run folder
  creations (run.yaml mtimes) over the first and the last few dates of the long session, per
  mode, and ``*_overhead_s`` the same minus in-process: flat means day N costs what day 1 does.
- ``ratio``: wall of a mode over the in-process wall, per length.

Modes: ``in-process`` (``--no-prefect``), ``temporary`` (the temporary local Prefect API that
``argo run`` starts) and ``server`` (a Prefect API already running, given by PREFECT_API_URL;
started here for the benchmark and reused by every run).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import report

MODES = ("in-process", "temporary", "server")
BARS_PER_DAY = {"1m": 1440, "5m": 288, "15m": 96, "1h": 24}


def run_once(
    mode: str, dates: int, interval: str, out: Path, env: dict[str, str]
) -> tuple[float, list[float]]:
    """One ``argo run``; its wall time and the creation times of its run folders."""
    cmd = [
        sys.executable,
        "-c",
        "from argo_engine.cli import main; main()",
        "run",
        "--data-output",
        str(out),
        "--symbols",
        "BTCUSDT",
        "--interval",
        interval,
        "--start",
        "2025-10-01T00:00:00Z",
        "--pace",
        "fast",
        "--bars",
        str(dates * BARS_PER_DAY[interval]),
    ]
    if mode == "in-process":
        cmd.append("--no-prefect")
    t0 = time.time()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.time() - t0
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise SystemExit(f"orchestration: {mode} run of {dates} dates failed: {tail}")
    starts = sorted(p.stat().st_mtime for p in out.glob("*/run_*/run.yaml"))
    if len(starts) != dates:
        raise SystemExit(f"orchestration: {mode} run wrote {len(starts)} dates, not {dates}")
    return wall, [s - t0 for s in starts]


def _gaps(starts: list[float], first: bool, k: int) -> float:
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    if not gaps:
        return 0.0
    return statistics.median(gaps[:k] if first else gaps[-k:])


def run(
    short: int, long: int, modes: list[str], interval: str, repeat: int, profile: bool = False
) -> dict[str, Any]:
    """Interleave the modes and lengths ``repeat`` times; medians of each figure.

    With ``profile``, the last long server-mode session's dates are also read back from the
    API, piece by piece (:mod:`bench.orchestration_profile`).
    """
    if short < 1 or long <= short:
        raise SystemExit("orchestration: need 1 <= --short < --long")
    root = Path(tempfile.mkdtemp(prefix="argo-bench-orch-"))
    env = {**os.environ, "PREFECT_HOME": str(root / "prefect-home")}
    env.pop("PREFECT_API_URL", None)
    # The running server has its own database: the temporary APIs' runs do not share it.
    server_env = {**env, "PREFECT_HOME": str(root / "server-home")}
    api = None
    if "server" in modes:
        from flows.local_api import LocalApi

        os.environ["PREFECT_HOME"] = server_env["PREFECT_HOME"]
        api = LocalApi()
        api.start()
        api.wait_ready()
        server_env["PREFECT_API_URL"] = api.url
    walls: dict[tuple[str, int], list[float]] = {}
    pieces: dict[str, dict[str, float]] | None = None
    starts: dict[str, list[list[float]]] = {m: [] for m in modes}
    try:
        # Untimed first runs warm the file cache and the bytecode, and create the temporary
        # API's database (a first start on a fresh PREFECT_HOME migrates it: cold_start_s).
        run_once("in-process", 1, interval, root / "warm", env)
        cold = None
        if "temporary" in modes:
            cold, _ = run_once("temporary", 1, interval, root / "warm-t", env)
        n = 0
        for _ in range(repeat):
            for dates in (short, long):
                for mode in modes:
                    n += 1
                    since = datetime.now(UTC)
                    wall, st = run_once(
                        mode,
                        dates,
                        interval,
                        root / f"o{n}",
                        server_env if mode == "server" else env,
                    )
                    walls.setdefault((mode, dates), []).append(wall)
                    if dates == long:
                        starts[mode].append(st)
                    if profile and mode == "server" and dates == long:
                        from bench.orchestration_profile import profile as read_profile

                        os.environ["PREFECT_API_URL"] = server_env["PREFECT_API_URL"]
                        k = max(1, min(10, long // 4))
                        pieces = read_profile(since, k, k)
    finally:
        if api is not None:
            api.stop()
    med = {k: statistics.median(v) for k, v in walls.items()}
    k = max(1, min(3, long // 3))
    out: dict[str, Any] = {
        "short_dates": short,
        "long_dates": long,
        "interval": interval,
        "repeat": repeat,
        "cold_start_s": None if cold is None else round(cold, 2),
        "wall_s": {m: {str(d): round(med[(m, d)], 2) for d in (short, long)} for m in modes},
    }
    marginal = {m: (med[(m, long)] - med[(m, short)]) / (long - short) for m in modes}
    out["marginal_s_per_date"] = {m: round(v, 3) for m, v in marginal.items()}
    out["fixed_startup_s"] = {m: round(med[(m, short)] - short * marginal[m], 2) for m in modes}
    first = {m: statistics.median(_gaps(s, True, k) for s in starts[m]) for m in modes}
    last = {m: statistics.median(_gaps(s, False, k) for s in starts[m]) for m in modes}
    out["first_dates_s"] = {m: round(v, 3) for m, v in first.items()}
    out["last_dates_s"] = {m: round(v, 3) for m, v in last.items()}
    if "in-process" in modes:
        base = "in-process"
        others = [m for m in modes if m != base]
        out["orchestration_s_per_date"] = {
            m: round(marginal[m] - marginal[base], 3) for m in others
        }
        out["first_dates_overhead_s"] = {m: round(first[m] - first[base], 3) for m in others}
        out["last_dates_overhead_s"] = {m: round(last[m] - last[base], 3) for m in others}
        out["ratio"] = {
            m: {str(d): round(med[(m, d)] / med[(base, d)], 2) for d in (short, long)}
            for m in others
        }
        out["target_s_per_date"] = 1.0
    if pieces is not None:
        out["server_pieces_s"] = pieces
    return out


def main(argv: list[str]) -> None:
    """CLI of the benchmark."""
    parser = argparse.ArgumentParser(prog="python -m bench orchestration")
    parser.add_argument("--short", type=int, default=3, help="Dates of the short session.")
    parser.add_argument("--long", type=int, default=30, help="Dates of the long session.")
    parser.add_argument("--modes", default="in-process,temporary,server")
    parser.add_argument("--interval", default="1m", choices=sorted(BARS_PER_DAY))
    parser.add_argument("--repeat", type=int, default=1, help="Rounds (medians are reported).")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="Read the long server-mode session's dates back from the API, piece by piece.",
    )
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if any(m not in MODES for m in modes):
        raise SystemExit(f"orchestration: --modes takes {','.join(MODES)}")
    figures = run(args.short, args.long, modes, args.interval, args.repeat, args.profile)
    rows: list[tuple[str, Any]] = []
    for key in ("wall_s", "marginal_s_per_date", "fixed_startup_s", "first_dates_s",
                "last_dates_s", "orchestration_s_per_date", "ratio"):  # fmt: skip
        for mode, value in figures.get(key, {}).items():
            rows.append((f"{key} {mode}", value))
    report("orchestration", rows, figures)
