"""Core commands: init, log, show, diff, branch, tag, checkout, status."""

from __future__ import annotations

from pathlib import Path

import typer

from txgit.cli.app import app, console
from txgit.workspace import Workspace


@app.command()
def init(path: Path = typer.Argument(Path("."), help="Folder to make a workspace.")) -> None:
    """Create a workspace (.txgit/) in PATH."""
    ws = Workspace.init(path)
    console.print(f"Initialized empty txgit workspace in {ws.dir}")
