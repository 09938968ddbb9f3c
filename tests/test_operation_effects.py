"""Effects an operation records: counting the machine's cores is not one (issue 5's benchmark found it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from txgit.sessions.operations import OperationWatch
from txgit.sessions.tracking import analyze_code


def watch(root: Path, run) -> list[str]:
    w = OperationWatch(root)
    w.start("pass", analyze_code("pass"), [], {}, [])
    try:
        run()
    finally:
        op = w.stop(0.1)
    return op.effects


@pytest.mark.skipif(shutil.which("lscpu") is None, reason="needs lscpu (Linux)")
def test_counting_cores_as_loky_does_is_not_an_effect(tmp_path: Path) -> None:
    # loky runs exactly this the first time a kernel fits an OpenMP estimator (HistGradientBoosting):
    # recorded as "runs other programs", that cell could never be reused.
    assert watch(tmp_path, lambda: subprocess.run("lscpu --parse=core".split(), capture_output=True)) == []
    assert watch(tmp_path, lambda: subprocess.run([shutil.which("lscpu"), "--parse=core"],
                                                  capture_output=True)) == []


def test_other_programs_still_are(tmp_path: Path) -> None:
    assert watch(tmp_path, lambda: subprocess.run([sys.executable, "-c", "pass"])) == ["runs other programs"]
    if shutil.which("lscpu"):  # the same program with other arguments is not the core count
        assert watch(tmp_path, lambda: subprocess.run(["lscpu", "--json"], capture_output=True)) == \
            ["runs other programs"]
