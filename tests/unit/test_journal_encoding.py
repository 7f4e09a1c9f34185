"""Shared-journal lines: batch lines and legacy one-row lines read back to the same rows."""

from __future__ import annotations

from pathlib import Path

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from argo_engine.persistence.journal import (
    encode_batch_line,
    encode_rows,
    read_tagged_journal,
    tag_lines,
)
from argo_engine.persistence.schema import LOGS

# Rows shaped like logs rows: id BIGINT, timestamp, symbol, level, message, fields.
texts = st.text(alphabet=st.sampled_from(list('ab],[\n"\\é')))
log_rows = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=2**62),
        st.integers(min_value=0, max_value=2**62),
        texts,
        texts,
        texts,
        st.one_of(st.none(), texts),
    ),
    max_size=6,
)
TAG = b'"logs",'


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.tuples(st.booleans(), log_rows), max_size=5))
def test_batch_and_one_row_lines_read_back_in_order(
    tmp_path: Path, batches: list[tuple[bool, list[tuple[object, ...]]]]
) -> None:
    data = b"".join(
        encode_batch_line(rows, TAG) if batch else tag_lines(encode_rows(rows), TAG)
        for batch, rows in batches
    )
    for line in data.splitlines():
        assert orjson.loads(line)[0] == "logs"  # every line is one JSON array
    path = tmp_path / "durable.jsonl"
    path.write_bytes(data)
    rows, corrupt, torn = read_tagged_journal(path, {"logs": LOGS})
    assert (corrupt, torn) == (0, False)
    assert rows["logs"] == [list(row) for _, batch in batches for row in batch]


def test_a_batch_with_a_bad_row_is_corrupt_as_a_whole(tmp_path: Path) -> None:
    good = (1, 0, "BTCUSDT", "INFO", "m", None)
    bad = (2, "not a timestamp", "BTCUSDT", "INFO", "m", None)
    path = tmp_path / "durable.jsonl"
    path.write_bytes(encode_batch_line([good], TAG) + encode_batch_line([good, bad], TAG))
    rows, corrupt, torn = read_tagged_journal(path, {"logs": LOGS})
    assert rows["logs"] == [list(good)]
    assert (corrupt, torn) == (1, False)


def test_a_torn_batch_line_is_ignored(tmp_path: Path) -> None:
    good = (1, 0, "BTCUSDT", "INFO", "m", None)
    line = encode_batch_line([good, (2, 0, "ETHUSDT", "INFO", "n", None)], TAG)
    path = tmp_path / "durable.jsonl"
    path.write_bytes(encode_batch_line([good], TAG) + line[:-10])
    rows, corrupt, torn = read_tagged_journal(path, {"logs": LOGS})
    assert rows["logs"] == [list(good)]
    assert (corrupt, torn) == (0, True)
