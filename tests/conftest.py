"""Shared fixtures: environment isolation and a settings factory rooted in tmp_path."""

from __future__ import annotations

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
    for key in list(os.environ):
        if key.startswith("ARGO_"):
            monkeypatch.delenv(key)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def make_settings(tmp_path: Path) -> Any:
    """Build settings with data_output under tmp_path; keyword groups override."""

    def _make(**groups: Any) -> ArgoSettings:
        session = {"data_output": tmp_path / "out", **groups.pop("session", {})}
        return load_settings(None, session=session, **groups)

    return _make
