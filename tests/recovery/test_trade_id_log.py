"""The log of counted trade ids that replaced the ids inside the engine state."""

from __future__ import annotations

from pathlib import Path

import pytest

from argo_engine.errors import RecoveryError
from argo_engine.persistence.trade_ids import TRADE_IDS_FILE, TradeIdLog


def test_a_reopen_keeps_the_ids_the_state_counts_and_drops_the_rest(tmp_path: Path) -> None:
    log = TradeIdLog(tmp_path, None)
    for i in range(5):
        log.book(f"t{i}")
    log.sync_to(3)  # a state counting 3 is written now
    log.sync_to(5)  # the next one's ids reach the file, then the process dies before its state
    assert (tmp_path / TRADE_IDS_FILE).read_text().split() == ["t0", "t1", "t2", "t3", "t4"]

    reopened = TradeIdLog(tmp_path, 3)
    assert reopened.ids == ["t0", "t1", "t2"]
    assert "t3" not in reopened
    assert "t2" in reopened
    assert (tmp_path / TRADE_IDS_FILE).read_text().split() == ["t0", "t1", "t2"]
    # Recovery books the dropped fill again; later syncs append after the kept lines.
    reopened.book("t4")
    reopened.sync_to(4)
    assert TradeIdLog(tmp_path, 4).ids == ["t0", "t1", "t2", "t4"]


def test_no_saved_state_empties_a_log_left_behind(tmp_path: Path) -> None:
    (tmp_path / TRADE_IDS_FILE).write_text("old\n")
    log = TradeIdLog(tmp_path, None)
    assert len(log) == 0
    assert (tmp_path / TRADE_IDS_FILE).read_bytes() == b""


def test_a_state_counting_more_ids_than_the_file_holds_is_refused(tmp_path: Path) -> None:
    (tmp_path / TRADE_IDS_FILE).write_text("a\nb\n")
    with pytest.raises(RecoveryError, match="fewer trade ids"):
        TradeIdLog(tmp_path, 3)


def test_each_sync_appends_only_the_ids_booked_since_the_last(tmp_path: Path) -> None:
    log = TradeIdLog(tmp_path, None)
    sizes = []
    for i in range(100):
        log.book(f"trade-{i:04d}")
        log.sync_to(len(log))
        sizes.append((tmp_path / TRADE_IDS_FILE).stat().st_size)
    # Appended: every sync adds one line of 11 bytes.
    assert sizes == [11 * (i + 1) for i in range(100)]
