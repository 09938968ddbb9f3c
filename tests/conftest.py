"""Shared fixtures: temporary workspaces and a helper to run the real `txgit` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Tests, and every process they start (CLI, kernels, scripts), use this checkout's txgit.
ROOT = Path(__file__).resolve().parent.parent
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from txgit import Workspace  # noqa: E402


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.init(tmp_path / "ws")


def session_namespace(code: str = "") -> dict:
    """A namespace as a script or kernel has it: functions defined here belong to `__main__`."""
    ns: dict = {"__name__": "__main__", "__builtins__": __builtins__}
    if code:
        exec(code, ns)
    return ns


@pytest.fixture
def run_txgit():
    """Run the installed CLI in a subprocess, as a user would."""

    def run(*args: str, cwd: Path, check: bool = False, env: dict | None = None,
            timeout: float | None = None) -> subprocess.CompletedProcess:
        # timeout: for commands that could hang (an unresponsive remote): the test fails instead
        proc = subprocess.run(
            [sys.executable, "-m", "txgit", *args],
            cwd=cwd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200", **(env or {})},
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"txgit {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    return run
