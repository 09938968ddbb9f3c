"""The benchmark's peers really do their work: Kishu, set up as benchmarks/bench_session.py runs it,
checkpoints after every cell and restores an earlier commit's variables."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("kishu", reason="Kishu is a benchmark peer only (pip install '.[bench]')")

from kernelutil import kishu_commits, kishu_kernel  # noqa: E402


def test_kishu_commits_every_cell_and_checks_out_an_earlier_one(tmp_path: Path) -> None:
    cells = ["x = 1", "import numpy as np\na = np.arange(5)", "x = 2\na = a * 10", "y = x + 1"]
    k = kishu_kernel(tmp_path, cells)
    try:
        for code in cells:
            k.ok(code)
        commits = kishu_commits(tmp_path)
        assert len(commits) == len(cells)  # one checkpoint per cell, none for init_kishu()
        assert k.value("(x, a.tolist(), y)") == (2, [0, 10, 20, 30, 40], 3)
        k.ok(f"_kishu.checkout({commits[1]!r})")  # after the second cell
        assert k.value("(x, a.tolist(), 'y' in globals())") == (1, [0, 1, 2, 3, 4], False)
    finally:
        k.shutdown()
