"""Shared fixtures: environment isolation and a settings factory rooted in tmp_path."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from argo_engine.settings import ArgoSettings, load_settings


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # No test may see the developer's ARGO_* variables, nor leave its own behind.
    saved = dict(os.environ)
    # An in-process CLI run sets the engine logger's level for its console: restored, so a
    # later flow run in the same process still sends engine INFO records to its run logs.
    engine_logger = logging.getLogger("argo_engine")
    level = engine_logger.level
    for key in list(os.environ):
        if key.startswith("ARGO_"):
            monkeypatch.delenv(key)
    yield
    os.environ.clear()
    os.environ.update(saved)
    engine_logger.setLevel(level)


@pytest.fixture
def make_settings(tmp_path: Path) -> Any:
    """Build settings with data_output under tmp_path; keyword groups override."""

    def _make(**groups: Any) -> ArgoSettings:
        session = {"data_output": tmp_path / "out", **groups.pop("session", {})}
        return load_settings(None, session=session, **groups)

    return _make
