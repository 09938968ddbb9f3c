"""Environment drift: commits record Python and package versions; a checkout under other versions
warns, one line per difference; a module missing here fails with an error naming it (issue 7, item 6)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import session_namespace
from txgit import Workspace
from txgit.environment import EnvironmentDrift
from txgit.errors import RestoreError


def test_commit_records_python_and_the_packages_of_its_values(ws):
    ns = session_namespace("import json\n")
    ns.update(arr=np.arange(3), df=pd.DataFrame({"a": [1]}), plain=[1, 2])
    ws.commit(ns, "one")
    meta = ws.state().meta
    assert meta["python"] == platform.python_version()
    assert meta["packages"] == {"numpy": np.__version__, "pandas": pd.__version__}  # not json: stdlib
    ns2 = session_namespace()
    result = ws.checkout("HEAD", ns2)
    assert result.drift == []  # same environment: nothing to say


def test_checkout_under_other_versions_warns_one_line_per_difference(ws, tmp_path, run_txgit):
    ns = session_namespace()
    ns["arr"] = np.arange(5)
    # A commit as another machine would have recorded it.
    ws.commit(ns, "recorded elsewhere", meta={"python": "3.9.1", "packages": {
        "numpy": "1.21.0", "pandas": pd.__version__, "txgit_no_such_pkg": "0.3"}})
    got = session_namespace()
    result = ws.checkout("HEAD", got)
    assert result.drift == [
        f"Python: recorded 3.9.1, here {platform.python_version()}",
        f"numpy: recorded 1.21.0, here {np.__version__}",
        "txgit_no_such_pkg: recorded 0.3, not installed here",
    ]
    assert list(got["arr"]) == [0, 1, 2, 3, 4]  # a warning, not a refusal
    with pytest.warns(EnvironmentDrift) as caught:
        ws.load("arr")
    assert [str(w.message).split(": ", 1)[1] for w in caught] == result.drift
    proc = run_txgit("show", "HEAD", "arr", cwd=ws.root, check=True)
    lines = [ln for ln in proc.stderr.splitlines() if "recorded under other versions" in ln]
    assert len(lines) == 3 and "numpy: recorded 1.21.0" in proc.stderr


def test_a_missing_module_is_named(tmp_path, run_txgit):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "txgit_gone_mod.py").write_text(textwrap.dedent("""
        class Model:
            def __init__(self, w):
                self.w = w
    """))
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(lib)!r})
        import txgit_gone_mod
        from txgit import Workspace
        ws = Workspace.init({str(tmp_path / 'w')!r})
        ns = {{"__name__": "__main__", "model": txgit_gone_mod.Model(3), "mod": txgit_gone_mod, "x": 1}}
        ws.commit(ns, "uses a module of its own")
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(os.getcwd()), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", script], check=True, env=env)
    ws = Workspace.open(tmp_path / "w")  # this process cannot import txgit_gone_mod
    with pytest.raises(RestoreError, match="module 'txgit_gone_mod' is not installed here"):
        ws.load("model")
    with pytest.raises(RestoreError, match="module 'txgit_gone_mod' is not installed here"):
        ws.load("mod")
    ns = session_namespace("y = 2\n")
    r = ws.checkout("HEAD", ns, force=True)  # what this process can load, it does; the rest is listed
    assert ns["x"] == 1 and "y" not in ns and "model" not in ns and "mod" not in ns
    assert r.not_restored == {
        "model": "txgit_gone_mod.Model could not be loaded here (module 'txgit_gone_mod' is not installed here)",
        "mod": "module could not be loaded here (module 'txgit_gone_mod' is not installed here)"}
    assert ws.load("x") == 1
    proc = run_txgit("show", "HEAD", "model", cwd=tmp_path / "w")
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1 and "txgit_gone_mod" in proc.stderr


def test_version_lookup_is_cached_per_process():
    from txgit import environment

    environment.module_version.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert environment.package_versions(["numpy", "json", "os", "txgit"]) == {"numpy": np.__version__}
    hits = environment.module_version.cache_info().hits
    environment.package_versions(["numpy"])
    assert environment.module_version.cache_info().hits == hits + 1
