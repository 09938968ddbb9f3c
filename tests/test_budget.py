"""gc --budget: the least valuable historical states go first; what refs name, and kept states, stay exact."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from cliutil import assert_one_line_error
from conftest import session_namespace
from txgit import Workspace
from txgit.budget import DroppedState, parse_size, set_budget, store_bytes
from txgit.errors import TxgitError

# name, array length (int64: 8 bytes each), seconds of its cell; value = seconds x (1 + reuses) / bytes
SPECS = [
    ("c0", 100_000, 1.0),    # 1.25e-6, but branch exp builds on it: its bytes stay for exp's tip
    ("c1", 200_000, 100.0),  # 6.25e-5
    ("c2", 100_000, 0.5),    # 6.25e-7, the least valuable: tag v1 protects it
    ("c3", 100_000, 60.0),   # 7.5e-5, the most valuable
    ("c4", 100_000, 2.0),    # 5e-6: reused once by c6 (2 x 2 / 800 kB)
    ("c5", 100_000, 2.0),    # 2.5e-6: same size and seconds as c4, never reused
]


def value_of(i: int, n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64) * (i + 1) + i


def age(ws: Workspace, seconds: float = 7200) -> None:
    """Make every stored blob look old, so the grace period does not protect it."""
    old = time.time() - seconds
    for name in ws.store.names():
        os.utime(ws.store.path(name), (old, old))


def cells(seconds: float) -> dict[str, bytes]:
    return {"code/cells.json": json.dumps([{"code": "x = ...", "seconds": seconds}]).encode()}


def build(ws: Workspace) -> dict[str, str]:
    """The history of SPECS on main, c6 (reusing c4) at its tip, tag v1 on c2, branch exp (e1) from c0."""
    ids: dict[str, str] = {}
    ns = session_namespace()
    for i, (name, n, seconds) in enumerate(SPECS):
        ns["x"], ns["step"] = value_of(i, n), i
        ids[name] = ws.commit(ns, name, files=cells(seconds)).info.id
    ns["x"], ns["step"] = value_of(6, 50_000), 6
    ids["c6"] = ws.commit(ns, "c6", meta={"reuse": {"from": ids["c4"], "saved": 2.0}}).info.id
    ws.create_tag("v1", ids["c2"])
    ws.checkout(ids["c0"], ns, new_branch="exp")
    ns["y"] = value_of(7, 30_000)
    ids["e1"] = ws.commit(ns, "e1", files=cells(0.1)).info.id
    ws.checkout("main", ns, force=True)
    age(ws)
    return ids


def expected(ids: dict[str, str]) -> dict[str, dict]:
    out = {name: {"x": value_of(i, n), "step": i} for i, (name, n, _) in enumerate(SPECS)}
    out["c6"] = {"x": value_of(6, 50_000), "step": 6}
    out["e1"] = {"x": value_of(0, 100_000), "step": 0, "y": value_of(7, 30_000)}
    return out


def assert_exact(ws: Workspace, cid: str, want: dict) -> None:
    ns = session_namespace()
    ws.checkout(cid, ns, force=True)
    got = {k: v for k, v in ns.items() if not k.startswith("__")}
    assert set(got) == set(want)
    for k, v in want.items():
        assert np.array_equal(got[k], v) if isinstance(v, np.ndarray) else got[k] == v, (cid, k)


def artifact_bytes(report, name_by_id) -> dict[str, int]:
    return {name_by_id[a.commit]: a.bytes for a in report.kept + report.dropped}


def test_budget_drops_least_valuable_first_and_keeps_what_refs_name(ws, run_txgit):
    ids = build(ws)
    name_by_id = {v: k for k, v in ids.items()}
    probe = ws.gc(budget=10**12, grace_seconds=0, dry_run=True).budget  # everything fits: learn the sizes
    assert not probe.dropped and set(map(name_by_id.get, probe.protected)) == {"c2", "c6", "e1"}  # tag, HEAD, exp
    art = artifact_bytes(probe, name_by_id)
    assert art["c1"] > 2 * 790_000 and art["c4"] == art["c5"] and art["c0"] > 790_000
    # room for c3, c1 and one more 800 kB state: c4 (reused by c6) wins over c5 (equal size and seconds)
    budget = probe.protected_bytes + art["c3"] + art["c1"] + art["c4"] + 300_000
    report = ws.gc(budget=budget, grace_seconds=0).budget
    assert [name_by_id[a.commit] for a in report.dropped] == ["c5"]
    assert {name_by_id[a.commit] for a in report.kept} == {"c0", "c1", "c3", "c4"}  # c0: exp's tip needs its bytes
    assert report.met and store_bytes(ws) == report.store_after <= budget
    # tighter: only c3 fits besides the protected states; c4 and c1 go, least valuable first
    tight = probe.protected_bytes + art["c3"] + 300_000
    report = ws.gc(budget=f"{tight}B", grace_seconds=0).budget
    assert [name_by_id[a.commit] for a in report.dropped] == ["c4", "c1"]
    assert store_bytes(ws) <= tight
    dropped = {"c1", "c4", "c5"}
    assert ws.dropped() == sorted(ids[n] for n in dropped)
    want = expected(ids)
    for name, cid in ids.items():
        assert ws.materialized(cid) == (name not in dropped), name
        if name not in dropped:  # every kept and protected state still checks out exactly
            assert_exact(ws, cid, want[name])
    ws.checkout("main", session_namespace(), force=True)
    # a dropped state: one clear line, from the API and from the CLI; HEAD does not move
    with pytest.raises(DroppedState, match=f"commit {ids['c4'][:8]} was dropped by `gc --budget`"):
        ws.load("x", ids["c4"])
    with pytest.raises(DroppedState, match="re-run its code"):
        ws.checkout(ids["c1"], session_namespace(), force=True)
    root = ws.root
    assert_one_line_error(run_txgit("show", ids["c5"], "x", cwd=root), ids["c5"][:8], "dropped by `gc --budget`",
                          "re-run its code")
    assert_one_line_error(run_txgit("checkout", ids["c1"], cwd=root), ids["c1"][:8], "dropped by `gc --budget`")
    assert ws.head().id == ids["c6"] and ws.branch == "main"
    # fsck: clean, and says what was dropped
    report = ws.fsck()
    assert report.ok and report.dropped == sorted(ids[n] for n in dropped)
    fsck = run_txgit("fsck", cwd=root)
    assert fsck.returncode == 0 and "3 states dropped by gc --budget" in fsck.stdout, fsck.stdout + fsck.stderr
    assert ": ok" in fsck.stdout
    # budget 0: every historical state goes; the tag, HEAD and the branch tips stay whole
    ws.gc(budget=0, grace_seconds=0)
    for name in ("c2", "c6", "e1"):
        assert_exact(ws, ids[name], want[name])
    assert ws.materialized(ids["e1"]) and not ws.materialized(ids["c3"])
    assert ws.materialized(ids["c0"]) and ws.materialized(ids["c0"], ["x"])  # exp's tip holds all of c0's bytes


def test_cli_budget_dry_run_deletes_nothing(ws, run_txgit):
    ids = build(ws)
    before = sorted(ws.store.names())
    proc = run_txgit("gc", "--budget", "1MB", "--grace", "0", "--dry-run", cwd=ws.root)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("would drop")]
    # every historical state but c0 (exp's tip holds its bytes), least valuable first
    assert [ln.split()[2] for ln in lines] == [ids[n][:8] for n in ("c5", "c4", "c1", "c3")], proc.stdout
    assert "value" in lines[0] and "recompute 2s, reused 0x" in lines[0] and "reused 1x" in lines[1]
    assert "cannot be met" in proc.stdout  # the tag, HEAD and exp need more than 1 MB
    assert sorted(ws.store.names()) == before and not (ws.dir / "dropped.json").exists()
    assert ws.dropped() == [] and ws.fsck().ok
    proc = run_txgit("gc", "--budget", "1MB", "--grace", "0", cwd=ws.root)
    assert proc.returncode == 0 and "dropped " + ids["c5"][:8] in proc.stdout, proc.stdout
    assert len(ws.dropped()) == 4


def test_grace_period_protects_new_commits(ws):
    ids = build(ws)
    report = ws.gc(budget=0).budget  # default grace: these commits are minutes old
    assert report.dropped == [] and set(report.protected) == set(ids.values())
    assert all(ws.materialized(c) for c in ids.values())


def test_dropped_state_comes_back_from_a_remote_that_has_it(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    ids = build(ws)
    ws.remotes.add("origin", str(tmp_path / "r.git"))
    ws.push(all_branches=True, tags=True)  # uploads every commit's blobs
    ns = session_namespace()
    ws.checkout("main", ns)
    ns["z"] = 1
    ws.commit(ns, "after the push")
    ws.gc(budget=0, grace_seconds=0)
    # origin/main (a remote-tracking ref) still names c6: protected like a branch
    assert ws.materialized(ids["c6"]) and not ws.materialized(ids["c3"])
    assert ids["c3"] in ws.dropped()
    # the on-demand fetch brings the dropped bytes back from origin's storage
    assert np.array_equal(ws.load("x", ids["c3"]), value_of(3, 100_000))
    assert ws.materialized(ids["c3"], ["x"]) and not ws.materialized(ids["c3"])  # `step` not loaded yet
    assert_exact(ws, ids["c3"], expected(ids)["c3"])
    assert ws.materialized(ids["c3"]) and ids["c3"] not in ws.dropped()  # whole again: no longer dropped
    ws.checkout(ids["c5"])  # a terminal checkout: allowed, since origin can load it
    assert ws.head().id == ids["c5"]


def test_automatic_policy_after_commits(ws, run_txgit):
    proc = run_txgit("config", "gc.budget", "1.2MB", cwd=ws.root)
    assert proc.returncode == 0, proc.stderr
    assert run_txgit("config", "gc.budget", cwd=ws.root).stdout.strip() == "1.2 MB"
    ws = Workspace(ws.root)  # reads the setting at each commit
    ws.budget_policy.grace_seconds = 0  # the default (1 hour) would protect these fresh states
    ns = session_namespace()
    ids = []
    for i in range(5):
        ns["x"] = value_of(i, 100_000)
        ids.append(ws.commit(ns, f"s{i}", files=cells(float(i + 1))).info.id)
        assert store_bytes(ws) <= 1.2e6 * 1.1 + 900_000  # never more than one commit past the trigger
    assert ws.dropped() and set(ws.dropped()) <= set(ids[:-1])
    assert store_bytes(ws) <= 1.2e6 * 1.1 + 900_000 and ws.fsck().ok
    assert np.array_equal(ws.load("x"), value_of(4, 100_000))
    assert run_txgit("config", "gc.budget", "--unset", cwd=ws.root).returncode == 0
    assert_one_line_error(run_txgit("config", "gc.budget", cwd=ws.root), "not set")


@pytest.mark.parametrize("size", ["5XB", "-1", "abc", "", "1.5.3GB", "GB", "5 G B"])
def test_bad_sizes_are_one_line_errors(ws, run_txgit, size):
    ws.commit(session_namespace("a = 1\n"), "one")
    assert_one_line_error(run_txgit("gc", "--budget", size, cwd=ws.root), "invalid size")
    assert_one_line_error(run_txgit("config", "gc.budget", "--", size, cwd=ws.root), "invalid size")
    with pytest.raises(TxgitError, match="invalid size"):
        ws.gc(budget=size)


def test_parse_size_and_unknown_setting(ws, run_txgit):
    assert parse_size("5GB") == 5 * 10**9 and parse_size("500MB") == 500 * 10**6
    assert parse_size("1.5GiB") == int(1.5 * 2**30) and parse_size("1024") == 1024
    assert parse_size(" 2 kB ") == 2000 and parse_size("3mib") == 3 * 2**20 and parse_size(0) == 0
    assert_one_line_error(run_txgit("config", "gc.nope", "1", cwd=ws.root), "unknown setting")
    assert set_budget(ws, "2GB") == 2 * 10**9 and set_budget(ws, None) is None


def test_push_of_a_history_dropped_before_it_was_pushed_is_one_line(tmp_path, run_txgit):
    ws = Workspace.init(tmp_path / "ws")
    ids = build(ws)
    ws.gc(budget=0, grace_seconds=0)
    ws.remotes.add("origin", str(tmp_path / "r.git"))
    proc = run_txgit("push", "origin", "main", cwd=ws.root)
    assert_one_line_error(proc, "cannot push", "dropped by `gc --budget`")
    assert ws.head().id == ids["c6"] and ws.fsck().ok


def test_automatic_policy_runs_in_a_sessions_background_writer(ws):
    from txgit.sessions.session import NamespaceSession

    set_budget(ws, "1.2MB")
    ws.budget_policy.grace_seconds = 0
    session = NamespaceSession(ws, session_namespace("import numpy as np\n"), kind="test")
    session.background = True  # as in a kernel: each cell's commit is written by a thread
    for i in range(5):
        code = f"x = np.arange(100_000) * {i + 1}\n"
        session.before_cell(code)
        exec(code, session.namespace)
        session.after_cell(execution_count=i + 1)
    session.flush()  # the writer ran the due gc after letting go of the lock
    commits = [c.id for c in ws.log()]
    assert len(commits) == 5 and ws.dropped() and set(ws.dropped()) <= set(commits[1:])
    assert store_bytes(ws) <= 1.2e6 * 1.1 + 900_000 and ws.fsck().ok
    assert np.array_equal(ws.load("x"), np.arange(100_000) * 5)
