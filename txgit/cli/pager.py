"""Long output on a terminal goes through a pager, as git's does.

`log`, `show` and `diff` pipe what they print into ``$TXGIT_PAGER``, else ``$PAGER``, else ``less``
(run with ``LESS=FRX`` unless ``$LESS`` is set, as git runs it: one screenful is just printed, colours
pass through, the screen is not cleared). No pager when stdout is not a terminal, with ``txgit
--no-pager``, or when the pager is set to ``""`` or ``cat``. The pager starts at the first line printed,
so a command that fails before printing shows its error without one; quitting the pager early ends the
command quietly (exit 0).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from typing import IO

import typer
from rich.console import Console

PAGED = frozenset({"log", "show", "diff"})


def pager_command() -> str | None:
    """The pager to run (a shell command), or None for none."""
    for var in ("TXGIT_PAGER", "PAGER"):
        if var in os.environ:
            cmd = os.environ[var].strip()
            break
    else:
        cmd = "less" if shutil.which("less") else ""
    return None if cmd in ("", "cat") else cmd


class _PagerStream:
    """The console's file while a pager may run: the pager is started by the first write."""

    def __init__(self, cmd: str, encoding: str) -> None:
        self.cmd = cmd
        self.encoding = encoding
        self._proc: subprocess.Popen[str] | None = None
        self._pipe: IO[str] | None = None

    def isatty(self) -> bool:
        return False

    def _start(self) -> IO[str]:
        env = dict(os.environ)
        env.setdefault("LESS", "FRX")
        env.setdefault("LV", "-c")
        sys.stdout.flush()
        self._proc = subprocess.Popen(self.cmd, shell=True, stdin=subprocess.PIPE, env=env, text=True,
                                      encoding=self.encoding, errors="replace")
        self._pipe = self._proc.stdin
        assert self._pipe is not None
        return self._pipe

    def write(self, text: str) -> int:
        pipe = self._pipe or self._start()
        try:
            return pipe.write(text)
        except BrokenPipeError:  # the user quit the pager: nothing more to show
            raise typer.Exit(0) from None

    def flush(self) -> None:
        if self._pipe is not None:
            try:
                self._pipe.flush()
            except BrokenPipeError:
                raise typer.Exit(0) from None

    def close(self) -> None:
        """Let the pager show the rest and wait for the user to quit it (Ctrl-C meanwhile belongs to it)."""
        if self._proc is None:
            return
        try:
            assert self._pipe is not None
            self._pipe.close()
        except BrokenPipeError:
            pass
        try:
            old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:  # not the main thread: cannot change signal handling here
            old = None
        try:
            self._proc.wait()
        finally:
            if old is not None:
                signal.signal(signal.SIGINT, old)


def page(ctx: typer.Context, console: Console) -> None:
    """Send ``console``'s output through the pager until ``ctx`` closes, if stdout is a terminal."""
    if not sys.stdout.isatty():
        return
    cmd = pager_command()
    if cmd is None:
        return
    stream = _PagerStream(cmd, getattr(sys.stdout, "encoding", None) or "utf-8")
    console.file = stream

    def done() -> None:
        console.file = None  # type: ignore[assignment]  (back to sys.stdout)
        stream.close()

    ctx.call_on_close(done)
