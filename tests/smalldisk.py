"""A real full disk for the failure tests: a scenario script run in a private mount namespace
(``unshare -rm``) where a tmpfs of a few MB is mounted at ``DISK``; it never touches the host's mounts,
and the processes the script starts (the CLI, kernels, git) inherit that namespace and that disk.

The script is Python; it finds in its globals ``DISK`` (a Path), ``fill(leave_kb)`` (a ballast file
that leaves only that much free), ``free()`` (the ballast removed: space is back), ``txgit(*args,
cwd=...)`` (the real CLI: a CompletedProcess) and ``report(**values)``, whose values the pytest test
gets back as a dict. Where the OS forbids user namespaces, :func:`small_disk_available` is False and
the tests cover the same write paths with RLIMIT_FSIZE instead (EFBIG: :func:`run_with_file_size_limit`).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

TESTS = str(Path(__file__).resolve().parent)

_PRELUDE = f"""
import json, os, subprocess, sys
from pathlib import Path
sys.path.insert(0, {TESTS!r})
DISK = Path(os.environ["SMALL_DISK"])
_REPORT = {{}}

def fill(leave_kb=0):
    '''A ballast file that leaves about ``leave_kb`` KiB free on DISK (tmpfs counts in pages).'''
    st = os.statvfs(DISK)
    size = max(st.f_bavail * st.f_frsize - leave_kb * 1024, 0)
    with open(DISK / ".ballast", "ab") as f:
        try:
            f.write(b"\\0" * size)
        except OSError:  # full already
            pass

def free():
    try:
        os.unlink(DISK / ".ballast")
    except FileNotFoundError:
        pass

def txgit(*args, cwd, timeout=300):
    return subprocess.run([sys.executable, "-m", "txgit", *args], cwd=cwd, capture_output=True, text=True,
                          env={{**os.environ, "COLUMNS": "200"}}, timeout=timeout)

def report(**values):
    _REPORT.update(values)
    with open(os.environ["SMALL_DISK_REPORT"], "w") as f:
        json.dump(_REPORT, f, default=str)
"""


@functools.cache
def small_disk_available() -> bool:
    """Whether this OS lets an unprivileged process mount a tmpfs in its own namespace."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


def run_on_small_disk(script: str, tmp_path: Path, size_kb: int = 16384, timeout: float = 600) -> dict:
    """Run ``script`` (see the module's docstring) with a ``size_kb`` KiB tmpfs at ``tmp_path/disk``;
    returns what it reported. A script that fails raises AssertionError with its output."""
    disk = tmp_path / "disk"
    disk.mkdir()
    source = tmp_path / "scenario.py"
    source.write_text(_PRELUDE + textwrap.dedent(script))
    result = tmp_path / "report.json"
    env = {**os.environ, "SMALL_DISK": str(disk), "SMALL_DISK_REPORT": str(result)}
    command = f'mount -t tmpfs -o size={size_kb}k tmpfs "$SMALL_DISK" && exec "$0" "$1"'
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", command, sys.executable, str(source)],
                          capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"the scenario failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return json.loads(result.read_text())


def limit_file_size(limit: int) -> None:
    """In a child (a ``preexec_fn``): files it writes grow to ``limit`` bytes at most; a write past
    that fails with EFBIG (Python ignores SIGXFSZ, which would kill it otherwise)."""
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
