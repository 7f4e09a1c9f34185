"""``argo verify`` on damaged folders: every folder checked, each problem listed, no traceback."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from argo_engine.cli import app
from argo_engine.clock import FakeClock
from argo_engine.persistence.parquet_append import check_file, data_checksum, read_footer
from argo_engine.session import run_session
from argo_engine.testing.feeds import ListFeed
from argo_engine.verify import check_path, verify_path
from tests.engine.helpers import utc, wave_bars


@pytest.fixture(scope="module")
def two_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished session over two dates (both with trades), built once."""
    from argo_engine.settings import load_settings

    out = tmp_path_factory.mktemp("verify") / "out"
    settings = load_settings(
        None, session={"data_output": out, "symbols": ["BTCUSDT"], "session_id": "v"}
    )
    bars = wave_bars(["BTCUSDT"], utc(2025, 10, 1, 22, 0), 240)
    run_session(settings, clock=FakeClock(utc(2025, 10, 1)), feed=ListFeed(bars))
    assert verify_path(out) == {}
    return out


@pytest.fixture
def out(two_days: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "out"
    shutil.copytree(two_days, copy)
    return copy


def _verify(path: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["verify", str(path), *args])


def test_clean_output_exits_0(out: Path) -> None:
    result = _verify(out)
    assert result.exit_code == 0, result.output


def test_truncated_trades_and_garbled_run_yaml_are_each_listed(out: Path) -> None:
    trades = out / "2025-10-01" / "run_1" / "trades.parquet"
    trades.write_bytes(trades.read_bytes()[:300])
    (out / "2025-10-02" / "run_1" / "run.yaml").write_text("garbage: [\n")
    result = _verify(out)
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert str(trades) in result.output.replace("\n", "")
    assert "2025-10-02/run_1/run.yaml" in result.output.replace("\n", "")
    report = check_path(out)
    assert set(report) == {trades.parent, out / "2025-10-02" / "run_1"}
    assert report[trades.parent].damaged == [trades]


@pytest.mark.parametrize("content", [b"", b"\x00\xff\xfe garbage", b"- just\n- a list\n"])
def test_empty_or_binary_run_yaml_is_a_problem(out: Path, content: bytes) -> None:
    run_yaml = out / "2025-10-01" / "run_1" / "run.yaml"
    run_yaml.write_bytes(content)
    report = verify_path(out)
    assert list(report) == [str(run_yaml.parent)]
    assert any(p.startswith(f"{run_yaml}: unreadable") for p in report[str(run_yaml.parent)])


def test_every_parquet_file_truncated_is_listed_per_file(out: Path) -> None:
    folder = out / "2025-10-01" / "run_1"
    damaged = sorted(folder.glob("*.parquet"))
    for path in damaged:
        path.write_bytes(path.read_bytes()[: max(8, path.stat().st_size // 2)])
    report = check_path(out)
    assert sorted(report[folder].damaged) == damaged
    # The other date is still checked, and is sound.
    assert list(report) == [folder]


def test_stats_not_matching_trades_and_leftover_temp_are_listed(out: Path) -> None:
    folder = out / "2025-10-02" / "run_1"
    (folder / "stats.yaml").write_text("daily: {trade_result: 7, total_fees: x}\n")
    (folder / ".trades.parquet.123.tmp").write_bytes(b"PAR1")
    problems = verify_path(out)[str(folder)]
    assert any("stats.yaml" in p for p in problems)
    assert any(".trades.parquet.123.tmp" in p for p in problems)


def test_quarantine_moves_damaged_file_aside_and_deletes_nothing(out: Path) -> None:
    folder = out / "2025-10-02" / "run_1"
    md = folder / "market_data.parquet"
    original = md.read_bytes()
    md.write_bytes(original[: len(original) - 40])
    result = _verify(out, "--quarantine")
    assert result.exit_code == 1
    moved = list(folder.glob("market_data.parquet.corrupt-*"))
    assert len(moved) == 1
    assert moved[0].read_bytes() == original[: len(original) - 40]
    assert not md.exists()


def test_missing_path_exits_2(tmp_path: Path) -> None:
    assert _verify(tmp_path / "nope").exit_code == 2


def test_unlistable_path_exits_2(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    (blocked / "2025-10-01" / "run_1").mkdir(parents=True)
    blocked.chmod(0)
    try:
        if _can_list(blocked):
            pytest.skip("running as root: permissions are not enforced")
        assert _verify(blocked).exit_code == 2
    finally:
        blocked.chmod(0o755)


def _can_list(path: Path) -> bool:
    try:
        list(path.iterdir())
    except OSError:
        return False
    return True


def _flip_64(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    for i in range(at - 32, at + 32):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", ["file", "data"])
def test_64_flipped_bytes_inside_trades_are_found_and_quarantined(out: Path, where: str) -> None:
    trades = out / "2025-10-01" / "run_1" / "trades.parquet"
    footer = read_footer(trades)
    # The middle of the file (a small file's footer is a large part of it), or of its
    # data pages, where damaged bytes may still decode as rows.
    _flip_64(trades, footer.size // 2 if where == "file" else footer.data_end // 2)
    result = _verify(out)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    report = check_path(out)
    assert list(report) == [trades.parent]
    assert report[trades.parent].damaged == [trades]
    assert str(trades) in result.output.replace("\n", "")
    result = _verify(out, "--quarantine")
    assert result.exit_code == 1
    assert not trades.exists()
    assert len(list(trades.parent.glob("trades.parquet.corrupt-*"))) == 1


def test_every_file_the_engine_writes_carries_its_checksum(out: Path) -> None:
    for path in sorted(out.glob("*/run_*/*.parquet")):
        assert data_checksum(read_footer(path)) is not None, path
        assert check_file(path) is None, path
