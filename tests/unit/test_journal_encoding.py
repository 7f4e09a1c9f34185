"""Journal line encoding: the one-pass tagged encoder equals encode-then-tag on any rows."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from argo_engine.persistence.journal import encode_rows, encode_tagged_rows, tag_lines

scalars = st.one_of(
    st.none(),
    st.integers(min_value=-(2**62), max_value=2**62),
    st.floats(allow_nan=False, allow_infinity=False),
    # Strings that contain the row separator, brackets and newlines must not split a row.
    st.text(alphabet=st.sampled_from(list('ab],[\n"\\é'))),
)
rows = st.lists(st.lists(scalars, min_size=1, max_size=5).map(tuple), max_size=8)


@given(rows)
def test_tagged_encoding_equals_encode_then_tag(batch: list[tuple[object, ...]]) -> None:
    tag = b'"market_data",'
    data = encode_tagged_rows(batch, tag)
    assert data == tag_lines(encode_rows(batch), tag)
    lines = data.splitlines()
    assert len(lines) == len(batch)
    assert [orjson.loads(line) for line in lines] == [["market_data", *row] for row in batch]
