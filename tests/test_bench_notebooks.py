"""The real-notebook benchmark end to end, on a notebook this test writes: materialized from a local
git mirror by the corpus's pointer, run with and without txgit in real kernels, its JSON complete,
and a variable mutated in place (not rebound) reported committed and restored in a fresh kernel."""

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
BENCH = BENCHMARKS / "bench_notebooks.py"

CELLS = [
    "import numpy as np\nimport pandas as pd",
    "frame = pd.read_csv('data/points.csv')\nrows = []",
    "rows.append(len(frame))\nrows.append(2)",  # a mutation: `rows` is never rebound
    "print(frame.shape)",  # changes nothing
    "raise RuntimeError('this cell needs the network')",  # dropped by the corpus, with why
    "grid = np.arange(12.0).reshape(3, 4).T  # a Fortran-ordered view\nlabel = 'LABEL'",
]


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, Path]:
    """A corpus file pointing at a notebook in a repository that exists only as a local bare mirror."""
    work = tmp_path / "upstream"
    (work / "nb" / "data").mkdir(parents=True)
    (work / "nb" / "data" / "points.csv").write_text("x,y\n1,2\n3,4\n5,6\n")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# a notebook")]
                                        + [nbformat.v4.new_code_cell(c) for c in CELLS])
    nbformat.write(notebook, work / "nb" / "demo.ipynb")
    git("init", "-q", cwd=work)
    git("-c", "user.name=t", "-c", "user.email=t@t", "add", ".", cwd=work)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "notebook", cwd=work)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, capture_output=True, text=True).stdout.strip()
    mirrors = tmp_path / "mirrors"
    git("clone", "-q", "--bare", str(work), str(mirrors / "someone+notebooks" / "repo"), cwd=tmp_path)
    entry = {"repo": "someone/notebooks", "commit": commit, "path": "nb/demo.ipynb", "label": "pandas: csv",
             "data": {"data/points.csv": "nb/data/points.csv"}, "skip_cells": {"4": "needs the network"},
             "patches": [{"cell": 5, "old": "'LABEL'", "new": "'label'", "why": "a patch is applied"}]}
    path = tmp_path / "corpus.json"
    path.write_text(json.dumps({"notebooks": [entry]}))
    return path, mirrors


def test_the_benchmark_runs_a_corpus_notebook_and_reports_it(corpus, tmp_path):
    corpus_file, mirrors = corpus
    out = tmp_path / "result.json"
    r = subprocess.run([sys.executable, str(BENCH), "--corpus", str(corpus_file), "--corpus-dir", str(tmp_path / "cache"),
                        "--mirrors", str(mirrors), "--reps", "2", "--kishu", "0", "--out", str(out)],
                       capture_output=True, text=True, timeout=540)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "variables restored exactly: " in r.stdout
    result = json.loads(out.read_text())
    assert result["reps"] == 2
    summary = result["summary"]
    for key in ("notebooks", "cells", "ratio_corpus", "ratio_median", "worst", "hook_ms", "noise_corpus", "noise_median",
                "commits", "cells_that_changed", "changed_without_commit", "outputs_differ", "restored_exactly", "variables",
                "slowest_hooks"):
        assert key in summary, key
    # where the tail of the hook times is: notebook, cell (numbered as the corpus counts code cells), ms
    slowest = summary["slowest_hooks"]
    assert 0 < len(slowest) <= 10 and slowest == sorted(slowest, key=lambda h: -h["ms"])
    assert {h["notebook"] for h in slowest} == {"notebooks/demo"} and 4 not in {h["cell"] for h in slowest}
    assert "slowest hooks: " in r.stdout
    assert summary["notebooks"] == 1 and summary["failed"] == 0
    (name, row), = result["notebooks"].items()
    assert name == "notebooks/demo" and row["label"] == "pandas: csv"
    assert row["cells"] == len(CELLS) - 1  # the skipped cell is not run
    assert len(row["hook_s"]) == row["cells"] and all(h > 0 for h in row["hook_s"])
    assert row["ratio"] > 0 and row["noise"] > 0 and row["baseline_s"] > 0
    # `%load_ext txgit` is not in the cells' times: its own column, so that nothing txgit does there hides
    assert 0 < row["load_ext_s"] < 30 and summary["load_ext_ms"]["median"] > 0
    assert "%load_ext txgit: median " in r.stdout
    # the floor peer pickled what each cell newly bound: frame and rows, then grid and label (the
    # modules do not pickle; the in-place append rebinds nothing)
    assert row["floor_ratio"] > 0 and row["floor_saves"] == 4
    assert "floor_corpus" in summary and "floor (a hook that only pickles" in r.stdout
    # every cell but the one that only prints changed a variable, and each of them committed
    assert row["cells_that_changed"] == row["cells"] - 1 == row["commits"]
    assert row["changed_without_commit"] == {}
    assert row["outputs_differ"] == []
    restore = row["restore"]
    assert restore["misses"] == {} and restore["exact"] == restore["variables"], restore
    assert restore["names"] == ["frame", "grid", "label", "np", "pd", "rows"]  # rows: mutated in place


def test_run_py_loads_the_benchmark():
    """`benchmarks/run.py notebooks` loads the module as run.py loads every benchmark."""
    r = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import run; "
                        "m = run.load(run.HERE / 'bench_notebooks.py'); print(callable(m.main), len(m.load_corpus()))",
                        str(BENCHMARKS)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    count = int(r.stdout.split()[1])
    assert r.stdout.split()[0] == "True" and count >= 30  # the corpus: at least 30 real notebooks


def test_fingerprints_of_figures_do_not_change_by_being_taken(tmp_path):
    """A grid of axes, a colorbar and a formatter fingerprint the same twice over (pickling a figure
    advances its callback registries' counters: the benchmark once saw every cell after
    `fig, ax = plt.subplots(2, 3)` as changing `ax`), and a function of the global random generator is
    told apart."""
    pytest.importorskip("matplotlib")
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import bench_notebooks
        from kernelutil import Kernel
    finally:
        sys.path.remove(str(BENCHMARKS))
    k = Kernel(tmp_path)
    try:
        k.ok("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nimport numpy as np\n"
             "fig, ax = plt.subplots(2, 2)\nim = ax[0, 0].imshow(np.eye(3))\ncb = fig.colorbar(im)\n"
             "formatter = ax[0, 1].xaxis.get_major_formatter()\nfrom numpy.random import beta\n"
             # a generator as txgit restores it: equal position, a dtype that is equal but another object
             "from txgit.state import pickling\nrs = np.random.RandomState(0)\n"
             "restored_rs = pickling.loads(*(lambda s, b: (s, [x.raw() for x in b]))(*pickling.dumps(rs, None)), None)")
        bench_notebooks.define_fingerprints(k)
        first = bench_notebooks.fingerprints(k)
        second = bench_notebooks.fingerprints(k)
    finally:
        k.shutdown()
    assert {n: first[n] for n in ("ax", "cb", "formatter")} == {n: second[n] for n in ("ax", "cb", "formatter")}
    assert first["cb"].startswith("drawn:") and first["ax"].startswith("objects:")
    assert first["beta"].startswith("globalrng:")
    assert first["rs"] == first["restored_rs"]


def test_fingerprints_compare_what_a_restore_must_keep_and_nothing_more(tmp_path):
    """Equal sympy expressions whose equal symbols are one object or two (sympy's cache decides) are one
    value; rcParams' backend (the kernel's display, left alone by a checkout) is not compared, any other
    setting is; a function of the global generator is compared by the generator's position."""
    pytest.importorskip("sympy")
    pytest.importorskip("matplotlib")
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import bench_notebooks
        from kernelutil import Kernel, silent_exec
    finally:
        sys.path.remove(str(BENCHMARKS))
    k = Kernel(tmp_path)
    try:
        k.ok("import sympy\nimport matplotlib\nmatplotlib.use('Agg')\nimport numpy as np\n"
             "from numpy.random import beta\nfrom matplotlib import rcParams\n"
             "x = sympy.Symbol('x')\none = sympy.Add(x, sympy.Pow(x, 2))\n"
             "sympy.core.cache.clear_cache()  # the next Symbol('x') is another object\n"
             "two = sympy.Add(x, sympy.Pow(sympy.Symbol('x'), 2))\nother = sympy.Add(x, sympy.Pow(x, 3))")
        assert k.value("(one == two, one.args[0] is one.args[1].args[0], two.args[0] is two.args[1].args[0])") == (
            True, True, False)
        bench_notebooks.define_fingerprints(k)
        first = bench_notebooks.fingerprints(k)
        silent_exec(k, "rcParams['backend'] = 'agg'\nstate = np.random.get_state()\nnp.random.rand()")
        drawn = bench_notebooks.fingerprints(k)
        silent_exec(k, "rcParams['lines.linewidth'] = 7.5\nnp.random.set_state(state)")
        set_back = bench_notebooks.fingerprints(k)
    finally:
        k.shutdown()
    assert first["one"] == first["two"] != first["other"]
    assert drawn["rcParams"] == first["rcParams"] != set_back["rcParams"]
    assert drawn["beta"] != first["beta"] == set_back["beta"]


KEEP_RUN_FOLDER = r'''
import os, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import bench_notebooks as bn
seen = []
run = bn.run_notebook(["x = 1"], Path(sys.argv[2]), "baseline", after_cell=lambda k, folder, i: seen.append(folder))
assert run["times"] and not run.get("failed"), run
print(seen[0], seen[0].is_dir())
'''


@pytest.mark.parametrize("when", ["later", "now"])
def test_a_runs_folder_is_removed_when_the_benchmark_ends(tmp_path, when):
    """Removing each run's folder as it ended made the next runs' new files cost ~10x more CPU on a file
    system without a journal (ext4 skips recently freed inodes), and txgit's runs create hundreds: the
    git helper took ~5 ms of CPU a commit instead of ~1 (benchmarks/gap_notebooks.py, 8 notebooks, 6 reps
    each way). ``TXGIT_BENCH_REMOVE_RUNS=now`` removes it at once, as before, to compare."""
    env = {**os.environ, "TXGIT_BENCH_REMOVE_RUNS": when}
    r = subprocess.run([sys.executable, "-c", KEEP_RUN_FOLDER, str(BENCHMARKS), str(tmp_path / "no-files")],
                       capture_output=True, text=True, timeout=300, env=env, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    folder, existed = r.stdout.split()
    assert existed == ("True" if when == "later" else "False")
    assert not Path(folder).exists()  # gone once the benchmark's process ended


def test_ab_notebooks_runs_the_base_checkout_under_this_python_by_default(tmp_path):
    """Its recipe was a venv made for the base with a .pth naming this venv's packages, outside its
    sys.prefix, where txgit hashes them as the user's code (+1.7-2.6 s on `from pylab import *`); the
    default Python was BASE/.venv/bin/python, so a plain worktree failed. Now it is this Python (the
    base's txgit first on PYTHONPATH); a folder that is no checkout is said in one line."""
    ab = BENCHMARKS / "ab_notebooks.py"
    base = tmp_path / "base"
    (base / "txgit").mkdir(parents=True)
    (base / "txgit" / "__init__.py").write_text("")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ab), *args, "no-such-notebook"], capture_output=True, text=True,
                              timeout=120)

    r = run("--base", str(base))  # gets past the configurations to the notebooks' names
    assert r.returncode == 2 and r.stderr.strip() == "ab_notebooks: no corpus notebook matches", r.stderr
    r = run("--base", str(tmp_path / "elsewhere"))
    assert r.returncode == 2 and r.stderr.strip().startswith("ab_notebooks: no txgit checkout at "), r.stderr
    r = run("--base", str(base), "--base-python", str(tmp_path / "nopython"))
    assert r.returncode == 2 and "no Python at" in r.stderr and "Traceback" not in r.stderr
