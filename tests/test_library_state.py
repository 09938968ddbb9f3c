"""Library settings that live in module state (matplotlib's rcParams): committed with the session's
values and put back by a checkout in a fresh kernel, so that restored figures draw as they did and new
ones take the same style (issue 17). In real kernels."""

from __future__ import annotations

import json

import pytest
from kernelutil import Kernel

from txgit import Workspace

pytestmark = pytest.mark.timeout(300)

SETTINGS = ("[str(plt.rcParams[k]) for k in ('axes.facecolor', 'axes.grid', 'lines.linewidth', 'font.size',"
            " 'axes.prop_cycle', 'lines.solid_capstyle', 'axes3d.xaxis.panecolor')]")
# the figure's pixels drawn with Agg (a figure restored in a fresh kernel has no pyplot canvas)
DRAWN = ("(lambda c: (c.draw(), __import__('hashlib').md5(bytes(c.buffer_rgba())).hexdigest())[1])("
         "__import__('matplotlib.backends.backend_agg', fromlist=['FigureCanvasAgg']).FigureCanvasAgg(fig))")


@pytest.fixture(scope="module")
def proj(tmp_path_factory) -> Workspace:
    pytest.importorskip("matplotlib", reason="matplotlib is a test dependency (pip install '.[test]')")
    return Workspace.init(tmp_path_factory.mktemp("libstate") / "ws")


@pytest.fixture(scope="module")
def session(proj):
    """Cells that set a style, draw, then change only a setting; what the kernel held after each."""
    k = Kernel(proj.root)
    seen: dict[str, tuple[str, list[str], str | None]] = {}
    try:
        k.ok("%load_ext txgit")
        # a style whose settings are read again when a figure is drawn (grid, fonts), not only when made
        k.ok("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
             "plt.style.use('seaborn-v0_8-whitegrid')\n"
             "fig, ax = plt.subplots()\nax.plot([1, 2, 3])\nax.set_title('styled')")
        seen["styled"] = (proj.head().id, k.value(SETTINGS), k.value(DRAWN))
        k.ok("plt.rcParams['lines.linewidth'] = 4.5")  # no variable changes: only a setting
        seen["linewidth"] = (proj.head().id, k.value(SETTINGS), None)
        k.run("plt.style.use('dark_background')\nraise ValueError('boom')")
        seen["after failed cell"] = ("", k.value(SETTINGS), None)
    finally:
        k.shutdown()
    return seen


def fresh(proj: Workspace) -> Kernel:
    k = Kernel(proj.root)
    k.ok("%load_ext txgit")
    return k


def test_a_checkout_in_a_fresh_kernel_restores_the_style_and_the_figure_draws_the_same(proj, session):
    commit, settings, drawn = session["styled"]
    k = fresh(proj)
    try:
        r = k.ok(f"%txgit checkout {commit}")
        assert "error" not in r.stderr, r.stderr
        assert k.value(SETTINGS) == settings
        assert k.value(DRAWN) == drawn
    finally:
        k.shutdown()


def test_a_cell_that_only_changes_a_setting_is_committed_and_checkouts_move_between_settings(proj, session):
    styled, styled_settings, _ = session["styled"]
    commit, settings, _ = session["linewidth"]
    assert commit != styled
    assert settings != styled_settings
    assert json.loads(proj.state(commit).meta["libraries"]["matplotlib.rcParams"])["lines.linewidth"] == 4.5
    k = fresh(proj)
    try:
        k.ok(f"%txgit checkout {commit}")
        assert k.value(SETTINGS) == settings
        k.ok(f"%txgit checkout {styled}")  # a setting the older commit does not have goes back to the default
        assert k.value(SETTINGS) == styled_settings
    finally:
        k.shutdown()


def test_a_failed_cell_puts_the_settings_back(session):
    assert session["after failed cell"][1] == session["linewidth"][1]


# A library holding singletons that only it can make: pickled by value, CC does not load elsewhere
# (as sympy's CC did: its reduce leaves out what __init__ needs).
SINGLETONS = '''
class Domain:
    def __init__(self, precision):
        self.precision = precision

    def __reduce__(self):
        return (Domain, ())

CC = Domain(53)
'''


def test_a_library_s_own_objects_imported_by_name_are_restored_as_those_objects(tmp_path, monkeypatch):
    ws = Workspace.init(tmp_path / "ws")
    (ws.root / "domains.py").write_text(SINGLETONS)
    monkeypatch.syspath_prepend(str(ws.root))
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit")
        k.ok("from domains import *\nfrom matplotlib import rcParams\nfrom numpy.random import beta\nmine = Domain(8)")
    finally:
        k.shutdown()
    k = fresh(ws)
    try:
        r = k.ok(f"%txgit checkout {ws.head().id}")
        said = r.stdout + r.stderr
        assert "CC" in said and "not restored: CC" not in said, said
        assert k.value("CC is __import__('domains').CC and CC.precision == 53")
        assert k.value("rcParams is __import__('matplotlib').rcParams")
        # numpy's function bound to its global generator, not a copy of the generator
        assert k.value("beta is __import__('numpy').random.beta")
        # a copy the session made itself is a value: this one cannot be rebuilt, and says so
        assert "not restored: mine: domains.Domain could not be loaded here" in said, said
    finally:
        k.shutdown()


def test_sympy_singletons_from_a_star_import_are_restored(tmp_path):
    pytest.importorskip("sympy")
    ws = Workspace.init(tmp_path / "ws")
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit")
        k.ok("from sympy import *\nx = Symbol('x')\nexpr = pi * x + I")
    finally:
        k.shutdown()
    k = fresh(ws)
    try:
        r = k.ok(f"%txgit checkout {ws.head().id}")
        assert "not restored" not in r.stdout + r.stderr, r.stdout + r.stderr
        k.ok("import sympy as _sympy")
        assert k.value("(CC is _sympy.CC, RR is _sympy.RR, test is _sympy.test, str(expr))") == (
            True, True, True, "pi*x + I")
    finally:
        k.shutdown()


# -- the global random generators' positions ---------------------------------------------------------

# the next draws of both global generators, and of a function bound to numpy's (pylab's `beta`)
NEXT_DRAWS = "(float(np.random.rand()), random.random(), float(beta(2.0, 3.0)))"
POSITIONS = ("(__import__('hashlib').md5(np.random.get_state()[1].tobytes()).hexdigest(),"
             " np.random.get_state()[2], hash(random.getstate()))")


def test_a_checkout_puts_the_global_generators_where_they_were_when_the_commit_was_made(tmp_path):
    pytest.importorskip("numpy")
    ws = Workspace.init(tmp_path / "ws")
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit")
        k.ok("import random\nimport numpy as np\nfrom numpy.random import beta\n"
             "np.random.seed(1)\nrandom.seed(2)\nx = np.random.rand(3)")
        seeded = ws.head().id
        after_seeded = k.value(NEXT_DRAWS)  # a cell that only draws: no commit of its own
        assert ws.head().id == seeded
        k.ok("y = np.random.rand(5) + random.random()")
        drawn = ws.head().id
        assert drawn != seeded
        after_drawn = k.value(NEXT_DRAWS)
    finally:
        k.shutdown()
    k = fresh(ws)
    try:
        r = k.ok(f"%txgit checkout {drawn}")
        assert "not restored" not in r.stdout + r.stderr, r.stdout + r.stderr
        k.ok("import random\nimport numpy as np")
        assert k.value(NEXT_DRAWS) == after_drawn
        k.ok(f"%txgit checkout {seeded}")  # in the same kernel, back to the older position
        assert k.value(NEXT_DRAWS) == after_seeded
    finally:
        k.shutdown()


def test_a_failed_cell_puts_the_global_generators_back_where_they_were_before_it(tmp_path):
    pytest.importorskip("numpy")
    ws = Workspace.init(tmp_path / "ws")
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit")
        k.ok("import random\nimport numpy as np\nnp.random.seed(3)\nx = 1")
        k.ok("print(np.random.rand(), random.random())")  # draws after the commit stand: not rewound
        before = k.value(POSITIONS)
        r = k.run("y = np.random.rand(4)\nrandom.shuffle([1, 2, 3])\nraise ValueError('boom')")
        assert r.status != "ok"
        assert "numpy.random generator" in r.stderr, r.stderr
        assert k.value(POSITIONS) == before
    finally:
        k.shutdown()



def test_a_failed_cell_that_only_draws_numpys_cached_normal_is_put_back(tmp_path):
    """numpy's generator is read in place while it does not move; drawing its cached normal leaves its
    words as they are, and the rollback must still see that it moved and give the normal back."""
    pytest.importorskip("numpy")
    ws = Workspace.init(tmp_path / "ws")
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit")
        k.ok("import numpy as np\nnp.random.seed(3)\nx = 1")
        k.ok("print(np.random.standard_normal())")  # one normal drawn, its pair cached
        k.ok("y = 2")
        cached = "(np.random.get_state()[3], np.random.get_state()[4])"
        before = k.value(cached)
        assert before[0] == 1
        r = k.run("z = np.random.standard_normal()\nraise ValueError('boom')")
        assert r.status != "ok"
        assert "numpy.random generator" in r.stderr, r.stderr
        assert k.value(cached) == before
    finally:
        k.shutdown()

# A library's registry (as matplotlib's `colormaps`) holding functools.partial objects: a partial makes
# its `__dict__` when first asked for it, so a walk over it leaves a mark in the library's objects.
REGISTRY = '''
import functools

class Registry:
    def __init__(self):
        self.entries = {"square": functools.partial(pow, exp=2)}

REGISTRY = Registry()
'''


def test_a_checkout_leaves_a_library_s_own_objects_untouched(tmp_path, monkeypatch):
    ws = Workspace.init(tmp_path / "ws")
    (ws.root / "registry.py").write_text(REGISTRY)
    monkeypatch.syspath_prepend(str(ws.root))
    untouched = "REGISTRY.entries['square'].__reduce__()[2][3] is None"  # no __dict__ made
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit")
        k.ok("from registry import REGISTRY\nn = 3")
        assert k.value(untouched)
    finally:
        k.shutdown()
    k = fresh(ws)
    try:
        k.ok(f"%txgit checkout {ws.head().id}")
        assert k.value("REGISTRY is __import__('registry').REGISTRY")
        # bound again by name: not walked as a value of the session's (the commit did not walk it either)
        assert k.value(untouched)
    finally:
        k.shutdown()


def test_commits_whose_generators_did_not_move_share_their_recorded_positions(tmp_path):
    pytest.importorskip("numpy")
    ws = Workspace.init(tmp_path / "ws")
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit")
        k.ok("import numpy as np\nx = np.random.rand(3)")
        drawn = ws.head().id
        k.ok("y = 2")  # draws nothing
        still = ws.head().id
        k.ok("z = np.random.rand()")
        moved = ws.head().id
    finally:
        k.shutdown()
    repo = ws.history.repo

    def blob(commit: str) -> str:
        return str(repo[commit].tree["libraries/numpy.random.json"].id)

    assert len({drawn, still, moved}) == 3
    assert blob(drawn) == blob(still) != blob(moved)
    # not in meta.json, which is new with every commit (timings)
    assert len(repo[repo[still].tree["meta.json"].id].data) < 2000


def _recorded_rc(ws: Workspace, commit: str | None = None) -> dict:
    """The matplotlib settings a commit (HEAD) recorded: key -> value as JSON."""
    return json.loads(ws.state(commit or "HEAD").meta.get("libraries", {}).get("matplotlib.rcParams", "{}"))


def test_a_session_that_never_checked_out_keeps_the_branchs_matplotlib_settings(tmp_path):
    """Alice committed with `plt.style.use('ggplot')`; a new session on main (rcParams at the defaults, as
    in a fresh kernel) ran `y = 2`: its commit recorded its own default settings over hers, so a pull of
    it reset her style. A session that never loaded the branch's settings carries them, and records only
    the settings its own cells changed over them."""
    mpl = pytest.importorskip("matplotlib")
    from conftest import session_namespace

    from txgit.sessions import NamespaceSession

    def run(session: NamespaceSession, code: str) -> None:
        session.before_cell(code)
        exec(code, session.namespace)
        session.after_cell()

    mpl.use("Agg")
    ws = Workspace.init(tmp_path / "ws")
    try:
        alice = NamespaceSession(ws, session_namespace(), kind="test")
        run(alice, "import matplotlib.pyplot as plt\nplt.style.use('ggplot')\nx = 1")
        styled = _recorded_rc(ws)
        assert "axes.facecolor" in styled
        mpl.rcdefaults()  # a fresh process's settings
        fresh = NamespaceSession(ws, session_namespace(), kind="test")
        run(fresh, "import matplotlib.pyplot as plt\ny = 2")
        assert ws.load("y") == 2
        assert _recorded_rc(ws) == styled
        # a cell that changes a setting records it, over the branch's others it did not change
        run(fresh, "plt.rcParams['lines.linewidth'] = 4.5")
        assert _recorded_rc(ws) == {**styled, "lines.linewidth": 4.5}
        run(fresh, "z = 3")
        assert _recorded_rc(ws) == {**styled, "lines.linewidth": 4.5}
    finally:
        mpl.rcdefaults()


def test_a_failed_cell_in_a_fresh_kernel_puts_back_its_own_settings_not_the_branchs(tmp_path):
    """A kernel that never checked out keeps the branch's style in its commits but draws with its own
    settings; a failed cell of its must put back the settings it had before, not set the branch's."""
    pytest.importorskip("matplotlib")
    ws = Workspace.init(tmp_path / "ws")
    k = fresh(ws)
    try:
        k.ok("import matplotlib.pyplot as plt\nplt.style.use('ggplot')\nx = 1")
    finally:
        k.shutdown()
    k = fresh(ws)
    try:
        k.ok("import matplotlib.pyplot as plt\ny = 1")
        before = k.value(SETTINGS)
        r = k.run("plt.rcParams['lines.linewidth'] = 2.5\nraise ValueError('boom')")
        assert r.status != "ok"
        assert k.value(SETTINGS) == before
        assert "axes.facecolor" in _recorded_rc(ws)  # the branch's style is still its commits'
    finally:
        k.shutdown()
