"""The `txgit` command: a thin typer shell over :class:`txgit.Workspace`.

Each concern registers its commands from its own module (core, session,
remote, …) on the one ``app``. ``main`` turns a :class:`TxgitError` into one
line on stderr and a non-zero exit; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import sys

import typer

from txgit.cli.app import app, console, err_console  # noqa: F401
from txgit.cli import core, lineage, maintenance, merge, remote, reuse, session, visual  # noqa: F401,E402  (registers commands)
from txgit.errors import TxgitError


def main(argv: list[str] | None = None) -> None:
    try:
        code = app(args=argv, prog_name="txgit", standalone_mode=False)
        if isinstance(code, int) and code:  # a command's typer.Exit(n) comes back as a return value
            sys.exit(code)
    except TxgitError as e:
        err_console.print(f"txgit: error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        err_console.print("txgit: aborted", markup=False)
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("txgit: interrupted", markup=False)
        sys.exit(130)
    except typer.TyperException as e:  # usage errors (typer's bundled click): one line, exit 2
        if type(e).__name__ == "NoArgsIsHelpError":
            e.show()  # `txgit` alone prints the help
            sys.exit(0)
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        err_console.print(f"txgit: error: {message}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(getattr(e, "exit_code", 2))
