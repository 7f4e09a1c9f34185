"""The sortedness check that lets a closing date skip sorting rows that arrived in order."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from argo_engine.persistence.table_encoding import _sorted_by

ROWS = st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["a", "b", "c"])), max_size=12)


def _table(rows: list[tuple[int, str]]) -> pa.Table:
    return pa.table({"t": pa.array([r[0] for r in rows], pa.int64()), "s": [r[1] for r in rows]})


@given(ROWS)
def test_two_columns_agree_with_python_ordering(rows: list[tuple[int, str]]) -> None:
    assert _sorted_by(_table(rows), ("t", "s")) == (rows == sorted(rows))


@given(ROWS)
def test_one_column_allows_ties(rows: list[tuple[int, str]]) -> None:
    times = [r[0] for r in rows]
    assert _sorted_by(_table(rows), ("t",)) == (times == sorted(times))


def test_sorted_rows_are_recognized_and_a_swap_is_not() -> None:
    rows = [(1, "a"), (1, "b"), (2, "a"), (3, "c")]
    assert _sorted_by(_table(rows), ("t", "s"))
    assert not _sorted_by(_table([rows[1], rows[0], *rows[2:]]), ("t", "s"))
