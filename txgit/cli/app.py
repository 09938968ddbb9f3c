"""The shared typer app and consoles (its own module so command modules can import it)."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="txgit",
    help="git for the live state of Python programs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


@app.callback()
def _root() -> None:
    """git for the live state of Python programs: commit, branch, check out, push and pull namespaces."""
