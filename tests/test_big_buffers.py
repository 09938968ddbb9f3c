"""A background commit copies a large new buffer so that the next cell may change it while the copy is
hashed and written. A buffer whose copy does not fit in memory (a 10 GB frame on a 16 GB laptop) is not
copied: it is cut, hashed and stored before the cell returns. Either way the commit holds the value as
the cell left it, and the session keeps committing."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import session_namespace
from kernelutil import Kernel

from txgit import Workspace
from txgit.sessions import NamespaceSession

pytestmark = pytest.mark.timeout(300)

snap_mod = __import__("sys").modules["txgit.state.snapshot"]


def _run(session: NamespaceSession, code: str):
    session.before_cell(code)
    exec(code, session.namespace)
    return session.after_cell()


@pytest.fixture
def copies(monkeypatch):
    """The sizes of the private copies background commits make."""
    made: list[int] = []
    real = snap_mod._copies.copy

    def copy(data):
        made.append(len(data))
        return real(data)

    monkeypatch.setattr(snap_mod._copies, "copy", copy)
    return made


def test_a_buffer_too_large_to_copy_is_stored_before_the_cell_returns(ws, monkeypatch, copies):
    # as if the machine had 64 MB available: a 16 MB buffer is more than an eighth of it
    monkeypatch.setattr(snap_mod, "COPY_ALWAYS", 1 << 20)
    monkeypatch.setattr(snap_mod, "available_memory", lambda: 64 << 20)
    s = NamespaceSession(ws, session_namespace(), kind="test")
    s.background = True
    s.start_writer()
    _run(s, "import numpy as np\nbig = np.arange(2_000_000, dtype=np.float64)")  # 16 MB
    assert max(copies, default=0) < 1 << 20  # the big buffer was not copied
    # the next cell overwrites it at once, while the writer may still be writing the first commit
    _run(s, "big[:] = -1.0")
    s.flush()
    s.close()
    log = ws.log()
    assert log[0].message.startswith("cell: big[:] = -1.0") and log[1].message.startswith("cell: import numpy")
    fresh = Workspace.open(ws.root)
    ns: dict = {"__name__": "__main__"}
    fresh.checkout(log[1].id, ns, force=True, move_head=False)
    assert np.array_equal(ns["big"], np.arange(2_000_000, dtype=np.float64))
    ns2: dict = {"__name__": "__main__"}
    fresh.checkout(log[0].id, ns2, force=True, move_head=False)
    assert (ns2["big"] == -1.0).all()
    assert fresh.fsck().problems == []


def test_a_buffer_that_fits_is_copied_as_before(ws, copies):
    s = NamespaceSession(ws, session_namespace(), kind="test")
    s.background = True
    s.start_writer()
    _run(s, "import numpy as np\nbig = np.arange(2_000_000, dtype=np.float64)")
    assert max(copies) == 16_000_000
    s.flush()
    s.close()


def test_a_kernel_whose_memory_cannot_hold_a_copy_still_commits_its_large_array(tmp_path):
    """A real kernel limited to its size now plus 700 MB makes a 400 MB array: a copy would need 800 MB.
    Before, every cell after it failed its commit with MemoryError and the array was never saved."""
    Workspace.init(tmp_path)
    k = Kernel(tmp_path)
    try:
        k.ok("%load_ext txgit")
        k.ok("import numpy as np\nwarm = np.ones(4_000_000)")  # the commit's threads started (their stacks count)
        k.ok("import resource\n"
             "_vm = int(next(l for l in open('/proc/self/status') if l.startswith('VmSize')).split()[1]) * 1024\n"
             "resource.setrlimit(resource.RLIMIT_AS, (_vm + (700 << 20), resource.RLIM_INFINITY))")
        r = k.run("big = np.full(50_000_000, 7.0)")  # 400 MB
        assert r.status == "ok", r.error
        assert "MemoryError" not in r.stderr, r.stderr
        r = k.run("total = float(big.sum())")
        assert r.status == "ok" and "MemoryError" not in r.stderr, r.stderr
        k.ok("%txgit status")
    finally:
        k.shutdown()
    ws = Workspace.open(tmp_path)
    state = ws.state("HEAD")
    assert {"big", "total"} <= set(state.variables)
    ns: dict = {"__name__": "__main__"}
    ws.checkout("HEAD", ns, force=True, move_head=False)
    assert ns["total"] == 7.0 * 50_000_000 and ns["big"].shape == (50_000_000,) and (ns["big"] == 7.0).all()
