"""A failing `%txgit` magic fails its cell: "Run All" stops there (nbclient, a real kernel), and the
error shows as one line, not a traceback of txgit's internals."""

from __future__ import annotations

import itertools
import re

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


def test_magic_log_refuses_a_revision_with_all_as_the_terminal_does(tmp_path):
    """`%txgit log main --all` showed every branch and dropped REV without a word, while `txgit log
    main --all` refuses it: the magic refuses it the same way, in one line, and changes nothing."""
    k = Kernel(tmp_path)
    try:
        k.ok("%load_ext txgit")
        k.ok("x = 1")
        for magic in ("%txgit log main --all", "%txgit log --all HEAD"):
            r = k.run(magic)
            assert r.status == "error" and len(r.traceback) == 1, (magic, r.traceback)
            assert r.traceback[0].startswith("txgit: error: give either REV or --all, not both"), r.traceback
        k.ok("%txgit log --all")  # --all alone still shows every branch
        assert k.value("x") == 1 and len(Workspace.open(tmp_path).log()) == 1
    finally:
        k.shutdown()


def test_the_magic_help_names_every_option_each_verb_of_it_takes():
    """`%txgit help` listed `log [-n N]` while `%txgit log` also took REV and --all (and --graph,
    --oneline): each option a verb the magic parses itself (_opt, _flag) must be on that verb's
    lines of the help, read from the code so that a new option cannot be left out."""
    import ast
    import inspect

    from txgit import magics

    def verb_of(node: ast.AST, parents: dict) -> str | None:
        while node in parents:
            node = parents[node]
            if isinstance(node, (ast.If, ast.IfExp)) and isinstance(node.test, ast.Compare) and \
                    isinstance(node.test.left, ast.Name) and node.test.left.id == "verb" and \
                    isinstance(node.test.comparators[0], ast.Constant):
                return node.test.comparators[0].value
            if isinstance(node, ast.FunctionDef) and node.name.startswith("_") and node.name[1:] in magics.USAGE:
                return node.name[1:]  # _serve: the verb serve
        return None

    tree = ast.parse(inspect.getsource(magics))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    lines = magics.USAGE.splitlines()
    taken: dict[str, list[tuple[str, ...]]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("_opt", "_flag"):
            flags = tuple(a.value for a in node.args[1:] if isinstance(a, ast.Constant))
            verb = verb_of(node, parents)
            assert verb is not None, f"line {node.lineno}: {node.func.id}{flags} belongs to no verb"
            taken.setdefault(verb, []).append(flags)
    assert set(taken) >= {"commit", "checkout", "log", "serve"}, taken
    for verb, options in taken.items():
        start = next(i for i, line in enumerate(lines) if line.startswith(f"  {verb} "))
        # the verb's line and the lines below it that continue it (indented past the verbs)
        help_lines = " ".join([lines[start]] + list(itertools.takewhile(lambda x: x.startswith(" " * 8),
                                                                         lines[start + 1:])))
        for flags in options:
            assert any(re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", help_lines) for f in flags), \
                f"%txgit help says nothing of {' / '.join(flags)} for {verb}: {help_lines!r}"
