"""Cells with IPython magics in a real kernel: what a commit serializes after them, and that what
the magic's code changes is still committed (issue 17: a late `%matplotlib inline` or a `%timeit`
made every variable be serialized again)."""

from __future__ import annotations

import pytest
from kernelutil import Kernel

from txgit import Workspace

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def run():
    """(workspace, kernel, {cell label: the state after it}) for a short session of magic cells."""
    import tempfile
    from pathlib import Path

    ws = Workspace.init(Path(tempfile.mkdtemp(prefix="txgit-magics-")) / "ws")
    k = Kernel(ws.root)
    states = {}
    try:
        k.ok("%load_ext txgit")
        k.ok("big = list(range(100_000))\nsmall = [1]\nlog = []")
        k.ok("%config HistoryManager.enabled = True\nz = 1")
        states["config"] = ws.state()
        states["config commit"] = ws.history.resolve("HEAD")
        k.ok("%time y = len(big)")
        states["time"] = ws.state()
        k.ok("%timeit -n1 -r1 small.append(2)")
        states["timeit"] = ws.state()
        k.ok("!echo hi")
        states["shell"] = ws.state()
        states["shell commit"] = ws.history.resolve("HEAD")
        k.ok("files = !ls")
        states["getoutput"] = ws.state()
        k.ok("!echo {log.append(3)} $z")  # IPython evaluates {expr} and $name in the namespace
        states["expanded"] = ws.state()
        k.ok("!false")
        states["failed command"] = ws.state()
        yield ws, k, states
    finally:
        k.shutdown()


def test_a_setting_magic_serializes_only_what_the_cell_names(run):
    ws, k, states = run
    assert states["config"].meta["serialized"] == ["z"]
    # recorded as a cell with an effect: reuse never skips it (a skipped %matplotlib sets nothing up)
    import json

    cells = json.loads(ws.history.read_file(states["config commit"], "code/cells.json"))
    assert any("%config" in e for e in cells[-1]["op"]["effects"])


def test_time_runs_its_statement_in_the_namespace_and_it_is_committed(run):
    ws, k, states = run
    serialized = set(states["time"].meta["serialized"])
    assert "y" in serialized and not serialized & {"small", "z"}
    assert k.value("y") == 100_000 and ws.load("y") == 100_000


def test_what_timeit_mutates_is_committed(run):
    ws, k, states = run
    assert "small" in states["timeit"].meta["serialized"]
    assert k.value("small") == [1, 2] and ws.load("small") == [1, 2]


def test_a_shell_escape_serializes_no_variable(run):
    ws, k, states = run
    # `_exit_code` is IPython's: bound by the first shell escape, rebound when the status changes
    assert set(states["shell"].meta["serialized"]) <= {"_exit_code"}
    import json

    cells = json.loads(ws.history.read_file(states["shell commit"], "code/cells.json"))
    assert any("shell" in e for e in cells[-1]["op"]["effects"])  # never skipped by reuse


def test_a_captured_shell_escape_commits_only_its_target(run):
    ws, k, states = run
    assert set(states["getoutput"].meta["serialized"]) <= {"files", "_exit_code"}
    assert "files" in states["getoutput"].meta["serialized"]
    assert list(ws.load("files")) == list(k.value("list(files)"))


def test_what_a_shell_escape_expands_is_seen(run):
    ws, k, states = run
    assert "log" in states["expanded"].meta["serialized"]
    assert not set(states["expanded"].meta["serialized"]) & {"big", "small", "files", "z", "y"}
    assert ws.load("log") == [3]


def test_a_failing_shell_command_commits_its_exit_code(run):
    ws, k, states = run
    assert set(states["failed command"].meta["serialized"]) == {"_exit_code"}
    assert ws.load("_exit_code") == 1
