"""What every user mistake must look like on the command line, and the CLI run as in a shell."""

from __future__ import annotations

import contextlib
import io
import os
import pty
import subprocess
import sys
from pathlib import Path


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """A non-zero exit and exactly one `txgit: error:` line on stderr that contains every needle."""
    assert proc.returncode != 0
    assert proc.stderr.startswith("txgit: error:") and proc.stderr.count("\n") == 1, proc.stderr
    for n in needles:
        assert n in proc.stderr, proc.stderr


def run_on_terminal(args: list[str], cwd: Path, env: dict) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal, as in a shell; returns (exit status, what it wrote there)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "txgit", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=slave, env={**os.environ, "COLUMNS": "200", **env})
    os.close(slave)
    out = b""
    try:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            out += chunk
        proc.wait(120)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out.decode()


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """The CLI run in this process (fast, for sweeps of many command lines): (exit status, stdout, stderr)."""
    from txgit.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return code, out.getvalue(), err.getvalue()
