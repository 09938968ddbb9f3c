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
# force_jupyter=False: inside a kernel (the %txgit magics) print text to the cell's
# streams, not rich's HTML display, so output is the same as in a terminal.
console = Console(force_jupyter=False)
err_console = Console(stderr=True, force_jupyter=False)


@app.callback()
def _root() -> None:
    """git for the live state of Python programs: commit, branch, check out, push and pull namespaces."""
