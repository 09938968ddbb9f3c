"""A failing `%txgit` magic fails its cell: "Run All" stops there (nbclient, a real kernel), and the
error shows as one line, not a traceback of txgit's internals."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from kernelutil import Kernel
from txgit import Workspace

pytestmark = pytest.mark.timeout(300)


def _run_all(folder, cells: list[str]) -> tuple[nbformat.NotebookNode, CellExecutionError | None]:
    """Execute a notebook top to bottom in a real kernel started in ``folder``, as "Run All" does."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(folder)}})
    try:
        client.execute()
    except CellExecutionError as e:
        return nb, e
    return nb, None


@pytest.mark.parametrize("magic, message", [
    ("%txgit checkout nosuchrev", "txgit: error: unknown revision 'nosuchrev'"),  # a live verb
    ("%txgit push", "txgit: error: no remote configured"),  # a verb run by the CLI inside the kernel
    ("%txgit tag --no-such-flag", "txgit: error: No such option: --no-such-flag"),  # the CLI's usage error
])
def test_failing_magic_stops_run_all(tmp_path, magic, message):
    nb, error = _run_all(tmp_path, [
        "%load_ext txgit",
        "x = 1",
        magic,
        "open('later.txt', 'w').write('ran')\nlater = True",
    ])
    assert error is not None, "the notebook ran to the end"
    assert not (tmp_path / "later.txt").exists()  # the cell after the failing magic never ran
    assert nb.cells[3].get("execution_count") is None and not nb.cells[3].outputs
    failed = nb.cells[2].outputs
    errors = [o for o in failed if o.output_type == "error"]
    assert len(errors) == 1 and errors[0].ename == "MagicError"
    assert len(errors[0].traceback) == 1 and errors[0].traceback[0].startswith(message), errors[0].traceback
    shown = "".join(errors[0].traceback) + "".join(o.get("text", "") for o in failed)
    assert "Traceback" not in shown and "txgit/" not in shown and ".py" not in shown, shown
    assert not [o for o in failed if o.output_type == "stream" and o.name == "stderr"]  # said once, as the error
    assert Workspace.open(tmp_path).load("x") == 1


def test_failed_magic_rolls_nothing_back(tmp_path):
    """A cell that mixes code and a %txgit verb that fails: a failed cell is rolled back to the last
    commit, and a cell with a magic may have touched anything, so every variable would go back, work
    not yet committed (auto-commit off) included. A failed verb changed nothing: all of it stays, and
    rollback is on again for the next cell. (A cell of %txgit lines only is no part of the history.)"""
    k = Kernel(tmp_path)
    try:
        k.ok("%load_ext txgit\n%txgit auto off")
        k.ok("kept = 1")
        k.ok("%txgit commit -m base")
        k.ok("new = 'not committed yet'")
        r = k.run("kept = 2\n%txgit checkout nosuchrev")
        assert r.status == "error" and r.traceback[0].startswith("txgit: error: unknown revision")
        assert "rolled back" not in r.stderr, r.stderr
        assert k.value("(kept, new)") == (2, "not committed yet")
        # an ordinary failing cell is still rolled back (rollback is on again): what it touched goes
        # back to the last commit, the rest stays
        r = k.run("kept = 3\nraise ValueError('boom')")
        assert r.status == "error" and "rolled back" in r.stderr
        assert k.value("(kept, new)") == (1, "not committed yet")
    finally:
        k.shutdown()


def test_unknown_options_of_live_verbs_are_refused(tmp_path):
    """`%txgit log --bogus` took the option for a revision (`unknown revision '--bogus'`) and `%txgit
    status --bogus` ignored it: a wrong option of a verb the magic parses itself is refused as the CLI
    refuses one, in one line, and changes nothing."""
    k = Kernel(tmp_path)
    try:
        k.ok("%load_ext txgit")
        k.ok("x = 1")
        for magic in ("%txgit log --bogus", "%txgit log -n 2 --grpah", "%txgit show --bogus",
                      "%txgit show HEAD --bogus", "%txgit diff --bogus", "%txgit diff HEAD --bogus",
                      "%txgit status --bogus"):
            r = k.run(magic)
            assert r.status == "error" and len(r.traceback) == 1, (magic, r.traceback)
            assert r.traceback[0].startswith("txgit: error: No such option: " + magic.split()[-1]), r.traceback
        assert k.value("x") == 1 and len(Workspace.open(tmp_path).log()) == 1
    finally:
        k.shutdown()
