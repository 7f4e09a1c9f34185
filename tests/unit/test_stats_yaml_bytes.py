"""stats.yaml serialization: the direct event path writes exactly what ``yaml.dump`` writes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from argo_engine.persistence.stats_yaml import dump_stats_yaml, plain_document

DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def reference(document: dict[str, Any]) -> bytes:
    text: str = yaml.dump(
        plain_document(document), Dumper=DUMPER, sort_keys=False, allow_unicode=True
    )
    return text.encode()


# Strings that YAML would read as another type unless quoted, and plain ones.
tricky = st.sampled_from(
    ["", "true", "no", "null", "~", "1", "1.5", "1e3", ".nan", "2026-11-30", "a: b", "- x",
     "#c", "é", "multi\nline", " lead", "trail ", "'q'", '"d"', "0x1F", "run_1", "BTCUSDT"]
)  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    tricky,
)
keys = st.one_of(st.text(max_size=8), tricky)
documents = st.recursive(
    st.dictionaries(keys, scalars, max_size=5),
    lambda inner: st.dictionaries(
        keys,
        st.one_of(scalars, inner, st.lists(st.one_of(scalars, inner), max_size=3)),
        max_size=5,
    ),
    max_leaves=30,
)


@given(documents)
def test_event_path_matches_yaml_dump(document: dict[str, Any]) -> None:
    assert dump_stats_yaml(document) == reference(document)


def test_stats_document_shapes_match_yaml_dump() -> None:
    document = {
        "session_id": "2026-11-30T05-00-00Z-ab12",
        "date": date(2026, 11, 30),
        "last_updated": datetime(2026, 11, 30, 5, 1, tzinfo=UTC),
        "symbols": ["BTCUSDT", "ETHUSDT"],
        "strategy": {"id": "argo.strategies.rsi", "version": "1.0.0", "name": "rsi"},
        "daily": {"trade_result": {"number_of_trades": 3, "win_rate": 0.5},
                  "pnl": {"total_pnl": -12.25, "max_drawdown": 1e-07}, "empty": {}, "none": []},
        "note": None,
    }  # fmt: skip
    assert dump_stats_yaml(document) == reference(document)
    # Numbers read back as numbers; dates as the ISO text they were written as.
    back = yaml.safe_load(dump_stats_yaml(document))
    assert back["daily"]["pnl"]["max_drawdown"] == 1e-07
    assert back["date"] == "2026-11-30"
    assert back["last_updated"] == "2026-11-30T05:01:00Z"


def test_other_value_types_are_written_by_yaml_dump() -> None:
    # A set is not a type of the event path (yaml writes it as !!set); a type yaml cannot
    # represent fails as yaml.dump fails.
    assert dump_stats_yaml({"ids": {1, 2}}) == reference({"ids": {1, 2}})
    with pytest.raises(yaml.representer.RepresenterError):
        dump_stats_yaml({"x": object()})
