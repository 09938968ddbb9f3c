"""The shared typer app and consoles (its own module so command modules can import it)."""

from __future__ import annotations

import typer
from rich.console import Console

from txgit._version import __version__
from txgit.cli import pager

app = typer.Typer(
    name="txgit",
    help="git for the live state of Python programs.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion, typer's way
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},  # every command's context inherits them
)
# force_jupyter=False: inside a kernel (the %txgit magics) print text to the cell's
# streams, not rich's HTML display, so output is the same as in a terminal.
console = Console(force_jupyter=False)
err_console = Console(stderr=True, force_jupyter=False)


def _print_version(value: bool) -> None:
    if value:
        console.print(f"txgit version {__version__}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print txgit's version and exit."),
    no_pager: bool = typer.Option(False, "--no-pager", "-P",
                                  help="Print log, show and diff straight to the terminal, not through a pager "
                                       "($TXGIT_PAGER, $PAGER, else less -FRX)."),
) -> None:
    """git for the live state of Python programs: commit, branch, check out, push and pull namespaces."""
    if ctx.invoked_subcommand in pager.PAGED and not no_pager:
        pager.page(ctx, console)
