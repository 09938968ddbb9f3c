"""Round trips: commit a namespace, check it out into an empty one, compare.

Values are made by session code (exec'd as `__main__`), as in a notebook.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from conftest import session_namespace

from txgit import Workspace


def roundtrip(ws: Workspace, code: str) -> tuple[dict, dict]:
    ns = session_namespace(code)
    ws.commit(ns, "state")
    fresh = session_namespace()
    ws.checkout("HEAD", fresh)
    return ns, fresh


def test_plain_values_and_containers(ws):
    ns, out = roundtrip(ws, textwrap.dedent("""
        i = 42; big = 2**100; f = 1.5; c = 1 + 2j; s = "héllo"; b = b"\\x00bytes"; n = None; t = True
        lst = [1, "two", 3.0, [4]]; tup = (1, (2, 3)); st = {1, 2, 3}; fs = frozenset("ab")
        dct = {"a": 1, (1, 2): [3], 3: {"nested": True}}
        ba = bytearray(b"mutable")
        import collections, datetime, decimal, fractions
        od = collections.OrderedDict(a=1); dd = collections.defaultdict(list, x=[1]); dq = collections.deque([1, 2])
        when = datetime.datetime(2024, 1, 2, 3, 4, 5); dec = decimal.Decimal("1.10"); fr = fractions.Fraction(1, 3)
    """))
    names = [n for n in ns if not n.startswith("__") and n not in ("collections", "datetime", "decimal", "fractions")]
    for name in names:
        assert out[name] == ns[name], name
        assert type(out[name]) is type(ns[name]), name
    assert out["dd"].default_factory is list


def test_numpy_arrays_views_orders_and_dtypes(ws):
    ns, out = roundtrip(ws, textwrap.dedent("""
        import numpy as np
        rng = np.random.default_rng(0)
        a = rng.random((300, 400))
        view = a[10:200:3, ::7]
        fortran = np.asfortranarray(rng.random((50, 60)))
        transposed = a.T
        zero_d = np.array(3.5)
        ints = np.arange(100_000, dtype=np.int32)
        objs = np.array([{"k": 1}, [1, 2], "s"], dtype=object)
        rec = np.zeros(5, dtype=[("x", "f8"), ("name", "U10")])
        boolean = rng.random(1000) > 0.5
        empty = np.empty((0, 3))
        scalar = np.float32(1.25)
    """))
    for name in ["a", "view", "fortran", "transposed", "zero_d", "ints", "rec", "boolean", "empty"]:
        np.testing.assert_array_equal(out[name], ns[name], err_msg=name)
        assert out[name].dtype == ns[name].dtype and out[name].shape == ns[name].shape
    assert list(out["objs"]) == list(ns["objs"])
    assert out["scalar"] == ns["scalar"] and type(out["scalar"]) is np.float32
    assert out["fortran"].flags.f_contiguous
    out["a"][0, 0] = -1.0  # restored arrays are writable, like the originals
    assert out["np"] is np


def test_pandas_frames_series_and_indexes(ws):
    ns, out = roundtrip(ws, textwrap.dedent("""
        import numpy as np, pandas as pd
        n = 5000
        df = pd.DataFrame({
            "i": np.arange(n), "f": np.linspace(0, 1, n), "s": [f"row{i}" for i in range(n)],
            "cat": pd.Categorical(["a", "b", "c", "a", "b"] * (n // 5)),
            "when": pd.date_range("2024-01-01", periods=n, freq="h"),
            "nullable": pd.array([1, None, 3, 4, 5] * (n // 5), dtype="Int64"),
            "flag": np.arange(n) % 2 == 0,
        }, index=pd.Index([f"id{i}" for i in range(n)], name="key"))
        series = pd.Series(np.arange(10.0), index=list("abcdefghij"), name="val")
        multi = df.set_index(["cat", "i"]).head(50)
        grouped = df.groupby("cat", observed=True)["f"].mean()
    """))
    for name in ["df", "multi"]:
        pd.testing.assert_frame_equal(out[name], ns[name])
    for name in ["series", "grouped"]:
        pd.testing.assert_series_equal(out[name], ns[name])


def test_fitted_sklearn_model_predicts_the_same(ws):
    ns, out = roundtrip(ws, textwrap.dedent("""
        import numpy as np
        from sklearn.datasets import make_classification
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.linear_model import LogisticRegression
        X, y = make_classification(n_samples=500, n_features=8, random_state=0)
        forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
        pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    """))
    for name in ["forest", "pipe"]:
        np.testing.assert_array_equal(out[name].predict(ns["X"]), ns[name].predict(ns["X"]))
        np.testing.assert_allclose(out[name].predict_proba(ns["X"]), ns[name].predict_proba(ns["X"]))


def test_session_functions_lambdas_closures_and_classes(ws):
    ns, out = roundtrip(ws, textwrap.dedent("""
        scale = 3
        def helper(z): return z + 1
        def f(x, *, k=2): return helper(x) * scale * k
        square = lambda v: v * v
        def make_counter():
            count = 0
            def inc():
                nonlocal count
                count += 1
                return count
            return inc
        counter = make_counter(); counter(); counter()
        class Point:
            dims = 2
            def __init__(self, x, y): self.x, self.y = x, y
            def norm2(self): return square(self.x) + square(self.y)
            def __eq__(self, other): return (self.x, self.y) == (other.x, other.y)
        class Point3(Point):
            dims = 3
        p = Point(3, 4)
        q = Point3(1, 2)
    """))
    assert out["f"](1) == ns["f"](1) == 12
    assert out["f"].__globals__ is out  # rebound to the namespace it was restored into
    out["scale"] = 10
    assert out["f"](1) == 40  # sees the namespace's current values, like the original
    assert out["square"](7) == 49
    assert out["counter"]() == 3  # closure state travelled
    assert isinstance(out["p"], out["Point"]) and isinstance(out["q"], out["Point"])
    assert type(out["q"]) is out["Point3"] and out["p"].norm2() == 25
    assert out["p"] == ns["p"]


def test_aliasing_and_cycles_survive(ws):
    ns, out = roundtrip(ws, textwrap.dedent("""
        import numpy as np
        a = [1, 2, 3]
        b = a
        d = {"x": a, "y": [a]}
        arr = np.arange(10)
        arrs = {"same": arr}
        class Box: pass
        box = Box(); box.items = a
        cyc = []; cyc.append(cyc)
        m = {}; m["self"] = m
        def f(): pass
        g = f
        unrelated = [1, 2, 3]
    """))
    assert out["b"] is out["a"]
    assert out["d"]["x"] is out["a"] and out["d"]["y"][0] is out["a"]
    assert out["box"].items is out["a"]
    assert out["arrs"]["same"] is out["arr"]
    assert out["cyc"][0] is out["cyc"] and out["m"]["self"] is out["m"]
    assert out["g"] is out["f"]
    out["a"].append(4)
    assert out["d"]["x"] == [1, 2, 3, 4]
    assert out["unrelated"] is not out["a"]


def test_unrelated_values_are_separate_groups(ws):
    ns = session_namespace("import numpy as np, pandas as pd\n"
                           "x = np.zeros(10)\ny = np.zeros(10)\n"
                           "df1 = pd.DataFrame({'s': ['a']})\ndf2 = pd.DataFrame({'t': ['b']})\n")
    ws.commit(ns, "s")
    groups = {n: r.group for n, r in ws.state().variables.items() if r.group}
    assert len(set(groups.values())) == 4  # library singletons (dtypes, arrow types) glue nothing


def test_unpicklable_values_are_reported_not_fatal(ws, tmp_path):
    code = textwrap.dedent(f"""
        import threading, socket
        lock = threading.Lock()
        gen = (i for i in range(3))
        fh = open({str(tmp_path / 'f.txt')!r}, "w")
        sock = socket.socket()
        holder = {{"lock": lock}}
        fine = [1, 2]
    """)
    ns = session_namespace(code)
    try:
        result = ws.commit(ns, "with unpicklables")
        assert set(result.skipped) == {"lock", "gen", "fh", "sock", "holder"}
        assert "lock" in result.skipped["lock"]
        fresh = session_namespace()
        co = ws.checkout("HEAD", fresh)
        assert fresh["fine"] == [1, 2]
        assert set(co.not_restored) == {"lock", "gen", "fh", "sock", "holder"}
        assert "gen" not in fresh
        assert ws.state().variables["gen"].kind == "unpicklable"
    finally:
        ns["fh"].close()
        ns["sock"].close()


def test_modules_are_recorded_as_imports(ws):
    ns = session_namespace("import os.path\nimport numpy as np\nimport json as j\n")
    ws.commit(ns, "mods")
    records = ws.state().variables
    assert records["np"].kind == "module" and records["np"].module == "numpy"
    assert records["j"].module == "json" and records["os"].module == "os"
    fresh = session_namespace()
    ws.checkout("HEAD", fresh)
    assert fresh["np"] is np and fresh["j"].__name__ == "json"


def test_restore_in_a_fresh_process(ws, tmp_path):
    """What a restarted kernel sees: classes and functions rebuilt from bytes, not from memory."""
    session_code = textwrap.dedent("""
        import numpy as np, pandas as pd
        class Model:
            def __init__(self): self.w = np.arange(3.0)
            def predict(self, x): return float(self.w @ x) + bias
        bias = 0.5
        m = Model()
        models = [m, m]
        df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    """)
    (tmp_path / "session.py").write_text(session_code)
    commit = textwrap.dedent(f"""
        from txgit import Workspace
        ns = {{"__name__": "__main__"}}
        exec(open({str(tmp_path / "session.py")!r}).read(), ns)
        Workspace.open({str(ws.root)!r}).commit(ns, "from process A")
    """)
    check = textwrap.dedent(f"""
        from txgit import Workspace
        ns = {{"__name__": "__main__"}}
        Workspace.open({str(ws.root)!r}).checkout("HEAD", ns)
        m = ns["m"]
        assert isinstance(m, ns["Model"]), type(m)
        assert m.predict([1.0, 1.0, 1.0]) == 3.5
        ns["bias"] = 1.5
        assert m.predict([1.0, 1.0, 1.0]) == 4.5
        assert ns["models"][0] is m and ns["models"][1] is m
        assert ns["df"]["b"].tolist() == ["x", "y"]
        print("ok")
    """)
    for script in (commit, check):
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


@pytest.mark.parametrize("value_code", ["x = pd.DataFrame({'a': range(3)})", "x = np.arange(5)", "x = {'k': [1]}"])
def test_load_one_variable_without_checkout(ws, value_code):
    ns = session_namespace("import numpy as np, pandas as pd\n" + value_code)
    ws.commit(ns, "one")
    ns["x"] = "changed"
    ws.commit(ns, "two")
    old = ws.load("x", "HEAD~1")
    if isinstance(old, pd.DataFrame):
        pd.testing.assert_frame_equal(old, session_namespace("import pandas as pd\n" + value_code)["x"])
    elif isinstance(old, np.ndarray):
        np.testing.assert_array_equal(old, np.arange(5))
    else:
        assert old == {"k": [1]}
    assert ws.load("x") == "changed"


def test_loaded_function_finds_its_commit_globals(ws):
    ns = session_namespace("rate = 2\ndef price(q): return q * rate\n")
    ws.commit(ns, "rate 2")
    ns["rate"] = 5
    ws.commit(ns, "rate 5")
    assert ws.load("price", "HEAD~1")(10) == 20
    assert ws.load("price")(10) == 50


def test_a_class_pickles_the_same_before_and_after_its_instances(ws):
    """copyreg caches __slotnames__ on a class when an instance is pickled; that is no change."""
    from txgit.state import snapshot

    ns = session_namespace("class Scaler:\n    def __init__(self, k): self.k = k\n")
    before = snapshot(ns).variables["Scaler"].group
    exec("sc = Scaler(3)", ns)
    snapshot(ns)  # pickles the instance
    assert snapshot(ns).variables["Scaler"].group == before
