"""What every user mistake must look like on the command line."""

from __future__ import annotations

import subprocess


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """A non-zero exit and exactly one `txgit: error:` line on stderr that contains every needle."""
    assert proc.returncode != 0
    assert proc.stderr.startswith("txgit: error:") and proc.stderr.count("\n") == 1, proc.stderr
    for n in needles:
        assert n in proc.stderr, proc.stderr
