"""Failed cells rolled back to what they changed and nothing more, in real kernels (issue 17)."""

from __future__ import annotations

import pytest
from kernelutil import Kernel, silent_eval

from txgit import Workspace

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("background", ["1", "0"])
def test_a_failed_cell_reloads_only_what_it_changed(tmp_path, background):
    """In a fresh kernel that checked a commit out, a failed cell that only read ``tags`` (a set of
    strings: restored, it pickles to other bytes than it was committed with) must leave it alone, and
    put back ``lst``, in either commit mode."""
    ws = Workspace.init(tmp_path / "ws")
    k = Kernel(ws.root)
    k.ok("%load_ext txgit")
    k.ok("tags = {'alpha', 'beta', 'gamma', 'delta'}\nlst = [1]")
    k.shutdown()
    k = Kernel(ws.root, env={"TXGIT_BACKGROUND_COMMITS": background})
    try:
        k.ok("%load_ext txgit")
        k.ok("%txgit checkout HEAD")
        k.ok("x = 1")  # a commit of this kernel's own (in the background by default)
        before = silent_eval(k, "[id(tags), id(lst)]")
        out = k.run("n = len(tags)\nlst.append(2)\nraise ValueError('boom')")
        assert out.status == "error"
        assert "restored lst;" in out.stderr and "tags" not in out.stderr, out.stderr
        after = silent_eval(k, "[id(tags), id(lst)]")
        assert after[0] == before[0] and after[1] != before[1]
        assert silent_eval(k, "(lst, 'n' in dir())") == ([1], False)
    finally:
        k.shutdown()
