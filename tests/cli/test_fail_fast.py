"""Bad input on every command ends in one error line and a non-zero exit, before anything starts.

The ``argo run`` cases run on the default (Prefect) path in a fresh interpreter, which then
reports whether Prefect was imported: every refusal must come before orchestration.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from argo_engine.cli import app
from tests.engine.helpers import utc, wave_bars, write_replay

# Runs each case of argv lists in one interpreter and prints the outcomes as JSON.
_RUNNER = """
import json, sys
from typer.testing import CliRunner
from argo_engine.cli import app
out = []
for args in json.loads(sys.argv[1]):
    r = CliRunner().invoke(app, args)
    crash = r.exception is not None and r.exit_code not in (1, 2)
    out.append({"code": r.exit_code, "stdout": r.stdout, "stderr": r.stderr,
                "exception": repr(r.exception) if crash else ""})
print(json.dumps({"results": out, "prefect_imported": "prefect" in sys.modules}))
"""


def _run_cases(cases: list[list[str]], cwd: Path) -> tuple[list[dict[str, object]], bool]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARGO_", "PREFECT_"))}
    env["PREFECT_HOME"] = str(cwd / ".prefect")
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, json.dumps(cases)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    data = json.loads(proc.stdout.splitlines()[-1])
    return data["results"], bool(data["prefect_imported"])


def test_bad_run_inputs_are_refused_before_prefect_and_before_any_folder(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    not_bars = tmp_path / "notes.parquet"
    not_bars.write_text("not parquet")
    replay = write_replay(tmp_path / "bars.parquet", wave_bars(["BTCUSDT"], utc(2025, 10, 1), 10))
    base = ["run", "--data-output", str(out)]
    cases = {
        "--replay-file": [*base, "--feed", "replay", "--replay-file", str(tmp_path / "none.pq")],
        "--replay-file ": [*base, "--feed", "replay", "--replay-file", str(not_bars)],
        "--replay-file  ": [
            *base,
            "--feed",
            "replay",
            "--replay-file",
            str(replay),
            "--symbols",
            "ETHUSDT",
        ],
        "--feed replay": [*base, "--replay-file", str(replay)],
        "--strategy": [*base, "--strategy", "nosuch"],
        "--strategy ": [*base, "--strategy", "nosuch_module:Thing"],
        "--param": [*base, "--param", "period=abc"],
        "--end": [*base, "--start", "2025-10-02T00:00:00Z", "--end", "2025-10-01T00:00:00Z"],
        "--end ": [*base, "--end", "2025-01-01T00:00:00Z"],  # before the default start
        "--symbols": [*base, "--symbols", ""],
        "--interval": [*base, "--interval", "7m"],
        "--timezone": [*base, "--timezone", "Mars/Base"],
        "--session-id": [*base, "--session-id", "../escape"],
    }
    results, prefect_imported = _run_cases(list(cases.values()), tmp_path)

    for (option, args), result in zip(cases.items(), results, strict=True):
        assert result["code"] == 2, (args, result)
        assert not result["exception"], (args, result)
        lines = str(result["stderr"]).strip().splitlines()
        assert len(lines) == 1, (args, result)
        assert lines[0].startswith("error: ")
        assert option.strip() in lines[0], (args, lines)
    assert not prefect_imported
    assert not out.exists()


def test_a_bad_env_file_is_refused_by_every_command(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("ARGO_SESSION__TIMEZONE=Mars/Base\n")
    data = tmp_path / "data"
    data.mkdir()
    cases = [
        ["run", "--data-output", str(data / "o")],
        ["sessions", "--data-output", str(data)],
        ["stats", "--session", "x", "--data-output", str(data)],
        ["query", "SELECT 1", "--data-output", str(data)],
        ["report", "--session", "x", "--out", str(tmp_path / "r.html"), "--data-output", str(data)],
        ["verify", str(data)],
    ]
    results, _ = _run_cases(cases, tmp_path)

    for args, result in zip(cases, results, strict=True):
        assert result["code"] == 2, (args, result)
        lines = str(result["stderr"]).strip().splitlines()
        assert len(lines) == 1, (args, result)
        assert "ARGO_SESSION__TIMEZONE" in lines[0]
    assert list(data.iterdir()) == []


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    return CliRunner()


def test_wrong_questions_to_the_tools_are_errors(tmp_path: Path, runner: CliRunner) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    readme = tmp_path / "README.md"
    readme.write_text("# not data\n")

    asked = {
        "stats --session": ["stats", "--session", "nosuch", "--data-output", str(empty)],
        "stats folder": ["stats", str(empty)],
        "sessions": ["sessions", "--data-output", str(empty)],
        "sessions missing": ["sessions", "--data-output", str(tmp_path / "nowhere")],
        "verify empty": ["verify", str(empty)],
        "verify file": ["verify", str(readme)],
        "report": [
            "report",
            "--session",
            "nosuch",
            "--out",
            str(tmp_path / "r.html"),
            "--data-output",
            str(empty),
        ],
        "query": ["query", "SELECT nosuch FROM trades", "--data-output", str(empty)],
    }
    for name, args in asked.items():
        result = runner.invoke(app, args)
        assert result.exit_code in (1, 2), (name, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), name
        assert len(result.stderr.strip().splitlines()) == 1, (name, result.stderr)
        assert result.stdout == "", (name, result.stdout)
    assert not (tmp_path / "r.html").exists()
    assert list(empty.iterdir()) == []
