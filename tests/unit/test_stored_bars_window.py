"""The warm-up's stored bars: the newest dates first, widened until every symbol has enough."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from argo_engine.session import stored_bars

START = datetime(2025, 10, 1, tzinfo=UTC)


def _write_day(out: Path, day: int, symbols: list[str], per_day: int) -> None:
    folder = out / (START + timedelta(days=day)).date().isoformat() / "run_1"
    folder.mkdir(parents=True)
    times, syms, closes = [], [], []
    for i in range(per_day):
        t = START + timedelta(days=day, minutes=i * (1440 // per_day))
        for s in symbols:
            times.append(t.replace(tzinfo=None))
            syms.append(s)
            closes.append(100.0 + day + i / 1000)
    table = pa.table(
        {
            "time": pa.array(times, pa.timestamp("us")),
            "symbol": syms,
            "open": closes,
            "high": closes,
            "low": closes,
            "close": closes,
            "volume": [1.0] * len(closes),
        }
    )
    pq.write_table(table, folder / "market_data.parquet")


def test_last_bars_span_as_many_dates_as_needed_and_skip_later_ones(tmp_path: Path) -> None:
    out = tmp_path / "out"
    for day in range(10):
        # ETHUSDT trades only on the first days: its last bars lie far back.
        _write_day(out, day, ["BTCUSDT", "ETHUSDT"] if day < 3 else ["BTCUSDT"], 4)
    before = START + timedelta(days=8)
    bars = stored_bars(out, ["BTCUSDT", "ETHUSDT"], before, 6)
    btc = [b.time for b in bars if b.symbol == "BTCUSDT"]
    eth = [b.time for b in bars if b.symbol == "ETHUSDT"]
    # The last 6 BTC bars before day 8: day 6's last two and all of day 7; nothing of day 8+.
    assert btc == [START + timedelta(days=6, hours=12), START + timedelta(days=6, hours=18)] + [
        START + timedelta(days=7, hours=h) for h in (0, 6, 12, 18)
    ]
    # ETH's last 6 lie on days 1 and 2: the window widened back to them.
    assert eth == [START + timedelta(days=1, hours=h) for h in (12, 18)] + [
        START + timedelta(days=2, hours=h) for h in (0, 6, 12, 18)
    ]
    assert bars == sorted(bars, key=lambda b: (b.time, b.symbol))
