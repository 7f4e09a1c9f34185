"""Hostile market data: every bad bar is rejected (logged, counted), never a crash."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from argo_engine.clock import FakeClock
from argo_engine.domain.market import Bar
from argo_engine.engine.callbacks import EngineCallbacks
from argo_engine.engine.validation import validate_bar
from argo_engine.errors import ConfigurationError, DataError
from argo_engine.providers.replay import ReplayFeed
from argo_engine.session import run_session
from argo_engine.testing.feeds import ListFeed
from tests.engine.helpers import rows, utc, wave_bars

T0 = utc(2025, 10, 1, 0, 0)
NAIVE = datetime(2025, 10, 1, 0, 5)  # a naive time: the bad input

# (description, bar): each one a single bad field of an otherwise good bar.
BAD: list[tuple[str, Any]] = [
    ("null close", ("BTCUSDT", T0, 100.0, 101.0, 99.0, None, 1.0)),
    ("null volume", ("BTCUSDT", T0, 100.0, 101.0, 99.0, 100.0, None)),
    ("null open", ("BTCUSDT", T0, None, 101.0, 99.0, 100.0, 1.0)),
    ("null time", ("BTCUSDT", None, 100.0, 101.0, 99.0, 100.0, 1.0)),
    ("null symbol", (None, T0, 100.0, 101.0, 99.0, 100.0, 1.0)),
    ("unhashable symbol", (["BTCUSDT"], T0, 100.0, 101.0, 99.0, 100.0, 1.0)),
    ("time as text", ("BTCUSDT", "2025-10-01T00:05:00Z", 100.0, 101.0, 99.0, 100.0, 1.0)),
    ("naive time", ("BTCUSDT", NAIVE, 100.0, 101.0, 99.0, 100.0, 1.0)),
    ("text close", ("BTCUSDT", T0, 100.0, 101.0, 99.0, "100.5", 1.0)),
    ("text everything", ("BTCUSDT", T0, "100", "101", "99", "100", "1")),
    ("bool prices", ("BTCUSDT", T0, True, True, True, True, True)),
    ("decimal close", ("BTCUSDT", T0, 100.0, 101.0, 99.0, Decimal("100.5"), 1.0)),
    ("nan close", ("BTCUSDT", T0, 100.0, 101.0, 99.0, float("nan"), 1.0)),
    ("inf high", ("BTCUSDT", T0, 100.0, float("inf"), 99.0, 100.0, 1.0)),
    ("negative low", ("BTCUSDT", T0, 100.0, 101.0, -99.0, 100.0, 1.0)),
    ("zero prices", ("BTCUSDT", T0, 0.0, 0.0, 0.0, 0.0, 1.0)),
    ("negative volume", ("BTCUSDT", T0, 100.0, 101.0, 99.0, 100.0, -1.0)),
    ("nan volume", ("BTCUSDT", T0, 100.0, 101.0, 99.0, 100.0, float("nan"))),
    ("high below low", ("BTCUSDT", T0, 100.0, 99.0, 101.0, 100.0, 1.0)),
    ("close above high", ("BTCUSDT", T0, 100.0, 101.0, 99.0, 1e12, 1.0)),
    ("huge float", ("BTCUSDT", T0, 1e308, 1e309, 1e308, 1e308, 1.0)),
]


@pytest.mark.parametrize(("name", "values"), BAD, ids=[b[0] for b in BAD])
def test_validate_bar_names_every_bad_field(name: str, values: Any) -> None:
    problem = validate_bar(Bar(*values), {"BTCUSDT"})
    assert isinstance(problem, DataError), name


def test_int_prices_are_numbers() -> None:
    assert validate_bar(Bar("BTCUSDT", T0, 100, 101, 99, 100, 0), {"BTCUSDT"}) is None


def test_engine_rejects_each_bad_bar_and_keeps_every_good_one(make_settings: Any) -> None:
    good = wave_bars(["BTCUSDT"], T0, 120)
    stream: list[Any] = []
    for i, bar in enumerate(good):
        stream.append(bar)
        if i % 5 == 2 and i // 5 < len(BAD):
            _, values = BAD[i // 5]
            # Each bad bar comes just after a good one, with a time after it when it has one.
            values = list(values)
            if isinstance(values[1], datetime) and values[1].tzinfo is not None:
                values[1] = bar.time + timedelta(seconds=30)
            stream.append(Bar(*values))
    errors: list[Exception] = []
    settings = make_settings(session={"symbols": ["BTCUSDT"], "session_id": "bad"})
    plan, _ = run_session(
        settings,
        clock=FakeClock(utc(2025, 10, 1)),
        feed=ListFeed(stream),
        callbacks=EngineCallbacks(on_error=errors.append),
    )
    folder = Path(settings.session.data_output) / "2025-10-01" / f"run_{plan.run_number}"
    assert len(rows(folder / "market_data.parquet")) == len(good)
    assert sum(1 for e in errors if isinstance(e, DataError)) == len(BAD)
    logged = rows(folder / "logs.parquet", "SELECT * FROM t WHERE level = 'error'")
    assert len(logged) == len(BAD)


def _null_table(n: int = 300, **nulls: list[int]) -> pa.Table:
    times: list[datetime | None] = [T0 + timedelta(minutes=i) for i in range(n)]
    symbols: list[str | None] = ["XYZUSDT"] * n
    close: list[float | None] = [100.0 + (i % 7) for i in range(n)]
    volume: list[float | None] = [1.0] * n
    for i in nulls.get("close", []):
        close[i] = None
    for i in nulls.get("volume", []):
        volume[i] = None
    for i in nulls.get("time", []):
        times[i] = None
    for i in nulls.get("symbol", []):
        symbols[i] = None
    return pa.table(
        {
            "time": pa.array(times, pa.timestamp("us", tz="UTC")),
            "symbol": symbols,
            "open": [100.0 + (i % 7) for i in range(n)],
            "high": [108.0] * n,
            "low": [99.0] * n,
            "close": close,
            "volume": volume,
        }
    )


@pytest.mark.parametrize(
    "feed_options",
    [{}, {"symbols": ["XYZUSDT"]}, {"start": "2025-10-01T00:00:00Z", "end": "2025-10-02T00:00Z"}],
    ids=["all", "symbols", "start-end"],
)
def test_replay_file_with_null_fields_rejects_those_bars(
    make_settings: Any, tmp_path: Path, feed_options: dict[str, Any]
) -> None:
    path = tmp_path / "nulls.parquet"
    pq.write_table(_null_table(close=[50, 120], volume=[7], time=[200], symbol=[250]), path)
    errors: list[Exception] = []
    settings = make_settings(
        session={"symbols": ["XYZUSDT"], "session_id": "nulls"},
        feed={"kind": "replay", "replay_file": str(path)}
        | {k: v for k, v in feed_options.items() if k != "symbols"},
    )
    plan, _ = run_session(
        settings,
        clock=FakeClock(utc(2025, 10, 1)),
        callbacks=EngineCallbacks(on_error=errors.append),
    )
    folder = Path(settings.session.data_output) / "2025-10-01" / f"run_{plan.run_number}"
    assert len(rows(folder / "market_data.parquet")) == 300 - 5
    assert sum(1 for e in errors if isinstance(e, DataError)) == 5


@pytest.mark.parametrize(("column", "arrow_type"), [("close", pa.string()), ("time", pa.string())])
def test_replay_file_with_text_column_is_refused_naming_it(
    tmp_path: Path, column: str, arrow_type: pa.DataType
) -> None:
    table = _null_table(10)
    index = table.schema.get_field_index(column)
    table = table.set_column(index, column, pa.array([str(v) for v in table.column(column)]))
    assert table.schema.field(column).type == arrow_type
    path = tmp_path / "text.parquet"
    pq.write_table(table, path)
    with pytest.raises(ConfigurationError, match=f"column {column} is VARCHAR"):
        ReplayFeed(path=path)


def test_multi_row_group_file_streams_in_order_with_a_symbol_filter(tmp_path: Path) -> None:
    # A market_data file the engine appended to in many chunks: one row group per flush.
    path = tmp_path / "market_data.parquet"
    symbols = ["AAAUSDT", "BBBUSDT", "CCCUSDT"]
    bars = wave_bars(symbols, T0, 30_000, step=timedelta(seconds=1))
    schema = pa.schema(
        [("time", pa.timestamp("us")), ("symbol", pa.string())]
        + [(c, pa.float64()) for c in ("open", "high", "low", "close", "volume")]
    )
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, len(bars), 1000):
            chunk = bars[start : start + 1000]
            writer.write_table(
                pa.table(
                    {
                        "time": [b.time.replace(tzinfo=None) for b in chunk],
                        "symbol": [b.symbol for b in chunk],
                        **{c: [getattr(b, c) for b in chunk] for c in schema.names[2:]},
                    },
                    schema=schema,
                )
            )
    assert pq.ParquetFile(path).num_row_groups == 90
    for wanted in (None, symbols, symbols[:2]):
        feed = ReplayFeed(path=path, symbols=wanted)
        assert feed._in_order
        got = [(b.time, b.symbol) for b in feed.stream(threading.Event())]
        assert len(got) == len(bars) * len(wanted or symbols) // len(symbols)
        assert got == sorted(got)
        assert len(set(got)) == len(got)
