"""Prefix-preserving parquet appends, checked by DuckDB and pyarrow reading the results."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from argo_engine.persistence.parquet_append import (
    ParquetAppendError,
    append_file,
    data_bytes,
    decode_struct,
    encode_struct,
    read_footer,
)

# Every column type the writers use, NULLs included, and a low-cardinality text column (DuckDB
# dictionary-encodes it and adds a bloom filter, whose offset must move too).
ROWS_SQL = (
    "SELECT TIMESTAMP '2025-10-01' + to_microseconds(i * 60000000) AS time, "
    "'SYM' || (i % 3)::VARCHAR AS symbol, i::DOUBLE AS close, i::BIGINT AS id, "
    "CASE WHEN i % 4 = 0 THEN NULL ELSE 'msg ' || i::VARCHAR END AS message "
    "FROM range({start}, {stop}) t(i)"
)


def write(con: duckdb.DuckDBPyConnection, path: Path, start: int, stop: int) -> None:
    con.execute(f"COPY ({ROWS_SQL.format(start=start, stop=stop)}) TO '{path}' (FORMAT PARQUET)")


def append(target: Path, part: Path, *, supersede: bool = False) -> None:
    footer = read_footer(target)
    tmp = target.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        append_file(target, footer, part, fd, supersede=supersede)
    finally:
        os.close(fd)
    os.replace(tmp, target)


@pytest.mark.parametrize("rows", [1, 1000, 300_000])  # 300k rows: several row groups
def test_footer_round_trips_byte_for_byte(tmp_path: Path, rows: int) -> None:
    path = tmp_path / "f.parquet"
    write(duckdb.connect(), path, 0, rows)
    data = path.read_bytes()
    length = int.from_bytes(data[-8:-4], "little")
    raw = data[-8 - length : -8]
    assert encode_struct(decode_struct(raw)) == raw


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sizes=st.lists(st.integers(1, 400), min_size=1, max_size=8))
def test_appends_read_back_exactly_and_keep_each_version_as_prefix(
    tmp_path: Path, sizes: list[int]
) -> None:
    folder = tmp_path / f"case-{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    con = duckdb.connect()
    target, part = folder / "t.parquet", folder / "part.parquet"
    write(con, target, 0, 5)
    stop = 5
    for size in sizes:
        before = target.read_bytes()
        kept = read_footer(target).data_end
        write(con, part, stop, stop + size)
        append(target, part)
        stop += size
        # The old data (everything before the old footer) is unchanged, at the same offsets.
        assert target.read_bytes()[:kept] == before[:kept]
    expected = con.execute(f"SELECT * FROM ({ROWS_SQL.format(start=0, stop=stop)})").fetchall()
    got = con.execute(f"SELECT * FROM read_parquet('{target}')").fetchall()
    assert got == expected
    table = pq.read_table(target)
    assert table.num_rows == stop
    assert table.column("id").to_pylist() == list(range(stop))
    assert pq.read_metadata(target).num_row_groups == len(sizes) + 1


def test_old_footer_offsets_still_read_the_old_rows_in_the_new_file(tmp_path: Path) -> None:
    """What a reader that mixes two versions does: old footer, new file's bytes."""
    con = duckdb.connect()
    target, part = tmp_path / "t.parquet", tmp_path / "part.parquet"
    write(con, target, 0, 50)
    old = target.read_bytes()
    write(con, part, 50, 90)
    append(target, part)
    new = target.read_bytes()
    footer = read_footer(tmp_path / "t.parquet")
    assert footer.num_rows == 90
    # Splice the old footer onto the new file's body: the old rows must come back intact.
    length = int.from_bytes(old[-8:-4], "little")
    mixed = tmp_path / "mixed.parquet"
    mixed.write_bytes(new[: len(old) - 8 - length] + old[-8 - length :])
    assert pq.read_table(mixed).column("id").to_pylist() == list(range(50))


def test_superseding_lists_only_the_new_rows_and_keeps_the_old_bytes(tmp_path: Path) -> None:
    con = duckdb.connect()
    target, part = tmp_path / "t.parquet", tmp_path / "part.parquet"
    write(con, target, 0, 50)
    old = target.read_bytes()
    write(con, part, 10, 30)  # the whole new table: other rows than before
    append(target, part, supersede=True)
    new = target.read_bytes()
    length = int.from_bytes(old[-8:-4], "little")
    assert new.startswith(old[: len(old) - 8 - length])
    assert read_footer(target).num_rows == 20
    assert pq.read_table(target).column("id").to_pylist() == list(range(10, 30))
    got = con.execute(f"SELECT id FROM read_parquet('{target}') ORDER BY id").fetchall()
    assert [r[0] for r in got] == list(range(10, 30))
    # The old rows stay behind, unreferenced: a reader holding the old footer still reads them.
    mixed = tmp_path / "mixed.parquet"
    mixed.write_bytes(new[: len(old) - 8 - length] + old[-8 - length :])
    assert pq.read_table(mixed).column("id").to_pylist() == list(range(50))
    # Data bytes: the old data, then the part's.
    assert data_bytes(target) == (len(old) - 12 - length) + data_bytes(part)


def test_other_schema_is_refused(tmp_path: Path) -> None:
    con = duckdb.connect()
    target, part = tmp_path / "t.parquet", tmp_path / "part.parquet"
    write(con, target, 0, 5)
    con.execute(f"COPY (SELECT 1 AS other) TO '{part}' (FORMAT PARQUET)")
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with pytest.raises(ParquetAppendError, match="schema"):
            append_file(target, read_footer(target), part, fd)
    finally:
        os.close(fd)


@pytest.mark.parametrize("content", [b"", b"PAR1", b"not parquet at all, longer than twelve"])
def test_non_parquet_files_are_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.parquet"
    path.write_bytes(content)
    with pytest.raises(ParquetAppendError):
        read_footer(path)


def test_garbage_footer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    body = b"\xff" * 40
    path.write_bytes(b"PAR1" + body + len(body).to_bytes(4, "little") + b"PAR1")
    with pytest.raises(ParquetAppendError):
        read_footer(path)


def test_pyarrow_written_files_can_be_appended_to(tmp_path: Path) -> None:
    target, part = tmp_path / "t.parquet", tmp_path / "part.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), target)
    pq.write_table(pa.table({"x": [3]}), part)
    append(target, part)
    assert duckdb.sql(f"SELECT x FROM read_parquet('{target}')").fetchall() == [(1,), (2,), (3,)]
