"""``uv run python -m bench <name> [options]``: throughput, persist_scaling, latency, memory,
prefetch, date_change, big_day, orchestration, checksums, instructions. Each prints a table
and, as its last line, one JSON object with the figures."""

from __future__ import annotations

import importlib
import sys

NAMES = (
    "throughput",
    "persist_scaling",
    "latency",
    "memory",
    "prefetch",
    "date_change",
    "big_day",
    "orchestration",
    "checksums",
    "instructions",
)


def main() -> None:
    """Dispatch to one benchmark module."""
    if len(sys.argv) < 2 or sys.argv[1] not in NAMES:
        print(f"usage: python -m bench {{{'|'.join(NAMES)}}} [options]")
        raise SystemExit(2)
    module = importlib.import_module(f"bench.{sys.argv[1]}")
    module.main(sys.argv[2:])


if __name__ == "__main__":
    main()
