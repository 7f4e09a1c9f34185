"""Trading-day child flows run without Prefect heartbeats; the session flow keeps them."""

from __future__ import annotations

from prefect.settings import get_current_settings

from flows.day import without_heartbeats


def test_children_run_without_heartbeats_and_the_parent_settings_are_untouched() -> None:
    before = get_current_settings().flows.heartbeat_frequency
    assert before is not None
    for _ in range(2):  # the second entry reuses the derived settings
        with without_heartbeats():
            assert get_current_settings().flows.heartbeat_frequency is None
    assert get_current_settings().flows.heartbeat_frequency == before
