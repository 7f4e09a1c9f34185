"""The ``argo`` command line."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from argo_engine.errors import ArgoError
from argo_engine.options import RunOptions, parse_params
from argo_engine.settings import load_settings
from argo_engine.terminal import console, fail, user_errors

app = typer.Typer(
    name="argo", help="argo-engine: live and paper trading sessions.", no_args_is_help=True
)


def _version() -> str:
    """The installed package's version (pyproject.toml's, through the package metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("argo-engine")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"argo-engine {_version()}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """argo-engine: live and paper trading sessions."""


def _help(option: str, text: str, default: str | None = None) -> dict[str, Any]:
    """Help of an ``argo run`` option: its text, its default and the variable it overrides."""
    from argo_engine.options import default_of, env_var_of

    shown = default_of(option) if default is None else default
    # Brackets are escaped: typer reads help text as rich markup.
    shown = f" \\[default: {shown}]" if shown else ""
    return {"help": f"{text}{shown} \\[env var: {env_var_of(option)}]", "show_default": False}


@app.command()
def run(
    data_output: Annotated[
        Path | None,
        typer.Option("--data-output", **_help("data_output", "Root of the run folders.")),
    ] = None,
    feed: Annotated[
        str | None, typer.Option("--feed", **_help("feed", "synthetic | replay | binance"))
    ] = None,
    replay_file: Annotated[
        Path | None,
        typer.Option("--replay-file", **_help("replay_file", "Parquet file for --feed replay.")),
    ] = None,
    broker: Annotated[
        str | None,
        typer.Option("--broker", **_help("broker", "paper | binance-testnet | binance-live")),
    ] = None,
    symbols: Annotated[
        str | None,
        typer.Option("--symbols", **_help("symbols", "Comma separated, e.g. BTCUSDT,ETHUSDT.")),
    ] = None,
    interval: Annotated[
        str | None, typer.Option("--interval", **_help("interval", "Bar interval."))
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--start",
            **_help(
                "start",
                "First bar time (ISO, UTC without an offset).",
                "2025-10-01T09:00:00Z (synthetic), first bar of the file (replay), now",
            ),
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(
            "--end", **_help("end", "End time (ISO), exclusive.", "the feed's end, or --bars")
        ),
    ] = None,
    bars: Annotated[
        int | None,
        typer.Option("--bars", **_help("bars", "Bars per symbol.", "500 (synthetic)")),
    ] = None,
    pace: Annotated[str | None, typer.Option("--pace", **_help("pace", "fast | realtime"))] = None,
    strategy: Annotated[
        str | None,
        typer.Option("--strategy", **_help("strategy", "Registered name or module:Class.")),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="Strategy parameter key=value; repeat it for more. "
            "\\[default: the strategy's] \\[env var: ARGO_STRATEGY__PARAMS, a JSON object]",
            show_default=False,
        ),
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option("--timezone", **_help("timezone", "Time zone of trading dates.")),
    ] = None,
    session_id: Annotated[
        str | None,
        typer.Option(
            "--session-id",
            **_help("session_id", "Session to start or resume (continue).", "a new id"),
        ),
    ] = None,
    day_start: Annotated[
        str | None,
        typer.Option(
            "--day-start",
            **_help("day_start", "Local start time of a trading date.", "00:00"),
        ),
    ] = None,
    prefetch_days: Annotated[
        int | None,
        typer.Option(
            "--prefetch-days",
            **_help("prefetch_days", "Days of history to load before streaming."),
        ),
    ] = None,
    prefect: Annotated[
        bool,
        typer.Option(
            "--prefect/--no-prefect",
            help="Run as the trading-session Prefect flow, or directly in-process.",
        ),
    ] = True,
) -> None:
    """Run a trading session (defaults: synthetic feed, paper broker, RSI strategy)."""
    from pydantic import ValidationError

    from argo_engine.preflight import check_run
    from argo_engine.settings import configuration_error

    try:
        options = RunOptions(
            data_output=str(data_output) if data_output else None,
            feed=feed,
            replay_file=str(replay_file) if replay_file else None,
            broker=broker,
            # Given but empty (--symbols '') is an error below, never the default symbols.
            symbols=[s.strip() for s in symbols.split(",") if s.strip()]
            if symbols is not None
            else None,
            interval=interval,
            start=start,
            end=end,
            bars=bars,
            pace=pace,
            strategy=strategy,
            params=parse_params(param) if param else None,
            timezone=timezone,
            day_start=day_start,
            session_id=session_id,
            prefetch_days=prefetch_days,
        )
        settings = options.to_settings()
        # Everything that can be checked is checked here, before Prefect is imported and
        # before a run number or a folder exists.
        check_run(settings, options)
    except ValidationError as exc:
        fail(configuration_error(exc).message)
    except (ArgoError, ValueError) as exc:
        fail(exc.message if isinstance(exc, ArgoError) else str(exc))
    _configure_logging(settings.log_level)
    from argo_engine.runner import run_with_status

    with user_errors(code=1):
        run_with_status(options, settings, console, use_prefect=prefect)


@app.command()
def verify(
    path: Annotated[Path, typer.Argument(help="A run folder, a date folder or a data output.")],
    quarantine: Annotated[
        bool,
        typer.Option(
            "--quarantine",
            help="Move each damaged parquet file aside as <name>.corrupt-<timestamp> "
            "(nothing is deleted).",
        ),
    ] = False,
) -> None:
    """Check run folders: readable parquet, schemas, stats vs trades, unique ids, journal.

    Exit status: 0 every folder is sound, 1 problems found (each listed), 2 could not run.
    """
    with user_errors():
        load_settings()
    if not path.exists():
        fail(f"{path} does not exist")
    if not path.is_dir():
        fail(f"{path} is a file, not a run folder, a date folder or a data output")
    if not _holds_run_folders(path):
        fail(f"{path} holds no run folders ({{date}}/run_N): nothing to verify")
    from argo_engine.verify import check_path
    from argo_engine.verify import quarantine as move_aside

    try:
        report = check_path(path)
    except Exception as exc:  # one line, never a traceback
        console.print(f"[red]error:[/red] could not verify {path}: {type(exc).__name__}: {exc}")
        raise typer.Exit(2) from None
    if not report:
        console.print(f"[green]ok[/green]: {path}")
        return
    moved_all = True
    for folder, found in report.items():
        console.print(f"[red]{folder}[/red]", soft_wrap=True)
        for problem in found.problems:
            console.print(f"  - {problem}", soft_wrap=True, markup=False)
        if quarantine:
            for damaged in found.damaged:
                try:
                    target = move_aside(damaged)
                except OSError as exc:
                    moved_all = False
                    console.print(f"  ! could not quarantine {damaged}: {exc}", markup=False)
                else:
                    console.print(f"  > quarantined {damaged} as {target.name}", markup=False)
    if quarantine and not moved_all:
        raise typer.Exit(2)
    raise typer.Exit(1)


def _holds_run_folders(path: Path) -> bool:
    """Whether ``path`` is a run folder or has some (as a date folder or a data output)."""
    from argo_engine.persistence.schema import RUN_FILE

    if (path / RUN_FILE).exists() or path.name.startswith("run_"):
        return True
    return any(p.is_dir() for p in (*path.glob("run_*"), *path.glob("*/run_*")))


@app.command("mock-binance")
def mock_binance(
    port: Annotated[int, typer.Option("--port", help="REST/WS port on 127.0.0.1.")] = 8765,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
) -> None:
    """Serve the mock Binance API (REST + websocket) for a local demo."""
    from argo_engine.testing.mock_binance import serve

    serve(host, port)


def _configure_logging(level: str) -> None:
    # The live status line is the console output: library chatter (HTTP requests to the
    # Prefect API, per-task state lines) stays below WARNING unless the user asks for it.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # No telemetry from the temporary local API (there is no network to send it to anyway).
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Its first start creates and migrates a new database: on a loaded or small machine that
    # takes longer than Prefect's 20 s default, which would fail the run before it starts.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    # The console shows warnings and errors only (the status line is the console output).
    # The engine's logger gets the same threshold: Prefect's own console handler sits on the
    # root logger too, and INFO records reaching it would flood the status line. (So engine
    # INFO records of an in-process flow run stay out of its run logs; a worker's do not.)
    console_level = max(getattr(logging, level.upper(), logging.INFO), logging.WARNING)
    root = logging.getLogger()
    console = next((h for h in root.handlers if isinstance(h, _ConsoleHandler)), None)
    if console is None:
        console = _ConsoleHandler()
        console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(console)
    console.setLevel(console_level)
    if root.level == logging.NOTSET or root.level < logging.WARNING:
        root.setLevel(logging.WARNING)
    logging.getLogger("argo_engine").setLevel(console_level)


class _ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The CLI's stderr handler (a class of its own, so a second configuration finds it).

    It writes to whatever ``sys.stderr`` is at the time of the record, as logging's own
    last-resort handler does, so a replaced stderr (a test runner's) is never a closed file.
    """

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def main() -> None:
    """Entry point of the ``argo`` script."""
    app()


def _register_tools() -> None:
    from argo_engine.tools.commands import register

    register(app)


_register_tools()
