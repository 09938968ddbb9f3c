"""`txgit serve`: the web view of the workspace (see :mod:`txgit.visual.server`)."""

from __future__ import annotations

from pathlib import Path

import typer

from txgit.cli.app import app, console
from txgit.workspace import Workspace


@app.command()
def serve(
    port: int = typer.Option(8765, "--port", "-p", min=0, max=65535, help="Port on 127.0.0.1 (0: any free port)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every request on stderr."),
) -> None:
    """Serve a local web page of the history on 127.0.0.1: the commit graph, each commit's variables, diffs.

    Only this machine can reach it (it listens on the loopback address). It
    reads the workspace and never changes it; stop it with Ctrl-C.
    """
    from txgit.visual.server import serve as make_server

    ws = Workspace.open(Path.cwd())
    server = make_server(ws, port, verbose=verbose)
    console.print(f"Serving {ws.root} at {server.url} (Ctrl-C to stop)", markup=False, highlight=False,
                  soft_wrap=True)
    console.file.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
