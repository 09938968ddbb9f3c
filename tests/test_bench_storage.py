"""The storage benchmark end to end, on a notebook this test writes: bytes counted as `du` counts them,
one measurement per cell for txgit (and for Kishu where it is installed: a bench extra), and the
bytes grow by a big value's size in the cell that stores it, and hardly at all in the others."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.timeout(600)

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
BENCH = BENCHMARKS / "bench_storage.py"
sys.path.insert(0, str(BENCHMARKS))

BIG = 4_000_000  # random bytes: no compression can shrink them
CELLS = [
    "import numpy as np",
    "small = list(range(10))",
    "print(len(small))",  # changes nothing
    f"big = np.frombuffer(np.random.default_rng(0).bytes({BIG}), dtype=np.uint8)",
    "label = 'done'",
]
BIG_CELL = 3


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, Path]:
    """A corpus file pointing at a notebook in a repository that exists only as a local bare mirror."""
    work = tmp_path / "upstream"
    work.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS]), work / "big.ipynb")
    git("init", "-q", cwd=work)
    git("-c", "user.name=t", "-c", "user.email=t@t", "add", ".", cwd=work)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "notebook", cwd=work)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, capture_output=True, text=True).stdout.strip()
    mirrors = tmp_path / "mirrors"
    git("clone", "-q", "--bare", str(work), str(mirrors / "someone+notebooks" / "repo"), cwd=tmp_path)
    path = tmp_path / "corpus.json"
    path.write_text(json.dumps({"notebooks": [{"repo": "someone/notebooks", "commit": commit, "path": "big.ipynb",
                                               "label": "numpy: one big value"}]}))
    return path, mirrors


def du(flag: str, path: Path) -> int:
    return int(subprocess.run(["du", "-s", flag, str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


def test_disk_usage_counts_what_du_counts(tmp_path: Path):
    from bench_storage import disk_usage

    root = tmp_path / "tree"
    (root / "a" / "b").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a" / "one").write_bytes(b"x" * 10)
    (root / "a" / "b" / "two").write_bytes(os.urandom(70_000))
    (root / "zero").write_bytes(b"")
    os.link(root / "a" / "one", root / "a" / "b" / "one-again")  # counted once, as du does
    os.symlink("a/one", root / "link")
    got = disk_usage([root])
    assert got["apparent"] == du("-b", root)
    assert got["allocated"] == du("-B1", root)
    assert got["files"] == 10 + 70_000
    assert disk_usage([tmp_path / "missing"]) == {"allocated": 0, "apparent": 0, "files": 0}


def test_the_benchmark_measures_bytes_after_every_cell(corpus, tmp_path: Path):
    corpus_file, mirrors = corpus
    out = tmp_path / "result.json"
    r = subprocess.run([sys.executable, str(BENCH), "--corpus", str(corpus_file), "--corpus-dir", str(tmp_path / "cache"),
                        "--mirrors", str(mirrors), "--out", str(out)], capture_output=True, text=True, timeout=540)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "notebooks/big" in r.stdout
    result = json.loads(out.read_text())
    (name, row), = result["notebooks"].items()
    assert name == "notebooks/big" and row["cells"] == len(CELLS)
    sides = ["txgit"]
    try:
        import kishu  # noqa: F401
        sides.append("kishu")
    except ImportError:  # a bench extra; txgit's side is measured all the same
        assert row["kishu"]["failed"].startswith("not run")
    for side in sides:
        run = row[side]
        assert "failed" not in run, run.get("failed")
        series = run["per_cell"]
        assert len(series) == len(CELLS), side
        for m in series:
            assert m["allocated"] > 0 and m["apparent"] > 0 and m["files"] > 0
        grown = [b["files"] - a["files"] for a, b in zip([run["start"], *series], series)]
        assert grown[BIG_CELL] >= BIG, (side, grown)
        assert all(g < BIG / 10 for i, g in enumerate(grown) if i != BIG_CELL), (side, grown)
        assert series[BIG_CELL]["allocated"] - series[BIG_CELL - 1]["allocated"] >= BIG, side
    txgit = row["txgit"]
    # the big value is a blob, not git history; gc packs the history and the small blobs (their bytes
    # move into a pack, which adds its index) and deletes nothing
    assert txgit["per_cell"][BIG_CELL]["blobs"]["files"] - txgit["per_cell"][BIG_CELL - 1]["blobs"]["files"] >= BIG
    before, after = txgit["per_cell"][-1]["blobs"]["files"], txgit["after_gc"]["blobs"]["files"]
    assert before <= after <= before + 4096, (before, after)
    assert txgit["commits"] >= 3
    # what the bytes are: the big value's chunks, and git's records by path
    assert txgit["profile"]["variables"]["big"] >= BIG
    assert {"commits", "trees", "records", "code", "meta.json"} <= set(txgit["profile"]["git"])
    assert "where txgit's bytes are" in r.stdout
    if "kishu" in sides:
        assert row["txgit_over_kishu"]["allocated"] > 0
        unstored = row["kishu"]["unstored"]  # read from Kishu's database: it stored `big` itself
        assert unstored["snapshots"] >= 1 and "big" not in unstored["unstored_names"], unstored
        assert result["summary"]["with_kishu"] == 1
