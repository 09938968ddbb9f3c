"""Trust: a state fetched from a remote not marked trusted is never unpickled without --trust;
--safe loads only allow-listed plain data types; a hostile pickle runs nothing (issue 7, item 5)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cliutil import assert_one_line_error
from conftest import session_namespace
from servers import git_daemon, init_bare
from txgit import Workspace
from txgit.state.safe import UnsafeObject
from txgit.trust import UntrustedState


class Hostile:
    """What a stranger commits: unpickling it runs a shell command (here: creates ``marker``)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _stranger(tmp_path: Path) -> tuple[Path, str]:
    """A stranger's workspace pushed to a bare repository: one commit with a hostile value beside plain data."""
    marker = tmp_path / "PWNED"
    ws = Workspace.init(tmp_path / "stranger")
    ns = session_namespace()
    ns.update(arr=np.arange(100_000, dtype="int64"), df=pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}),
              meta={"k": [1, 2.5, None, (3, "s")]})
    ws.commit(ns, "plain data")
    ns["evil"] = Hostile(marker)
    ws.commit(ns, "with a hostile value")
    assert not marker.exists()  # pickling it ran nothing
    ws.remotes.add("origin", str(tmp_path / "r.git"))
    ws.push()
    return marker, ws.head().id


def test_untrusted_remote_state_is_never_unpickled(tmp_path):
    marker, evil_commit = _stranger(tmp_path)
    me = Workspace.init(tmp_path / "me")
    me.remotes.add("stranger", str(tmp_path / "r.git"))  # not --trusted
    me.fetch("stranger")
    ns = session_namespace("mine = 1\n")
    with pytest.raises(UntrustedState, match="came from remote 'stranger', which is not trusted"):
        me.checkout("stranger/main", ns, force=True)
    with pytest.raises(UntrustedState):
        me.load("evil", "stranger/main")
    with pytest.raises(UntrustedState):
        me.load("arr", "stranger/main~1")  # every fetched commit, not only the tip
    assert ns["mine"] == 1 and "evil" not in ns and me.head() is None  # nothing moved

    # safe mode: plain data loads, the hostile value is refused by name before anything is called
    assert me.load("arr", "stranger/main", safe=True).sum() == np.arange(100_000).sum()
    assert me.load("df", "stranger/main", safe=True).equals(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))
    with pytest.raises(UnsafeObject, match=r"safe mode refused (posix|os)\.system"):
        me.load("evil", "stranger/main", safe=True)
    with pytest.raises(UnsafeObject, match="system"):
        me.checkout("stranger/main", ns, force=True, safe=True)
    assert not marker.exists() and ns["mine"] == 1
    safe_ns = session_namespace()
    me.checkout("stranger/main~1", safe_ns, safe=True)  # the plain-data commit checks out whole
    assert safe_ns["meta"] == {"k": [1, 2.5, None, (3, "s")]}
    assert not marker.exists()

    # the test can fail: trusting the stranger does run the payload
    me.load("evil", "stranger/main", trust=True)
    assert marker.exists()
    assert evil_commit == me.resolve("stranger/main").id


def test_trusting_a_remote_and_own_commits(tmp_path):
    marker, _ = _stranger(tmp_path)
    me = Workspace.init(tmp_path / "me")
    me.remotes.add("stranger", str(tmp_path / "r.git"))
    me.fetch("stranger")
    with pytest.raises(UntrustedState):
        me.load("arr", "stranger/main~1")
    me.remotes.set_trusted("stranger")
    assert me.remotes.get("stranger").trusted
    assert me.load("arr", "stranger/main~1").shape == (100_000,)
    me.remotes.set_trusted("stranger", False)
    with pytest.raises(UntrustedState):
        me.load("arr", "stranger/main~1")  # untrusting again: its commits are theirs once more
    # a remote added --trusted: its states load at once
    other = Workspace.init(tmp_path / "other")
    other.remotes.add("friend", str(tmp_path / "r.git"), trusted=True)
    other.fetch("friend")
    assert other.load("meta", "friend/main")["k"][0] == 1

    # our own commits, pushed to and fetched back from a remote we do not trust, stay ours
    mine = Workspace.init(tmp_path / "mine")
    ns = session_namespace("x = [1, 2, 3]\n")
    mine.commit(ns, "mine")
    mine.remotes.add("shared", str(tmp_path / "shared.git"))
    mine.push("shared")
    mine.fetch("shared")
    assert mine.load("x", "shared/main") == [1, 2, 3]
    assert not marker.exists()


def test_safe_mode_refuses_code_and_unimported_modules(tmp_path):
    ws = Workspace.init(tmp_path / "w")
    ns = session_namespace("import json\nimport colorsys\ndef f(x):\n    return x + 1\nclass C:\n    pass\nc = C()\n")
    ws.commit(ns, "code")
    with pytest.raises(UnsafeObject, match="safe mode refused"):
        ws.load("f", safe=True)
    with pytest.raises(UnsafeObject, match="safe mode refused"):
        ws.load("c", safe=True)
    assert ws.load("json", safe=True).dumps([1]) == "[1]"  # already imported: binding it runs nothing
    import sys

    saved = sys.modules.pop("colorsys", None)
    try:
        with pytest.raises(UnsafeObject, match="import module 'colorsys'"):
            ws.load("colorsys", safe=True)
    finally:
        if saved is not None:
            sys.modules["colorsys"] = saved


def test_cli_trust_flow_over_git_daemon(tmp_path, run_txgit):
    marker, _ = _stranger(tmp_path)
    base = tmp_path / "served"
    base.mkdir()
    init_bare(base / "proj.git")
    src = Workspace.open(tmp_path / "stranger")
    with git_daemon(base) as url:
        src.remotes.add("pub", f"{url}/proj.git", storage=str(tmp_path / "r.git" / "txgit-objects"))
        src.push("pub")
        out = run_txgit("clone", f"{url}/proj.git", "copy", cwd=tmp_path, check=True).stdout
    assert "origin is not trusted" in out  # a network URL: not trusted by default
    copy = tmp_path / "copy"

    assert_one_line_error(run_txgit("show", "HEAD", "evil", cwd=copy), "not trusted", "txgit remote trust origin")
    assert_one_line_error(run_txgit("show", "HEAD", "evil", "--safe", cwd=copy), "safe mode refused", "system")
    shown = run_txgit("show", "HEAD", "df", "--safe", cwd=copy, check=True).stdout
    assert "DataFrame" in shown or "a" in shown
    assert not marker.exists()
    assert "(trusted)" not in run_txgit("remote", cwd=copy, check=True).stdout
    run_txgit("remote", "trust", "origin", cwd=copy, check=True)
    assert "(trusted)" in run_txgit("remote", cwd=copy, check=True).stdout
    run_txgit("show", "HEAD", "arr", cwd=copy, check=True)  # trusted now: loads without flags
    assert_one_line_error(run_txgit("remote", "trust", "nope", cwd=copy), "no remote named 'nope'")
    # a local path typed by the user: trusted
    run_txgit("clone", str(tmp_path / "r.git"), "local", cwd=tmp_path, check=True)
    assert Workspace.open(tmp_path / "local").remotes.get("origin").trusted
    run_txgit("remote", "add", "mate", str(tmp_path / "r.git"), "--trusted", cwd=copy, check=True)
    assert Workspace.open(copy).remotes.get("mate").trusted
    assert not marker.exists()


def test_safe_mode_loads_arrow_strings_and_refuses_arrow_buffers_that_do_not_fit():
    """pandas keeps strings in Arrow arrays when pyarrow is installed; safe mode loads them, and
    checks the buffers: offsets past the end of the data would otherwise read foreign memory."""
    import pickle

    import pyarrow as pa

    from txgit.state import safe

    frame = pd.DataFrame({"city": pd.array(["ber", "par", None] * 100, dtype="string[pyarrow]")})
    assert safe.loads(pickle.dumps(frame, protocol=5)).equals(frame)

    class Forged:  # what a hostile state could hold: 3 strings whose offsets claim 4 KB of 6 bytes
        def __reduce__(self):
            offsets = pa.py_buffer(np.array([0, 1, 3, 4096], dtype=np.int64).tobytes())
            return pa.lib._restore_array, ((pa.large_string(), 3, 0, 0, [None, offsets, pa.py_buffer(b"abbccc")],
                                            [], None),)

    forged = pickle.dumps(Forged(), protocol=5)
    with pytest.raises(UnsafeObject, match="do not hold together"):
        safe.loads(forged)
