"""The shared typer app and consoles (its own module so command modules can import it)."""

from __future__ import annotations

import typer
from rich.console import Console

from txgit._version import __version__
from txgit.cli import pager


def _flags_take_no_value() -> None:
    """typer 0.29's rich help shows a flag as if it took a value (``--force <bool>``, ``--help <bool>``);
    its plain help and docs/cli.md do not. A flag shows no type here (typers without the column: nothing to do)."""
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "txgit_flags", False):
        return

    def display_type_rich(self: TyperOption, ctx: typer.Context) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    display_type_rich.txgit_flags = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_take_no_value()

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
