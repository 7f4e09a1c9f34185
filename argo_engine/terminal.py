"""What the ``argo`` commands share on the terminal: consoles and the one-line error exit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console

from argo_engine.errors import ArgoError

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` as one line on stderr and exit with ``code``."""
    # soft_wrap: the terminal may wrap a long message, rich must not split it into lines.
    from rich.markup import escape

    err_console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


@contextmanager
def user_errors(code: int = 2) -> Iterator[None]:
    """Turn an ArgoError raised inside the block into one error line and exit ``code``."""
    try:
        yield
    except ArgoError as exc:
        fail(exc.message, code)
