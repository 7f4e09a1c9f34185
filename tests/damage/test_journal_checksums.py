"""Journal lines carry a checksum: damage is detected and what was dropped is described."""

from __future__ import annotations

from pathlib import Path

from argo_engine.persistence.journal import (
    Journal,
    encode_batch_line,
    encode_rows,
    read_journal,
    read_tagged_journal,
)
from argo_engine.persistence.schema import TABLES

MD = TABLES["market_data"]
T0_US = 1_759_276_800_000_000  # 2025-10-01T00:00Z


def _bar(i: int) -> list[object]:
    return [T0_US + i * 60_000_000, "BTCUSDT", 100.0, 101.0, 99.0, 100.5, 1.0]


def test_a_flipped_digit_that_still_parses_is_dropped_and_described(tmp_path: Path) -> None:
    path = tmp_path / "market_data.jsonl"
    journal = Journal(path)
    for i in range(3):
        journal.write(encode_rows([_bar(i)]))
    journal.close()
    data = path.read_bytes()
    path.write_bytes(data.replace(b"100.5", b"900.5", 2)[: len(data)])  # lines 1 and 2
    contents = read_journal(path, MD)
    assert [row[0] for row in contents.rows] == [T0_US + 2 * 60_000_000]
    assert contents.corrupt_lines == 2
    assert len(contents.dropped) == 2
    assert "line 1 (checksum mismatch)" in contents.dropped[0]
    assert "time=2025-10-01T00:00:00+00:00" in contents.dropped[0]


def test_garbled_batch_line_of_the_shared_journal_is_described(tmp_path: Path) -> None:
    path = tmp_path / "durable.jsonl"
    journal = Journal(path)
    journal.write(encode_batch_line([_bar(0), _bar(1)], b'"market_data",'))
    journal.write(encode_batch_line([_bar(2)], b'"market_data",'))
    journal.close()
    first, second, _ = path.read_bytes().split(b"\n")
    path.write_bytes(b"\x00garbage" + first[8:] + b"\n" + second + b"\n")
    dropped: list[str] = []
    rows, corrupt, torn = read_tagged_journal(path, {"market_data": MD}, dropped)
    assert len(rows["market_data"]) == 1
    assert (corrupt, torn) == (1, False)
    assert dropped[0].startswith("durable.jsonl line 1 (checksum mismatch)")


def test_journal_of_an_earlier_version_without_checksums_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "market_data.jsonl"
    path.write_bytes(encode_rows([_bar(0), _bar(1)]))
    contents = read_journal(path, MD)
    assert len(contents.rows) == 2
    assert contents.corrupt_lines == 0
