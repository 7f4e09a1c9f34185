"""prefetch: 30 days of 1m klines for 10 symbols from the mock Binance server."""

from __future__ import annotations

import argparse
import importlib
import json
from typing import Any


def main(argv: list[str]) -> None:
    """CLI of the benchmark (skips with a message while the mock server is unavailable)."""
    parser = argparse.ArgumentParser(prog="python -m bench prefetch")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--symbols", type=int, default=10)
    args = parser.parse_args(argv)
    try:
        importlib.import_module("argo_engine.testing.mock_binance")
        importlib.import_module("argo_engine.providers.binance.data")
        importlib.import_module("bench.prefetch_run")
    except ImportError as exc:
        print(f"prefetch: skipped, the Binance adapter or mock server is unavailable ({exc})")
        print(json.dumps({"benchmark": "prefetch", "skipped": str(exc)}))
        return
    from bench.prefetch_run import run

    figures: dict[str, Any] = run(args.days, args.symbols)
    from bench.common import report

    report("prefetch", list(figures.items()), figures)
