"""The HTML report in headless Chromium: it renders, charts present, no console errors."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from argo_engine.tools.report import write_report

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--enable-logging=stderr",
    "--v=0",
]


def _chromium() -> str:
    found = shutil.which("chromium")
    if found:
        return found
    # Debian's package, installed by the test setup when missing (CI machines start without it).
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            pytest.skip(f"chromium could not be installed: {proc.stderr[-500:]}")
    found = shutil.which("chromium")
    if not found:
        pytest.skip("chromium is not on PATH after installation")
    return found


def test_report_renders_in_headless_chromium(
    fixture_output: dict[str, Any], tmp_path: Path
) -> None:
    report = write_report(fixture_output["out"], "alpha", tmp_path / "report.html")
    proc = subprocess.run(
        [_chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
         report.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert dom.count("<svg") >= 4
    assert dom.count("<polyline") >= 4
    assert "<circle" in dom
    console_errors = [
        line for line in proc.stderr.splitlines()
        if "CONSOLE" in line and ("Uncaught" in line or "ERROR" in line)
    ]  # fmt: skip
    assert console_errors == []
