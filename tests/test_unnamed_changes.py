"""Values changed without a cell naming them (a library's own state), and failed cells rolled back
to what they changed and nothing more: in real kernels, checked in fresh ones (issue 17)."""

from __future__ import annotations

import pytest
from kernelutil import Kernel, silent_eval

from txgit import Workspace

pytestmark = pytest.mark.timeout(300)

# A library of the user's own on the kernel's path, holding its objects in module state.
REGISTRY = '''
class Registry:
    def __init__(self):
        self.items = []

REG = Registry()

def register(x):
    REG.items.append(x)
'''


@pytest.fixture(scope="module")
def proj(tmp_path_factory) -> Workspace:
    ws = Workspace.init(tmp_path_factory.mktemp("unnamed") / "ws")
    (ws.root / "registry.py").write_text(REGISTRY)
    return ws


@pytest.fixture(scope="module")
def work(proj):
    """The kernel the cells run in (background commits, as by default)."""
    k = Kernel(proj.root)
    k.ok("%load_ext txgit")
    yield k
    k.shutdown()


def fresh(proj: Workspace, rev: str) -> Kernel:
    """A new kernel holding commit ``rev`` (detached: the working kernel holds the branch)."""
    k = Kernel(proj.root)
    k.ok("%load_ext txgit")
    r = k.ok(f"%txgit checkout {rev}")
    assert "error" not in r.stderr, r.stderr
    return k


@pytest.fixture(scope="module")
def cells(proj, work):
    """Run the cells; name -> the commit each made."""
    pytest.importorskip("matplotlib", reason="matplotlib is a test dependency (pip install '.[test]')")
    out = {}
    work.ok("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nfig, ax = plt.subplots()")
    work.ok("plt.plot([1, 2, 3])")  # draws into the current axes: `ax`, which the cell never names
    out["plot"] = proj.head().id
    work.ok("import registry\nr = registry.REG\nspare = registry.Registry()\nbig = list(range(50_000))")
    work.ok("registry.register(5)")  # appends to r.items, which the cell never names
    out["register"] = proj.head().id
    work.ok("registry.register(6)")
    out["register again"] = proj.head().id
    return out


def test_pyplot_drawing_into_an_unnamed_axes_is_committed(proj, work, cells):
    state = proj.state(cells["plot"])
    assert {"ax", "fig"} <= set(state.meta["serialized"])
    k = fresh(proj, cells["plot"])
    try:
        assert k.value("len(ax.lines)") == 1
        assert k.value("[float(v) for v in ax.lines[0].get_ydata()]") == [1.0, 2.0, 3.0]
        assert k.value("ax.figure is fig")
    finally:
        k.shutdown()


def test_a_registry_changed_through_its_module_is_committed(proj, cells, monkeypatch):
    monkeypatch.syspath_prepend(str(proj.root))  # where the kernels import it from
    assert proj.load("r", cells["register"]).items == [5]
    assert proj.load("r", cells["register again"]).items == [5, 6]
    k = fresh(proj, cells["register again"])
    try:
        assert k.value("r.items") == [5, 6]
    finally:
        k.shutdown()


def test_unnamed_values_that_did_not_change_are_not_serialized_again(proj, cells):
    """The cost side: ``spare`` (same package as the registry, unchanged), ``big`` (no library's) and the
    figure (another package than the one the cell used) are left as they were."""
    for commit in (cells["register"], cells["register again"]):
        serialized = set(proj.state(commit).meta["serialized"])
        assert "r" in serialized
        assert not serialized & {"spare", "big", "fig", "ax"}, serialized


@pytest.mark.parametrize("background", ["1", "0"])
def test_a_failed_cell_reloads_only_what_it_changed(tmp_path, background):
    """In a fresh kernel that checked a commit out, a failed cell that only read ``tags`` (a set of
    strings: restored, it pickles to other bytes than it was committed with) must leave it alone, and
    put back ``lst`` (named) and ``r`` (changed through its module), in either commit mode."""
    ws = Workspace.init(tmp_path / "ws")
    (ws.root / "registry.py").write_text(REGISTRY)
    k = Kernel(ws.root)
    k.ok("%load_ext txgit")
    k.ok("import registry\nr = registry.REG\ntags = {'alpha', 'beta', 'gamma', 'delta'}\nlst = [1]")
    k.shutdown()
    k = Kernel(ws.root, env={"TXGIT_BACKGROUND_COMMITS": background})
    try:
        k.ok("%load_ext txgit")
        k.ok("%txgit checkout HEAD")
        # a commit of this kernel's own (in the background by default); restored, `r` was a copy
        k.ok("r = registry.REG\nregistry.register(1)")
        before = silent_eval(k, "[id(tags), id(lst)]")
        out = k.run("n = len(tags)\nlst.append(2)\nregistry.register(7)\nraise ValueError('boom')")
        assert out.status == "error"
        assert "restored lst, r" in out.stderr and "tags" not in out.stderr, out.stderr
        after = silent_eval(k, "[id(tags), id(lst)]")
        assert after[0] == before[0] and after[1] != before[1]
        assert silent_eval(k, "(lst, r.items, 'n' in dir())") == ([1], [1], False)
    finally:
        k.shutdown()


def test_arrays_and_frames_are_not_fingerprinted_by_every_cell_that_calls_numpy(ws):
    """numpy and pandas keep no user data in their own state: a cell calling ``np.`` does not make every
    array it did not name a candidate (each would be hashed after every such cell); a figure still is."""
    pytest.importorskip("matplotlib", reason="matplotlib is a test dependency (pip install '.[test]')")
    from test_sessions import run

    from txgit.sessions.session import NamespaceSession

    s = NamespaceSession(ws, {"__name__": "__main__"}, kind="test")
    run(s, "import numpy as np\nimport pandas as pd\na = np.zeros(1000)\nrows = [np.ones(3), np.ones(4)]\n"
           "df = pd.DataFrame({'x': [1, 2]})\ns = df.x")
    for code in ("b = np.arange(3)", "c = pd.Series([1])", "d = np.ones(2).sum()"):
        run(s, code)
    assert s.unnamed.fingerprinted == 0
    run(s, "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nfig, ax = plt.subplots()")
    run(s, "plt.plot(a[:3])")
    assert s.unnamed.fingerprinted > 0 and "ax" in s.last_commit.serialized_names
    # an array of axes is no passive data: its elements are matplotlib's
    run(s, "axs = plt.subplots(1, 2)[1]")  # no variable holds the figure
    run(s, "plt.plot([1, 2])")  # into the current axes, axs[1]
    assert "axs" in s.last_commit.serialized_names and len(ws.load("axs")[1].lines) == 1


# A library that binds a session variable to an object of its own (as a callback would), then changes it.
ADOPTER = '''
import sys

class Box:
    def __init__(self):
        self.items = []

HELD = None

def adopt(name):
    global HELD
    HELD = Box()
    setattr(sys.modules["__main__"], name, HELD)

def put(x):
    HELD.items.append(x)
'''


def test_an_array_a_library_rebinds_to_its_own_object_is_still_committed(tmp_path):
    """An array of no objects is not looked at again by the cells that leave its name alone (issue 17:
    Lecture-2's hooks): once the name holds another object, a library's, what the library does to it
    through its own state is committed again, as are arrays holding objects."""
    ws = Workspace.init(tmp_path / "ws")
    (ws.root / "adopter.py").write_text(ADOPTER)
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit")
        k.ok("import numpy as np\nimport adopter\narr = np.zeros(3)\nn = np.int64(2)\n"
             "boxes = np.array([adopter.Box()], dtype=object)")
        k.ok("adopter.put  # uses the library: its candidates are looked at (arr is no candidate)")
        k.ok("adopter.adopt('arr')")  # rebinds arr (no cell names it), to the library's box
        k.ok("adopter.put(5)")  # appends to arr.items, which the cell never names
        k.ok("adopter.HELD = boxes[0]")
        k.ok("adopter.put(6)")  # into an array of objects, never named either
        head = ws.head().id
    finally:
        k.shutdown()
    k = fresh(ws, head)
    try:
        assert k.value("arr.items") == [5]
        assert k.value("boxes[0].items") == [6]
        assert k.value("int(n)") == 2
    finally:
        k.shutdown()
