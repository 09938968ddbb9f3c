"""The experiment graph: cells recorded as operations, and their results reused instead of recomputed.

In-process tests drive a NamespaceSession the way the kernel extension does
(before_cell, then either the reuse layer's results or exec, then after_cell);
"ran" means exec was called. The kernel tests use real ipykernels, where a
cell that runs leaves a mark in the kernel's builtins, which no txgit
tracking sees.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import session_namespace
from kernelutil import Kernel

from txgit import Workspace
from txgit.reuse import Reuser
from txgit.sessions.session import NamespaceSession

EXPENSIVE = "time.sleep(0.06)\n"  # well above what loading these small results costs

NOTEBOOK = [
    "import time\nimport numpy as np\nimport pandas as pd",
    EXPENSIVE + "df = pd.read_csv('data.csv')\nprint('rows', len(df))",
    EXPENSIVE + "df['ab'] = df['a'] * df['b']\nfeat = df[['a', 'b', 'ab']]",
    EXPENSIVE + "from sklearn.linear_model import LogisticRegression\n"
                "model = LogisticRegression(C=1.0).fit(feat, df['y'])",
    EXPENSIVE + "score = model.score(feat, df['y'])",
    EXPENSIVE + "summary = {'score': score, 'n': len(df)}",
]


def write_csv(path: Path, seed: int = 0, n: int = 400) -> None:
    rng = np.random.default_rng(seed)
    pd.DataFrame({"a": rng.normal(size=n), "b": rng.integers(0, 5, n),
                  "y": rng.integers(0, 2, n)}).to_csv(path / "data.csv", index=False)


def run_cells(root: Path, cells: list[str], *, reuse: bool,
              background: bool = False) -> tuple[dict, list[bool], NamespaceSession]:
    """Run ``cells`` in a fresh namespace and session (a new kernel); which of them were reused.
    ``background``: commits are written while the next cell runs, as in a kernel."""
    cwd = os.getcwd()
    os.chdir(root)
    try:
        session = NamespaceSession(Workspace.open(root), session_namespace(), kind="ipython")
        session.background = background
        reuser = Reuser(session) if reuse else None
        reused = []
        for code in cells:
            session.before_cell(code)
            got = reuser.prepare() if reuser else None
            if got is not None:
                reuser.apply(got)
            else:
                exec(compile(code, "<cell>", "exec"), session.namespace)
            outcome = session.after_cell()
            assert outcome is not None  # (a cell that changes no variable makes no commit)
            reused.append(got is not None)
        session.flush()
        return session.namespace, reused, session
    finally:
        os.chdir(cwd)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    Workspace.init(tmp_path)
    write_csv(tmp_path)
    return tmp_path


def test_each_cell_is_recorded_as_an_operation(root):
    ns, _, s = run_cells(root, NOTEBOOK, reuse=False)
    cells = json.loads(s.workspace.history.read_file(s.workspace.history.resolve("HEAD~4"), "code/cells.json"))
    op = cells[0]["op"]
    assert op["files"] == {"data.csv": op["files"]["data.csv"]} and len(op["files"]["data.csv"]) == 32
    assert op["inputs"] == {"pd": f"m:pandas@{pd.__version__}", "time": "m:time@"}
    assert op["outputs"] == ["df"] and op["stdout"] == "rows 400\n" and op["seconds"] >= 0.06
    assert not op.get("effects")
    # the next cell reads df by its origin (the operation that made it), and mutates it
    nxt = json.loads(s.workspace.history.read_file(s.workspace.history.resolve("HEAD~3"), "code/cells.json"))[0]["op"]
    assert nxt["inputs"]["df"] == s.workspace.state("HEAD~4").meta["origins"]["df"]
    assert nxt["outputs"] == ["df", "feat"]


def test_unchanged_rerun_reuses_every_expensive_cell_with_identical_state(root):
    import sklearn.linear_model  # noqa: F401  (its import sets environment defaults: before the first run)

    first, ran_first, s1 = run_cells(root, NOTEBOOK, reuse=True)
    assert ran_first == [False] * 6  # nothing recorded yet
    end_first = s1.workspace.head().id
    second, reused, s2 = run_cells(root, NOTEBOOK, reuse=True)
    assert reused[1:] == [True] * 5, reused
    assert first["df"].equals(second["df"]) and second["feat"].equals(first["feat"])
    assert np.array_equal(first["model"].coef_, second["model"].coef_)
    assert second["score"] == first["score"] and second["summary"] == first["summary"]
    # the reused values are the committed ones: the two end states hold the same records
    diff = s2.workspace.diff(end_first, s2.workspace.head().id)
    assert not diff.changed and not diff.added and not diff.removed
    # once the state equalled the first run's end, the reused cells made no commit; each is recorded
    # (the operations log) as reused from the commit of the first run that made its results
    assert s2.workspace.head().id != end_first and s2.workspace.state("HEAD").meta["reuse"]
    last = [c.op for c in s2.pending]
    assert last and all(op["settled"] and op["reused_from"] for op in last)
    assert last[-1]["reused_from"] == end_first


def test_changing_cell_4_reruns_cells_4_to_6_only(root):
    run_cells(root, NOTEBOOK, reuse=True)
    changed = list(NOTEBOOK)
    changed[3] = changed[3].replace("C=1.0", "C=0.05")
    ns, reused, _ = run_cells(root, changed, reuse=True)
    assert reused[1:] == [True, True, False, False, False], reused
    assert ns["model"].C == 0.05
    # and the original notebook is still reusable as a whole: both variants are in the graph
    _, again, _ = run_cells(root, NOTEBOOK, reuse=True)
    assert again[1:] == [True] * 5


def test_a_cell_not_reading_the_changed_one_is_still_reused(root):
    cells = NOTEBOOK[:3] + [EXPENSIVE + "stats = df['a'].describe()", EXPENSIVE + "top = feat.nlargest(3, 'ab')"]
    run_cells(root, cells, reuse=True)
    cells[3] = cells[3].replace("describe()", "quantile(0.9)")
    _, reused, _ = run_cells(root, cells, reuse=True)
    assert reused[1:] == [True, True, False, True], reused


def test_changed_csv_reruns_its_readers(root):
    run_cells(root, NOTEBOOK, reuse=True)
    write_csv(root, seed=1)
    ns, reused, s = run_cells(root, NOTEBOOK, reuse=True)
    assert reused[1:] == [False] * 5, reused
    assert ns["df"]["a"].iloc[0] == pd.read_csv(root / "data.csv")["a"].iloc[0]


@pytest.mark.parametrize("where", ["data.parquet", "parts"])
def test_changed_parquet_data_reruns_its_readers(root, where):
    """pyarrow opens Parquet files in C++, where Python's audit hook does not see them: txgit must
    still know the cell read them, or a changed file would give the old results back."""
    def write(values: list[int]) -> None:
        if where == "parts":  # a partitioned data set: a folder of files
            (root / where).mkdir(exist_ok=True)
            for i, v in enumerate(values):
                pd.DataFrame({"a": [v]}).to_parquet(root / where / f"part-{i}.parquet")
        else:
            pd.DataFrame({"a": values}).to_parquet(root / where)

    write([1, 2])
    cells = [NOTEBOOK[0], EXPENSIVE + f"pq = pd.read_parquet('{where}')"]
    run_cells(root, cells, reuse=True)
    ns, reused, _ = run_cells(root, cells, reuse=True)
    assert reused == [False, True] and sorted(ns["pq"]["a"]) == [1, 2]
    write([1, 2, 5])  # for the folder: the same two files, and a new one beside them
    ns, reused, _ = run_cells(root, cells, reuse=True)
    assert reused == [False, False] and sorted(ns["pq"]["a"]) == [1, 2, 5]


# Valid Python of many kinds, to compare the canonical form of code across Python versions.
SYNTAX_SAMPLE = 'import numpy as np\nfrom math import *  # noqa\n@decorator(1)\ndef f(a, b=2, *args, c, d=None, **kw) -> int:\n    """doc"""\n    global g\n    x = [i * 2 for i in range(10) if i % 2]\n    y = {k: v for k, v in kw.items()}\n    z = lambda q, *r: (q, r)\n    if (n := len(x)) > 3:\n        return f"{n!r:>10} and {a:{b}} {{}}"\n    try:\n        with open(\'x\') as fh, open(\'y\'):\n            pass\n    except (OSError, ValueError) as e:\n        raise RuntimeError("no") from e\n    finally:\n        del x\n    return a[1:2, ::3], b[...], {**kw, \'a\': 1}, [*args], -1.5e3, 2j, b\'\\x00\', None, True\nclass C(Base, metaclass=Meta):\n    attr: int = 3\n    async def m(self):\n        async for i in self:\n            await i\n        async with self:\n            yield\nmatch value:\n    case [1, 2, *rest] if rest:\n        pass\n    case {"k": _} | (3 | 4):\n        pass\n    case Point(x=0) as p:\n        pass\ndf.loc[df[\'a\'] > 0, \'b\'] = df[\'b\'].apply(lambda s: s.strip())\nassert x, "msg"\nfor i in range(3):\n    continue\nelse:\n    pass\nwhile True:\n    break\n'


def _other_pythons() -> list[str]:
    """Other CPython interpreters on this machine (pyenv's, or python3.N on PATH) that run."""
    import glob
    import subprocess

    found = set(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[0-9]*/bin/python")))
    found |= {p for n in range(10, 16) if (p := shutil.which(f"python3.{n}"))}
    return sorted(p for p in found if subprocess.run([p, "-c", "pass"], capture_output=True).returncode == 0)


def test_the_code_key_is_the_same_in_every_python_version():
    """Collaborators on other Python versions must find the same operations: the key is built from
    a canonical form of the syntax tree, not from bytecode (which differs between minor versions)."""
    import ast
    import hashlib
    import subprocess

    import txgit.sessions.codeform as codeform
    from txgit.sessions.operations import code_hash

    here = codeform.canonical_code(ast.parse(SYNTAX_SAMPLE))
    # Fixed: a change here changes every recorded operation's key, so nobody would reuse older results.
    assert hashlib.sha256(here.encode()).hexdigest()[:16] == "0f53d2571cbb3c76", here
    assert code_hash(SYNTAX_SAMPLE, ast.parse(SYNTAX_SAMPLE)) == "2da77c7d0a38211611e5f8a7bd1559e2"  # and the key is made of it
    script = ("import ast, importlib.util, sys\n"
              "spec = importlib.util.spec_from_file_location('codeform', sys.argv[1])\n"
              "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
              "sys.stdout.write(m.canonical_code(ast.parse(sys.stdin.read())))")
    for python in _other_pythons():
        there = subprocess.run([python, "-c", script, codeform.__file__], input=SYNTAX_SAMPLE, text=True,
                               capture_output=True, check=True).stdout
        assert there == here, python


def test_layout_and_comments_do_not_change_the_key(root):
    run_cells(root, NOTEBOOK, reuse=True)
    edited = list(NOTEBOOK)
    edited[2] = "# features\n" + edited[2].replace(" * ", "*") + "   # the product\n\n"
    _, reused, _ = run_cells(root, edited, reuse=True)
    assert reused[1:] == [True] * 5, reused


@pytest.mark.parametrize("cell, reusable", [
    ("x = np.random.rand(3)", False),  # numpy's global generator, unseeded: another state in a fresh run
    ("np.random.seed(3)\nx = np.random.rand(3)", True),
    ("x = np.random.default_rng().normal(size=3)", False),
    ("x = np.random.default_rng(7).normal(size=3)", True),
    ("from sklearn.ensemble import RandomForestClassifier\n"  # random_state=None draws from numpy's generator
     "x = RandomForestClassifier(n_estimators=3).fit([[0], [1], [2], [3]], [0, 1, 0, 1])", False),
    ("open('out.txt', 'w').write('x')\nx = 1", False),
    ("import datetime\nx = datetime.datetime.now()", False),
    ("exec('x = 1')", False),
    ("import sqlite3\nx = sqlite3.connect('db.sqlite').execute('select 1').fetchall()", False),  # read in C
    # process state the cells after it depend on, which loading its results would not set
    ("import sys\nsys.path.insert(0, 'lib')\nx = 1", False),
    ("x = input() if False else 1", False),  # what the user answers next time is another input
    ("import json\njson.CACHE = {'k': 1}\nx = 1", False),  # a module's state: not versioned, not loaded
    ("time.txgit_test_mark = 1\nx = 1", False),  # (a module imported by an earlier cell)
    ("import json\nx = {}\nx['k'] = json.dumps(1)", True),
    ("import os\nos.chdir('.')\nx = 1", False),
    ("from sklearn import set_config\nset_config(assume_finite=True)\nx = 1", False),
    ("from sklearn import get_config\nx = get_config()['assume_finite']", True),
])
def test_effects_and_randomness_are_re_run(root, cell, reusable):
    import sklearn

    cells = [NOTEBOOK[0], EXPENSIVE + cell]
    path, config = list(sys.path), sklearn.get_config()
    try:
        first, _, s = run_cells(root, cells, reuse=True)
        sys.path[:] = path  # a fresh kernel
        sklearn.set_config(**config)
        _, reused, _ = run_cells(root, cells, reuse=True)
    finally:
        sys.path[:] = path
        sklearn.set_config(**config)
    assert reused[1] is reusable
    if not reusable:
        # (the commit also lists the cells before it that changed nothing)
        op = json.loads(s.workspace.history.read_file(s.workspace.history.resolve("HEAD"), "code/cells.json"))[-1]["op"]
        assert op.get("effects") or op.get("rng"), op


def test_printed_output_deletions_and_aliasing_are_replayed(root, capsys):
    cells = [NOTEBOOK[0], "a = [1, 2]\nold = 5",
             EXPENSIVE + "b = {'k': a}\na.append(3)\ndel old\nprint('made b', b)"]
    run_cells(root, cells, reuse=True)
    capsys.readouterr()
    ns, reused, _ = run_cells(root, cells, reuse=True)
    assert reused[2] is True
    assert "made b {'k': [1, 2, 3]}" in capsys.readouterr().out
    assert "old" not in ns and ns["b"]["k"] is ns["a"] and ns["a"] == [1, 2, 3]


def test_results_cheaper_to_compute_than_to_load_are_computed(root):
    cells = [NOTEBOOK[0], "big = np.zeros(30_000_000)"]  # 240 MB, made in no time (calloc)
    run_cells(root, cells, reuse=True)
    _, reused, _ = run_cells(root, cells, reuse=True)
    assert reused == [False, False]


# The head of a script whose statements take long enough to be worth reusing; each says when it runs.
SLOW_SCRIPT = ("import sys, time\nimport pandas as pd\n\n"
               "def slowly(what, make):\n    print('computing', what, file=sys.stderr)\n    time.sleep(0.2)\n"
               "    return make()\n\n")


def test_script_reuse_and_ops_listing(tmp_path, run_txgit):
    run_txgit("init", cwd=tmp_path, check=True)
    write_csv(tmp_path)
    (tmp_path / "pipeline.py").write_text(
        SLOW_SCRIPT + "df = slowly('df', lambda: pd.read_csv('data.csv'))\n"
        "total = slowly('total', lambda: float(df['a'].sum()))\n"
        "print('total', round(total, 6))\n")
    first = run_txgit("run", "--reuse", "pipeline.py", cwd=tmp_path, check=True)
    assert "computing df" in first.stderr and "computing total" in first.stderr
    second = run_txgit("run", "--reuse", "pipeline.py", cwd=tmp_path, check=True)
    assert "computing" not in second.stderr, second.stderr
    assert "loaded df in" in second.stderr and "loaded total in" in second.stderr
    assert second.stdout == first.stdout
    (tmp_path / "pipeline.py").write_text((tmp_path / "pipeline.py").read_text().replace("['a']", "['b']"))
    third = run_txgit("run", "--reuse", "pipeline.py", cwd=tmp_path, check=True)
    assert "computing df" not in third.stderr and "computing total" in third.stderr
    ops = run_txgit("ops", "--json", cwd=tmp_path, check=True)
    doc = json.loads(ops.stdout)
    reused = [o for o in doc["operations"] if o["reused_from"]]
    assert sum("total = " in o["summary"] for o in reused) == 1 and sum("df = " in o["summary"] for o in reused) == 2
    assert doc["saved_seconds"] > 0.5
    listing = run_txgit("ops", cwd=tmp_path, check=True).stdout
    assert f"{len(reused)} reused instead of run" in listing and "saved 0.2" in listing


# -- real kernels ------------------------------------------------------------------------------

# A cell that runs leaves a mark where no txgit tracking looks (its environment would be: setting it is an effect)
PROBE = "import builtins\nbuiltins.__dict__.setdefault('RAN', []).append({n})\n"
KERNEL_NOTEBOOK = [NOTEBOOK[0]] + [PROBE.format(n=i + 2) + c for i, c in enumerate(NOTEBOOK[1:])] + [
    PROBE.format(n=7) + EXPENSIVE + "from IPython.display import HTML, display\nprint('score:')\n"
                                    "display(HTML(f'<b>score {score:.4f}</b>'))\nprint('shown')\n"
                                    "progress = display(HTML('<i>0 %</i>'), display_id=True)\n"
                                    "progress.update(HTML('<i>100 %</i>'))",
    "summary"]


def run_notebook(root: Path, cells: list[str]) -> tuple[str, list, str]:
    """Run ``cells`` in a fresh kernel with reuse on: which cells ran, every cell's stdout and displayed
    outputs (its value, and what it passed to ``display``), stderr."""
    k = Kernel(root)
    try:
        k.ok("%load_ext txgit")
        assert "reuse on" in k.ok("%txgit reuse on").stdout
        stderr, shown = "", []
        for c in cells:
            r = k.ok(c)
            stderr += r.stderr
            shown.append(r.shown)
        ran = k.ok("print(''.join(f'{n},' for n in __import__('builtins').__dict__.get('RAN', [])))").stdout.strip()
        return ran, shown, stderr
    finally:
        k.km.shutdown_kernel(now=True)


def test_kernel_rerun_reuses_and_changes_rerun_what_they_affect(root):
    ran, out_first, _ = run_notebook(root, KERNEL_NOTEBOOK)
    assert ran == "2,3,4,5,6,7,"
    assert any("<b>score " in str(outputs) for outputs in out_first)
    ran, out_again, stderr = run_notebook(root, KERNEL_NOTEBOOK)
    assert ran == "", stderr  # no expensive cell executed
    assert stderr.count("txgit: reused results of") >= 6
    assert out_again == out_first  # printed, displayed and the values shown: replayed as they were
    changed = list(KERNEL_NOTEBOOK)
    changed[3] = changed[3].replace("C=1.0", "C=0.05")
    ran, _, _ = run_notebook(root, changed)
    assert ran == "4,5,6,7,"
    # (not seed 2: its data give the same score, 0.5225, so early cutoff rightly reuses cell 7)
    write_csv(root, seed=3)
    ran, _, stderr = run_notebook(root, KERNEL_NOTEBOOK)
    assert ran == "2,3,4,5,6,7,"
    assert "ran instead of reusing" in stderr and ": data.csv changed" in stderr  # the user sees why


def test_collaborator_clone_reuses_the_authors_results(tmp_path, run_txgit):
    alice = tmp_path / "alice"
    Workspace.init(alice)
    write_csv(alice)
    ran, out_alice, _ = run_notebook(alice, KERNEL_NOTEBOOK)
    assert ran == "2,3,4,5,6,7,"
    run_txgit("remote", "add", "origin", str(tmp_path / "shared.git"), "--trusted", cwd=alice, check=True)
    run_txgit("push", "origin", cwd=alice, check=True)
    run_txgit("clone", str(tmp_path / "shared.git"), "bob", "--trusted", cwd=tmp_path, check=True)
    bob = tmp_path / "bob"
    shutil.copy(alice / "data.csv", bob / "data.csv")  # the same data, in Bob's folder
    assert not any(p.is_file() for p in (bob / ".txgit" / "objects").rglob("*"))  # a clone fetches lazily
    ran, out_bob, stderr = run_notebook(bob, KERNEL_NOTEBOOK)
    assert ran == "", stderr
    assert out_bob == out_alice
    # Alice's results came from the remote's storage, verified, into Bob's cache
    assert any(p.is_file() for p in (bob / ".txgit" / "objects").rglob("*"))
    ops = json.loads(run_txgit("ops", "--json", cwd=bob, check=True).stdout)
    assert ops["reused"] >= 6


def test_cells_after_a_checkout_are_reused(root):
    run_cells(root, NOTEBOOK, reuse=True)
    # a fresh kernel checks out the state after cell 3, then runs cells 4-6
    session = NamespaceSession(Workspace.open(root), session_namespace(), kind="ipython")
    session.checkout("HEAD~3")
    assert session.origins["df"].startswith("op:")  # the commit carries its values' origins
    reuser = Reuser(session)
    for code in NOTEBOOK[3:]:
        session.before_cell(code)
        got = reuser.prepare()
        assert got is not None, reuser.last_reason
        reuser.apply(got)
        session.after_cell()
    assert session.namespace["summary"]["n"] == 400


def test_results_from_an_untrusted_clone_are_not_reused(tmp_path, root):
    run_cells(root, NOTEBOOK, reuse=True)
    author = Workspace.open(root)
    author.remotes.add("origin", str(tmp_path / "shared.git"))
    author.push()
    for trusted in (False, True):
        bob = tmp_path / f"bob-{trusted}"
        Workspace.clone(str(tmp_path / "shared.git"), bob, trusted=trusted)
        shutil.copy(root / "data.csv", bob / "data.csv")
        _, reused, _ = run_cells(bob, NOTEBOOK, reuse=True)
        assert reused[1:] == [trusted] * 5, (trusted, reused)


@pytest.mark.parametrize("seed_cell", [
    "np.random.seed(5)\na = np.random.rand(3)",
    "import random\nrandom.seed(5)\na = [random.random() for _ in range(3)]",
])
def test_reusing_a_seeded_cell_leaves_the_generator_where_running_it_would(root, seed_cell):
    """The next cell draws from the generator the reused one seeded and drew from: its values must be
    those of a full run, which they are only if reuse puts the generator where running would leave it."""
    draw = ("b = np.random.rand(3)" if "np." in seed_cell else "b = [random.random() for _ in range(3)]")
    cells = [NOTEBOOK[0], EXPENSIVE + seed_cell, EXPENSIVE + draw]
    first, _, _ = run_cells(root, cells, reuse=True)
    again, reused, _ = run_cells(root, cells, reuse=True)
    assert np.array_equal(again["b"], first["b"]), (again["b"], first["b"])
    assert reused == [False, True, True]


def test_displays_that_cannot_be_replayed_make_the_cell_unreusable():
    from txgit.sessions.operations import MAX_DISPLAY_CHARS, Operation, kept_displays

    plot = {"data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}, "metadata": {"image/png": {"width": 4}}}
    kept, why = kept_displays([plot])
    assert why is None and kept == [plot]
    op = Operation(key="k", code="c", inputs={}, displays=kept)
    assert Operation.from_json(json.loads(json.dumps(op.to_json()))).displays == kept  # as cells.json keeps it
    # a display updated in place (a progress report) is kept as it was last shown
    first, last = {"data": {"text/plain": "10 %"}, "display_id": "p"}, {"data": {"text/plain": "100 %"}}
    assert kept_displays([first, plot, {**last, "display_id": "p", "update": True}]) == (
        [{"data": {"text/plain": "100 %"}, "metadata": {}}, plot], None)
    assert kept_displays([{**last, "display_id": "q", "update": True}])[1] == "updates a display another cell showed"
    # a widget's view needs its model in the kernel that made it: not kept
    widget = {"data": {"application/vnd.jupyter.widget-view+json": {"model_id": "m1"}, "text/plain": "HBox()"}}
    assert kept_displays([widget, plot]) == ([plot], None)
    huge = {"data": {"image/png": "A" * (MAX_DISPLAY_CHARS + 1)}}
    assert kept_displays([huge]) == ([], "displays more than txgit keeps (2 MB)")
    assert kept_displays([{"data": {"x": object()}}])[1] == "displays data txgit cannot keep"


def test_script_sees_parquet_read_by_pyarrow_imported_in_the_statement(tmp_path, run_txgit):
    """In a fresh process pandas imports pyarrow inside the statement that reads: its readers are
    wrapped on import, so the file is recorded, reused while unchanged and re-read once changed."""
    run_txgit("init", cwd=tmp_path, check=True)
    pd.DataFrame({"a": [1, 2]}).to_parquet(tmp_path / "d.parquet")
    (tmp_path / "job.py").write_text(
        SLOW_SCRIPT + "df = slowly('df', lambda: pd.read_parquet('d.parquet'))\n"
        "print('sum', int(df['a'].sum()))\n")
    first = run_txgit("run", "--reuse", "job.py", cwd=tmp_path, check=True)
    assert "computing df" in first.stderr and "sum 3" in first.stdout
    cells = run_txgit("ops", "--json", cwd=tmp_path, check=True).stdout
    assert "d.parquet" in cells  # recorded as a file the statement read
    second = run_txgit("run", "--reuse", "job.py", cwd=tmp_path, check=True)
    assert "computing df" not in second.stderr and "sum 3" in second.stdout
    pd.DataFrame({"a": [3, 4]}).to_parquet(tmp_path / "d.parquet")
    third = run_txgit("run", "--reuse", "job.py", cwd=tmp_path, check=True)
    assert "computing df" in third.stderr and "sum 7" in third.stdout


def test_a_cell_that_found_no_file_is_reused_until_the_file_appears(root):
    cells = [NOTEBOOK[0], EXPENSIVE + "try:\n    x = open('cache.txt').read()\nexcept FileNotFoundError:\n    x = 'none'"]
    run_cells(root, cells, reuse=True)
    ns, reused, _ = run_cells(root, cells, reuse=True)
    assert reused == [False, True] and ns["x"] == "none"
    (root / "cache.txt").write_text("cached")
    ns, reused, _ = run_cells(root, cells, reuse=True)
    assert reused == [False, False] and ns["x"] == "cached"


@pytest.mark.parametrize("read", [
    "pl.read_parquet('d.parquet')",
    "pl.read_csv('parts/*.csv')",  # a pattern: a new matching file re-runs the cell
    "pl.scan_csv('parts/a.csv').collect()",
])
def test_polars_reads_are_seen(root, read):
    """polars reads in Rust, out of Python's audit hooks' sight."""
    import polars as pl

    def write(values: list[int]) -> None:
        (root / "parts").mkdir(exist_ok=True)
        pl.DataFrame({"a": values}).write_parquet(root / "d.parquet")
        for i, v in enumerate(values):  # a.csv, b.csv, ...
            pl.DataFrame({"a": [v]}).write_csv(root / "parts" / f"{'abc'[i]}.csv")

    write([1, 2])
    cells = [NOTEBOOK[0] + "\nimport polars as pl", EXPENSIVE + f"got = {read}['a'].to_list()"]
    first, _, _ = run_cells(root, cells, reuse=True)
    again, reused, _ = run_cells(root, cells, reuse=True)
    assert reused == [False, True] and again["got"] == first["got"]
    # for the pattern: a.csv and b.csv stay the same and c.csv is new; else the file read changes
    write([1, 2, 7] if "*" in read else [5, 2, 7])
    ns, reused, _ = run_cells(root, cells, reuse=True)
    assert reused == [False, False] and ns["got"] != first["got"]


# Reading and writing files in native code, as HDF5, netCDF, DuckDB or XGBoost do: through the C library,
# where Python's audit hook sees no open.
NATIVE_IO = (NOTEBOOK[0] + "\nimport ctypes\nlibc = ctypes.CDLL(None)\n"
             "libc.fopen.restype = ctypes.c_void_p\nlibc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]\n"
             "libc.fread.argtypes = libc.fwrite.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t,"
             " ctypes.c_void_p]\nlibc.fclose.argtypes = [ctypes.c_void_p]\n"
             "def native_read(path):\n    f = libc.fopen(path.encode(), b'rb')\n"
             "    buf = ctypes.create_string_buffer(64)\n    n = libc.fread(buf, 1, 64, f)\n    libc.fclose(f)\n"
             "    return buf.raw[:n]\n"
             "def native_write(path, data):\n    f = libc.fopen(path.encode(), b'wb')\n"
             "    libc.fwrite(data, 1, len(data), f)\n    libc.fclose(f)\n")


def test_files_read_in_native_code_in_the_workspace_are_seen(root):
    (root / "data").mkdir()
    (root / "data" / "native.bin").write_bytes(b"first")
    cells = [NATIVE_IO, EXPENSIVE + "x = native_read('data/native.bin')"]
    run_cells(root, cells, reuse=True)
    ns, reused, _ = run_cells(root, cells, reuse=True)
    assert reused[1] is True and ns["x"] == b"first"  # watching the folder leaves a pure reader reusable
    (root / "data" / "native.bin").write_bytes(b"second")
    ns, reused, _ = run_cells(root, cells, reuse=True)
    assert reused[1] is False and ns["x"] == b"second"


_WRITES = {
    "C library": "native_write('{folder}/out.bin', b'made')",  # seen by the folder watch only
    "pandas parquet": "pd.DataFrame({{'a': [1, 2]}}).to_parquet('{folder}/out.bin')",  # C++, through pa.OSFile
    "polars csv": "import polars as pl\npl.DataFrame({{'a': [1, 2]}}).write_csv('{folder}/out.bin')",  # Rust
    "polars sink": "import polars as pl\npl.DataFrame({{'a': [1, 2]}}).lazy().sink_parquet('{folder}/out.bin')",
}


# outside the workspace there is no folder watch: only the wrapped libraries' writers are seen there
@pytest.mark.parametrize("how, inside", [(how, True) for how in _WRITES] + [(how, False) for how in _WRITES
                                                                            if how != "C library"])
def test_a_cell_writing_files_in_native_code_runs_again(root, tmp_path_factory, how, inside):
    """Reusing it would skip the write: the file it makes would be missing, or stale."""
    write = _WRITES[how]
    folder = root / "out" if inside else tmp_path_factory.mktemp("elsewhere")
    folder.mkdir(exist_ok=True)
    cells = [NATIVE_IO, EXPENSIVE + write.format(folder=folder) + "\nx = 1"]
    _, _, s = run_cells(root, cells, reuse=True)
    op = json.loads(s.workspace.history.read_file(s.workspace.history.resolve("HEAD"), "code/cells.json"))[0]["op"]
    assert any(e.startswith("writes") for e in op.get("effects", [])), op
    (folder / "out.bin").unlink()
    _, reused, _ = run_cells(root, cells, reuse=True)
    assert reused[1] is False and (folder / "out.bin").exists()


def test_notebook_saves_and_hidden_files_during_a_cell_do_not_count(root):
    """Jupyter saves the notebook (and its checkpoints) on its own schedule, maybe while a long cell runs."""
    (root / ".ipynb_checkpoints").mkdir()
    cells = [NATIVE_IO, EXPENSIVE + "native_write('analysis.ipynb', b'{}')\n"
                                    "native_write('.ipynb_checkpoints/analysis-checkpoint.ipynb', b'{}')\n"
                                    "native_write('.~analysis.ipynb', b'{}')\nx = 1"]
    run_cells(root, cells, reuse=True)
    _, reused, _ = run_cells(root, cells, reuse=True)
    assert reused[1] is True


def test_script_arguments_and_environment_are_inputs(tmp_path, run_txgit):
    """`txgit run --reuse train.py 0.5` after `... 0.1` must not reuse what the arguments decided."""
    run_txgit("init", cwd=tmp_path, check=True)
    (tmp_path / "job.py").write_text(
        SLOW_SCRIPT + "import argparse, os\n"
        "lr = slowly('lr', lambda: argparse.ArgumentParser().parse_known_args()[1][0])\n"
        "name = slowly('name', lambda: os.getenv('RUN_NAME', 'none'))\n"
        "base = slowly('base', lambda: 40 + 2)\n"
        "print(lr, name, base)\n")

    def run(*args: str, **env: str) -> tuple[str, str]:
        proc = run_txgit("run", "--reuse", "job.py", *args, cwd=tmp_path, check=True, env=env)
        return proc.stdout.strip(), proc.stderr

    assert run("0.1")[0] == "0.1 none 42"
    out, err = run("0.1")
    assert out == "0.1 none 42" and "computing" not in err
    out, err = run("0.5")
    assert out == "0.5 none 42" and "computing lr" in err and "computing name" not in err
    assert ": sys.argv changed" in err
    out, err = run("0.5", RUN_NAME="x")
    assert out == "0.5 x 42" and "computing name" in err and "computing lr" not in err and "computing base" not in err
    ops = json.loads(run_txgit("ops", "--json", cwd=tmp_path, check=True).stdout)["operations"]
    assert any("sys.argv" in o["process"] for o in ops) and any("$RUN_NAME" in o["process"] for o in ops)


def test_setting_the_environment_is_an_effect(root):
    cells = [NOTEBOOK[0] + "\nimport os", EXPENSIVE + "os.environ['TXGIT_TEST_FLAG'] = '1'\nx = 1"]
    try:
        run_cells(root, cells, reuse=True)
        del os.environ["TXGIT_TEST_FLAG"]
        _, reused, _ = run_cells(root, cells, reuse=True)
        assert reused[1] is False and os.environ.get("TXGIT_TEST_FLAG") == "1"  # ran: a later cell may read it
    finally:
        os.environ.pop("TXGIT_TEST_FLAG", None)


def test_statements_sharing_a_line_are_one_block(tmp_path, run_txgit):
    """Each statement used to be keyed by its whole line: the second reused the first's results."""
    run_txgit("init", cwd=tmp_path, check=True)
    (tmp_path / "job.py").write_text(SLOW_SCRIPT + "a = slowly('a', lambda: 1); b = slowly('b', lambda: 2)\n"
                                                   "print(a + b)\n")
    for _ in range(2):
        proc = run_txgit("run", "--reuse", "job.py", cwd=tmp_path, check=True)
        assert proc.stdout.strip() == "3", proc.stderr


def test_a_module_setting_its_environment_defaults_while_imported_is_no_effect(root):
    """scikit-learn sets KMP_DUPLICATE_LIB_OK when imported: a cell importing it and fitting stays reusable."""
    (root / "envdefaults.py").write_text("import os\nos.environ.setdefault('TXGIT_TEST_DEFAULT', 'on')\n")
    cells = [NOTEBOOK[0], EXPENSIVE + "import envdefaults\nx = 1"]
    sys.path.insert(0, str(root))
    try:
        run_cells(root, cells, reuse=True)
        sys.modules.pop("envdefaults", None)  # a fresh kernel: not imported, its default not set
        os.environ.pop("TXGIT_TEST_DEFAULT")
        _, reused, _ = run_cells(root, cells, reuse=True)
        assert reused[1] is True
    finally:
        os.environ.pop("TXGIT_TEST_DEFAULT", None)
        sys.modules.pop("envdefaults", None)
        sys.path.remove(str(root))


@pytest.mark.parametrize("setting, reset", [
    ("from sklearn import set_config\nset_config(transform_output='pandas')",
     "from sklearn import set_config\nset_config(transform_output='default')"),
    ("pd.set_option('display.max_columns', 2)", "pd.reset_option('display.max_columns')"),
])
def test_library_settings_are_inputs(root, setting, reset):
    """A cell run under other settings would compute (a frame, not an array) or print otherwise."""
    import sklearn.preprocessing  # noqa: F401  (its import sets environment defaults: before the first run)

    cells = [NOTEBOOK[0] + "\nfrom sklearn.preprocessing import StandardScaler",
             EXPENSIVE + "out = StandardScaler().fit_transform(pd.DataFrame({'a': [1.0, 2.0], 'b': [3.0, 5.0],"
                         " 'c': [0.0, 1.0]}))\nprint(pd.DataFrame(out))"]
    try:
        _, reused, _ = run_cells(root, cells, reuse=True)
        _, reused, _ = run_cells(root, cells, reuse=True)
        assert reused[1] is True
        exec(setting, {"pd": pd})
        ns, reused, _ = run_cells(root, cells, reuse=True)
        assert reused[1] is False
        again, reused, _ = run_cells(root, cells, reuse=True)
        assert reused[1] is True and type(again["out"]) is type(ns["out"])
    finally:
        exec(reset, {"pd": pd})


def test_a_class_imported_from_another_version_of_a_package_is_not_the_same_input(root):
    """`from pkg import fit` is code-only: after `pip install -U pkg` (or on a collaborator's machine
    with another version) what it computes may differ, so the cells using it run again."""
    site = Path.home() / ".cache" / f"txgit-test-site-{os.getpid()}"  # ignored like site-packages
    (site / "fakepkg").mkdir(parents=True, exist_ok=True)

    def install(version: str, step: int) -> None:
        (site / "fakepkg" / "__init__.py").write_text(f"__version__ = '{version}'\ndef fit(x):\n    return x + {step}\n")
        sys.modules.pop("fakepkg", None)

    cells = [NOTEBOOK[0] + "\nfrom fakepkg import fit", EXPENSIVE + "y = fit(1)"]
    sys.path.insert(0, str(site))
    try:
        install("1.0", 1)
        run_cells(root, cells, reuse=True)
        install("1.0", 1)
        ns, reused, _ = run_cells(root, cells, reuse=True)
        assert reused[1] is True and ns["y"] == 2
        install("2.0", 10)
        ns, reused, _ = run_cells(root, cells, reuse=True)
        assert reused[1] is False and ns["y"] == 11
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("fakepkg", None)
        shutil.rmtree(site, ignore_errors=True)


@pytest.mark.parametrize("imports, call", [
    ("import utils", "utils.clean(1)"),
    ("from utils import clean", "clean(1)"),
    ("import mypkg", "mypkg.sub.clean(1)"),  # a package: a change in any of its modules counts
    ("from mypkg.sub import clean", "clean(1)"),
])
def test_editing_the_users_own_module_reruns_the_cells_using_it(root, imports, call):
    """A module of the workspace has no version: its source is what its functions compute."""
    (root / "mypkg").mkdir()
    (root / "mypkg" / "__init__.py").write_text("from mypkg import sub\n")

    def edit(step: int) -> None:
        for path in (root / "utils.py", root / "mypkg" / "sub.py"):
            path.write_text(f"def clean(x):\n    return x + {step}\n")
        for name in ("utils", "mypkg", "mypkg.sub"):  # a fresh kernel
            sys.modules.pop(name, None)

    cells = [NOTEBOOK[0] + "\n" + imports, EXPENSIVE + f"y = {call}"]
    sys.path.insert(0, str(root))
    try:
        edit(1)
        run_cells(root, cells, reuse=True)
        edit(1)
        ns, reused, _ = run_cells(root, cells, reuse=True)
        assert reused[1] is True and ns["y"] == 2
        edit(100)
        ns, reused, _ = run_cells(root, cells, reuse=True)
        assert reused[1] is False and ns["y"] == 101
    finally:
        sys.path.remove(str(root))
        for name in ("utils", "mypkg", "mypkg.sub"):
            sys.modules.pop(name, None)


def test_a_reloaded_module_reruns_the_cells_using_it(root):
    """%autoreload (or importlib.reload) between cells: the same kernel, new code."""
    import importlib

    (root / "utils.py").write_text("def clean(x):\n    return x + 1\n")
    sys.path.insert(0, str(root))
    try:
        os.chdir(root)
        session = NamespaceSession(Workspace.open(root), session_namespace(), kind="ipython")
        reuser = Reuser(session)
        reused = []
        for step, code in [(None, "import time\nimport utils"), (None, EXPENSIVE + "y = utils.clean(1)"),
                           (100, EXPENSIVE + "y = utils.clean(1)")]:
            if step is not None:
                (root / "utils.py").write_text(f"def clean(x):\n    return x + {step}\n")
                importlib.reload(session.namespace["utils"])
            session.before_cell(code)
            got = reuser.prepare()
            if got is not None:
                reuser.apply(got)
            else:
                exec(code, session.namespace)
            session.after_cell()
            reused.append(got is not None)
        assert reused == [False, False, False] and session.namespace["y"] == 101
    finally:
        os.chdir(Path(__file__).parent)
        sys.path.remove(str(root))
        sys.modules.pop("utils", None)


# -- early cutoff: a cell that ran but made the values of a recorded run ---------------------------

CUTOFF_NOTEBOOK = [
    "import time\nimport numpy as np",
    EXPENSIVE + "base = list(range(200))\nsquares = [i * i for i in base]\nbig = np.arange(300_000) * 2",
    EXPENSIVE + "total = sum(squares)\nparts = {'total': total, 'n': len(squares)}",
    EXPENSIVE + "report = f\"{parts['total']} over {parts['n']} and {int(big.sum())}\"",
]


@pytest.mark.parametrize("background", [False, True])  # True: big's hash is known once its commit is written
def test_an_edit_that_leaves_a_cells_outputs_unchanged_lets_the_next_cells_be_reused(root, capsys, background):
    first, _, s1 = run_cells(root, CUTOFF_NOTEBOOK, reuse=True, background=background)
    end_first = s1.workspace.head().id
    edited = list(CUTOFF_NOTEBOOK)
    edited[1] = edited[1] + "\nprint('made', len(squares), 'squares')"
    ns, reused, s2 = run_cells(root, edited, reuse=True, background=background)
    assert reused == [False, False, True, True], reused
    assert "made 200 squares" in capsys.readouterr().out
    assert ns["report"] == first["report"] and ns["parts"] == first["parts"]
    diff = s2.workspace.diff(end_first, s2.workspace.head().id)
    assert not diff.changed and not diff.added and not diff.removed
    # and again with another cosmetic edit: the cutoff finds the origins the recorded cells read
    edited[1] = edited[1].replace("'made'", "'computed'")
    _, reused, _ = run_cells(root, edited, reuse=True, background=background)
    assert reused == [False, False, True, True], reused


def test_an_edit_that_changes_a_cells_outputs_reruns_the_next_cells(root):
    run_cells(root, CUTOFF_NOTEBOOK, reuse=True)
    edited = list(CUTOFF_NOTEBOOK)
    edited[1] = edited[1] + "\nprint('made them')"
    _, reused, _ = run_cells(root, edited, reuse=True)
    assert reused == [False, False, True, True], reused  # the cutoff works here...
    edited[1] = edited[1].replace("range(200)", "range(201)")
    ns, reused, _ = run_cells(root, edited, reuse=True)
    assert reused == [False, False, False, False], reused  # ...but not when a value changed
    assert ns["parts"]["n"] == 201 and " over 201 and " in ns["report"]


def test_no_cutoff_when_aliasing_differs(root):
    """``a`` and ``b`` were one list in the recorded run; after the edit they are equal but distinct
    lists: a cell that mutates ``a`` and reads ``b`` gives another result, so it must run."""
    cells = ["import time", "a = [1, 2]\nb = a",
             EXPENSIVE + "a.append(3)\nn = len(b)"]
    run_cells(root, cells, reuse=True)
    cosmetic = list(cells)
    cosmetic[1] = "a = [1, 2]\nb = a\nprint('aliased')"
    _, reused, _ = run_cells(root, cosmetic, reuse=True)
    assert reused == [False, False, True], reused  # same values, same aliasing: cut off
    distinct = list(cells)
    distinct[1] = "a = [1, 2]\nb = [1, 2]"
    ns, reused, _ = run_cells(root, distinct, reuse=True)
    assert reused == [False, False, False], reused
    full, _, _ = run_cells(root, distinct, reuse=False)
    assert ns["n"] == full["n"] == 2 and ns["a"] == full["a"] == [1, 2, 3] and ns["b"] == full["b"] == [1, 2]
    assert ns["a"] is not ns["b"]


def test_kernel_cosmetic_edit_of_an_early_cell_reuses_the_later_expensive_one(root):
    # squares (2.4 MB) is hashed by the background writer: the next cell waits for it only because
    # a recorded run of its code read squares as made by another (the recorded) cell 2
    cells = [NOTEBOOK[0], PROBE.format(n=2) + "squares = np.array([i * i for i in range(300_000)])",
             PROBE.format(n=3) + EXPENSIVE + "total = int(squares.sum())", "total"]
    ran, shown, _ = run_notebook(root, cells)
    assert ran == "2,3,"
    edited = list(cells)
    edited[1] = PROBE.format(n=2) + "squares = np.array([k * k for k in range(300_000)])\nprint('made')"  # renamed
    ran, shown_again, stderr = run_notebook(root, edited)
    assert ran == "2,", stderr  # the expensive cell was not executed
    assert "txgit: cell [4] made the same squares as the recorded run" in stderr  # [1], [2]: %load_ext, %txgit
    assert "txgit: reused results of" in stderr
    assert shown_again[3] == shown[3]  # total, as shown


def test_script_statement_edited_without_changing_its_value_lets_the_next_be_reused(tmp_path, run_txgit):
    run_txgit("init", cwd=tmp_path, check=True)
    script = tmp_path / "job.py"
    script.write_text(SLOW_SCRIPT + "base = slowly('base', lambda: list(range(100)))\n"
                      "total = slowly('total', lambda: sum(base))\nprint('total', total)\n")
    first = run_txgit("run", "--reuse", "job.py", cwd=tmp_path, check=True)
    assert "computing total" in first.stderr
    script.write_text(script.read_text().replace("range(100)", "range(0, 100)"))
    second = run_txgit("run", "--reuse", "job.py", cwd=tmp_path, check=True)
    assert "computing base" in second.stderr and "computing total" not in second.stderr, second.stderr
    assert "txgit: job.py:9 made the same base as the recorded run" in second.stderr
    assert second.stdout == first.stdout
