"""Storage format 2: a state's records in a few git objects (``records/<shard>``), and format 1
(``vars/<name>`` + ``groups/<id>``) still read everywhere.

The format-1 workspace is a fixture made by txgit at 7fabeba, the last version that wrote
format 1 (tests/fixtures/make_format1.py says how)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pygit2
import pytest
from cliutil import assert_one_line_error
from conftest import session_namespace

from txgit import Workspace
from txgit._version import FORMAT_VERSION
from txgit.visual.views import VariableHistoryView

FIXTURE = Path(__file__).parent / "fixtures" / "format1-workspace.tar.gz"


@pytest.fixture
def old(tmp_path: Path) -> Workspace:
    """The format-1 workspace: main c1 -> c2 (a changed, d added); side c1 -> s1 (b changed through c, e added)."""
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, filter="data")
    return Workspace.open(tmp_path / "format1")


def tree_objects(repo: pygit2.Repository, tree: pygit2.Tree) -> dict[str, bytes]:
    """Every object a tree reaches (itself included): id -> its bytes."""
    out = {str(tree.id): tree.read_raw()}
    for entry in tree:
        obj = repo[entry.id]
        if isinstance(obj, pygit2.Tree):
            out.update(tree_objects(repo, obj))
        else:
            out[str(obj.id)] = obj.data
    return out


def top_names(ws: Workspace, rev: str = "HEAD") -> list[str]:
    return sorted(e.name for e in ws.history.resolve(rev).tree)


def many(n: int) -> dict:
    ns = session_namespace()
    for i in range(n):
        ns[f"v{i}"] = {"id": i, "name": f"row-{i}", "values": list(range(i % 17, i % 17 + 20))}
    return ns


# -- format 1 still reads everywhere ------------------------------------------------------------

def test_the_fixture_is_format_1(old):
    assert FORMAT_VERSION == 3  # (3 is 2's layout, written only where a group lists a rebound name)
    for rev in ("main", "main~1", "side"):
        assert old.state(rev).meta["format"] == 1
        assert {"vars", "groups"} <= set(top_names(old, rev)) and "records" not in top_names(old, rev)


def test_a_format_1_state_checks_out_diffs_and_reads_per_variable(old, run_txgit):
    ns = session_namespace()
    old.checkout("main", ns)
    assert ns["a"] == 2 and ns["b"] == [1, 2] and ns["c"] is ns["b"] and ns["d"] == {"k": "v"}
    assert ns["js"].__name__ == "json" and "lock" in old.state().variables
    diff = old.diff("side", "main")
    assert sorted(diff.changed) == ["a", "b", "c"] and sorted(diff.added) == ["d", "lock"] and sorted(diff.removed) == ["e"]
    history = old.history
    for rev in ("main", "side"):
        commit = history.resolve(rev)
        for name, record in history.read_state(commit).variables.items():
            assert history.read_variable(commit, name) == record
        assert history.read_variable(commit, "nope") is None
    changes = [(status, c.summary) for c, status, _, _ in VariableHistoryView(old, "a").history]
    assert changes == [("changed", "c2"), ("added", "c1")]
    assert old.fsck().ok
    for args in (["log", "--graph", "--all"], ["show", "side", "c"], ["diff", "main~1", "main"], ["fsck"]):
        proc = run_txgit(*args, cwd=old.root)
        assert proc.returncode == 0, (args, proc.stderr)
    assert "[1, 2, 3]" in run_txgit("show", "side", "c", cwd=old.root).stdout


def test_a_commit_on_a_format_1_parent_is_written_in_format_2(old):
    ns = session_namespace()
    old.checkout("main", ns)
    ns["a"] = 3
    old.commit(ns, "on top of format 1")
    assert old.state().meta["format"] == 2
    assert top_names(old) == ["meta.json", "records"]
    diff = old.diff("HEAD~1", "HEAD")
    # (the lock could not be restored by the checkout: it was left out of the namespace)
    assert list(diff.changed) == ["a"] and not diff.added and list(diff.removed) == ["lock"]
    fresh = session_namespace()
    Workspace.open(old.root).checkout("HEAD", fresh)
    assert fresh["a"] == 3 and fresh["c"] is fresh["b"] and fresh["d"] == {"k": "v"}


def test_format_1_branches_merge_into_a_format_2_commit(old):
    result = old.merge("side")  # on records alone
    assert result.status == "merged"
    assert old.state().meta["format"] == 2 and "records" in top_names(old)
    fresh = session_namespace()
    Workspace.open(old.root).checkout("HEAD", fresh)
    assert fresh["a"] == 2 and fresh["b"] == [1, 2, 3] and fresh["c"] is fresh["b"] and fresh["e"] == 5
    assert fresh["d"] == {"k": "v"} and "lock" not in old.state().variables  # side dropped it
    assert old.fsck().ok


def test_format_1_history_pushes_and_clones(old, tmp_path):
    old.remotes.add("origin", str(tmp_path / "r.git"), storage=str(tmp_path / "blobs"))
    old.push(all_branches=True)
    bob = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "bob", eager=True)
    for rev in ("main", "origin/side"):
        bns = session_namespace()
        bob.checkout(rev, bns, force=True)
        assert bns["c"] is bns["b"]
    assert bns["b"] == [1, 2, 3] and bns["e"] == 5
    assert bob.fsck().ok


# -- format 2: few objects, few bytes per change -------------------------------------------------

def test_a_thousand_variables_take_a_few_dozen_git_objects(ws):
    ws.commit(many(1000), "a thousand")
    head = ws.history.head_commit()
    objects = tree_objects(ws.history.repo, head.tree)
    shards = [e.name for e in head.tree["records"]]
    assert top_names(ws) == ["meta.json", "records"]
    assert len(objects) + 1 <= 48, (len(objects), len(shards))  # format 1: 2,004 (a record per variable and group)
    assert ws.state().variables.keys() == many(1000).keys() - {"__name__", "__builtins__"}
    assert ws.fsck().ok


@pytest.mark.parametrize("change", ["changed", "added", "removed"])
def test_one_variable_of_a_thousand_writes_a_few_kb(ws, change):
    ns = many(1000)
    ws.commit(ns, "a thousand")
    repo = ws.history.repo
    before = tree_objects(repo, ws.history.head_commit().tree)
    records = sum(len(repo[e.id].data) for e in ws.history.head_commit().tree["records"])
    if change == "changed":
        ns["v500"] = {"id": -1}
    elif change == "added":
        ns["new_one"] = [1, 2, 3]
    else:
        del ns["v500"]
    ws.commit(ns, change)
    head = ws.history.head_commit()
    new = {oid: data for oid, data in tree_objects(repo, head.tree).items() if oid not in before}
    new_records = {e.name: len(repo[e.id].data) for e in head.tree["records"] if str(e.id) in new}
    assert 1 <= len(new_records) <= 2, new_records  # the variable's shard (and the one it split, if added)
    # a shard holds ~1/30 of the records: a few KB, not the ~280 KB of all of them
    assert sum(new_records.values()) <= records // 8 and sum(new_records.values()) <= 24_000, (new_records, records)
    assert len(new) <= 5, sorted(new)  # root tree, records tree, meta.json and the shard(s)


def test_merge_of_two_branches_changing_different_variables_of_one_shard(ws):
    ns = many(200)
    ws.commit(ns, "base")
    repo = ws.history.repo
    shard = max(ws.history.head_commit().tree["records"], key=lambda e: len(repo[e.id].data))
    names = [line.split()[1].decode() for line in repo[shard.id].data.splitlines() if line.startswith(b"v ")]
    x, y = names[:2]
    ws.create_branch("theirs")
    ns[x] = "ours"
    ws.commit(ns, f"ours: {x}")
    theirs = session_namespace()
    ws.checkout("theirs", theirs)
    theirs[y] = "theirs"
    ws.commit(theirs, f"theirs: {y}")
    ws.checkout("main", ns, force=True)
    result = ws.merge("theirs", ns)
    assert result.status == "merged" and ns[x] == "ours" and ns[y] == "theirs"
    merged = repo[ws.history.head_commit().tree["records"][shard.name].id].data
    assert f"v {x} ".encode() in merged and f"v {y} ".encode() in merged
    fresh = session_namespace()
    Workspace.open(ws.root).checkout("HEAD", fresh)
    assert fresh[x] == "ours" and fresh[y] == "theirs" and fresh["v199"] == ns["v199"]


def test_read_variable_reads_one_shard(ws):
    ns = many(300)
    ns["alias"] = ns["v7"]
    ws.commit(ns, "three hundred")
    head = ws.history.head_commit()
    state = ws.history.read_state(head)
    for name in ("v0", "v7", "alias", "v299"):
        assert ws.history.read_variable(head, name) == state.variables[name]
    assert state.variables["alias"].group == state.variables["v7"].group
    assert ws.history.read_variable(head, "v300") is None


# -- malformed format-2 records -------------------------------------------------------------------

def _with_records(ws: Workspace, edit, branch: str) -> str:
    """A commit on ``branch`` whose records/ tree is HEAD's passed through ``edit(repo, builder, shards)``
    (shards: shard name -> its bytes)."""
    repo = ws.history.repo
    head = ws.history.head_commit()
    shards = {e.name: repo[e.id].data for e in head.tree["records"]}
    records = repo.TreeBuilder(repo[head.tree["records"].id])
    edit(repo, records, shards)
    root = repo.TreeBuilder(head.tree)
    root.insert("records", records.write(), pygit2.enums.FileMode.TREE)
    sig = pygit2.Signature("evil", "evil@example.com")
    return str(repo.create_commit(f"refs/heads/{branch}", sig, sig, "hostile", root.write(), [head.id]))


def _replace(name_fn, data_fn):
    def edit(repo, builder, shards):
        name = name_fn(shards)
        builder.insert(name, repo.create_blob(data_fn(shards[name])), pygit2.enums.FileMode.BLOB)
    return edit


def _first(shards):
    return min(shards)


def _var_line(shards, name="x"):
    return next(line for line in b"".join(shards.values()).splitlines() if line.startswith(f"v {name} ".encode()))


CASES = {
    "garbage line": (_replace(_first, lambda d: d + b"what is this\n"), "records/{shard} line {n}: not a record"),
    "bad var json": (_replace(_first, lambda d: d + b"v zz {not json\n"), "records/{shard} line {n}: zz:"),
    "bad var name": (_replace(_first, lambda d: d + b"v ../x {\"kind\": \"module\", \"module\": \"os\"}\n"),
                     "invalid variable name '../x'"),
    "bad group json": (_replace(_first, lambda d: d + b"g {\"format\": 1}\n"), "records/{shard} line {n}: group:"),
    "missing group": (_replace(_first, lambda d: d + b"v zz {\"kind\": \"value\", \"group\": \"" + b"0" * 64 + b"\"}\n"),
                      "zz names group 000000000000, which the commit lacks"),
    "no final newline": (_replace(_first, lambda d: d.rstrip(b"\n")), "records/{shard}: does not end with a newline"),
    "records is a file": (None, "records is not a folder"),
    "shard is a folder": (None, "records/sub is not a file"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_records_are_reported_by_fsck_and_refused_in_one_line(ws, case, run_txgit):
    ns = session_namespace("x = [1, 2]\ny = 'why'\nz = x\n")
    ws.commit(ns, "good")
    edit, expected = CASES[case]
    repo = ws.history.repo
    head = ws.history.head_commit()
    shard = min(e.name for e in head.tree["records"])
    if case == "records is a file":
        root = repo.TreeBuilder(head.tree)
        root.insert("records", repo.create_blob(b"oops"), pygit2.enums.FileMode.BLOB)
        sig = pygit2.Signature("evil", "evil@example.com")
        repo.create_commit("refs/heads/evil", sig, sig, "hostile", root.write(), [head.id])
    elif case == "shard is a folder":
        _with_records(ws, lambda r, b, s: b.insert("sub", head.tree["records"].id, pygit2.enums.FileMode.TREE), "evil")
    else:
        _with_records(ws, edit, "evil")
    lines = repo[repo.revparse_single("evil").peel(pygit2.Commit).tree["records"].id] \
        if case not in ("records is a file", "shard is a folder") else None
    n = len(repo[lines[shard].id].data.splitlines()) if lines is not None else 0
    expected = expected.format(shard=shard, n=n)
    problems = Workspace.open(ws.root).fsck().problems
    assert any(expected in p for p in problems), (expected, problems)
    proc = run_txgit("show", "evil", "x", cwd=ws.root)
    assert_one_line_error(proc, "malformed state record")
    proc = run_txgit("fsck", cwd=ws.root)
    assert proc.returncode == 1 and any(expected in line for line in proc.stdout.splitlines()), proc.stdout


def test_a_variable_in_two_shards_is_reported(ws):
    ws.commit(session_namespace("x = 1\ny = 2\n"), "good")
    line = None

    def edit(repo, builder, shards):
        nonlocal line
        line = _var_line(shards, "x")
        builder.insert("ffffffffffffffff", repo.create_blob(line + b"\n"), pygit2.enums.FileMode.BLOB)
    _with_records(ws, edit, "evil")
    problems = ws.fsck().problems
    assert any("records/ffffffffffffffff line 1: x is recorded twice" in p for p in problems), problems


def test_records_are_text_a_git_user_can_read(ws):
    ws.commit(session_namespace("model = {'w': [1, 2]}\nalias = model\nnote = 'hi'\n"), "one")
    repo = ws.history.repo
    data = b"".join(repo[e.id].data for e in ws.history.head_commit().tree["records"]).decode()
    lines = data.splitlines()
    assert any(line.startswith("v model {") for line in lines) and any(line.startswith("v note {") for line in lines)
    group = [json.loads(line[2:]) for line in lines if line.startswith("g ")]
    assert sorted(map(sorted, (g["names"] for g in group))) == [["alias", "model"], ["note"]]


# -- the record parser --------------------------------------------------------------------------

RECORD_BYTES = [
    b'{"kind":"value","size":3}\n', b'{"kind":"value","size":3}', b' {"kind":"value"}\n', b'{"kind":"value"}  \n',
    b'\xef\xbb\xbf{"kind":"value"}\n', '{"kind":"value"}\n'.encode("utf-16"), '{"kind":"value"}'.encode("utf-16-le"),
    b'{"kind":"val\xffue"}\n', b'"\xed\xa0\x80"\n', b'"\\ud800"', '{"k":"caf\u00e9"}\n'.encode(), b'{} {}\n',
    b'{}\n\n', b'', b'\n', b'[1, 2.5, -3e400, NaN, true, null]\n', b'{"a":"x\ty"}', b'{"a":' * 5 + b'1' + b'}' * 5,
    b'{"a":1}\x00', b'1\x00', b'{"a":1,}', b'{\n "kind": "value",\n "size": 1\n}\n',
]


@pytest.mark.parametrize("data", RECORD_BYTES, ids=range(len(RECORD_BYTES)))
def test_the_record_parser_agrees_with_json_loads(data):
    from txgit.state.snapshot import loads_record

    def outcome(parse):
        try:
            return "value", json.dumps(parse(data), sort_keys=True)
        except (ValueError, TypeError) as e:
            return "error", type(e).__name__
    assert outcome(loads_record) == outcome(json.loads)


def test_reading_a_state_of_a_thousand_variables_parses_records_without_json_loads(ws, monkeypatch):
    # json.loads's encoding detection and wrappers were half the parse of a clone's 2,000 records
    ws.commit(many(1000), "a thousand")
    head = ws.history.head_commit()
    calls = []
    real_loads = json.loads
    monkeypatch.setattr(json, "loads", lambda *a, **k: calls.append(1) or real_loads(*a, **k))
    state = Workspace.open(ws.root).history.read_state(head)
    assert len(state.variables) == 1000 and len(state.groups) == 1000
    assert len(calls) <= 2, f"json.loads called {len(calls)} times"


def _collections_during(fn) -> list[int]:
    """The generation of every cyclic garbage collection started while ``fn`` runs, with the collector
    set to start one every 50 new tracked objects (so that a bulk read of records would set off dozens)."""
    import gc

    collections: list[int] = []

    def count(phase: str, info: dict) -> None:
        if phase == "start":
            collections.append(info["generation"])

    threshold = gc.get_threshold()
    gc.set_threshold(50)
    gc.callbacks.append(count)
    try:
        fn()
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*threshold)
    assert gc.isenabled()  # paused, then running again
    return collections


def test_the_chunk_names_of_a_history_are_read_with_no_garbage_collection(ws):
    """A clone or eager fetch reads the group records of every commit it fetches (the tip's whole, the
    others' changed shards), as many new objects as a state's read: the collector is paused there too."""
    ns = {f"v{i}": {"id": i, "values": list(range(20))} for i in range(300)}
    ws.commit(ns, "first")
    for c in range(5):  # every variable changed: each commit's shards are all new
        ns = {name: {"id": -c, "name": name, "values": list(range(c, 20))} for name in ns}
        ws.commit(ns, f"all changed {c}")
    commits = ws.remotes._new_commits([str(ws.history.head_commit().id)], [])
    assert len(commits) == 6
    ws.history._states.clear()
    names: list[set[str]] = []
    collections = _collections_during(lambda: names.append(ws.remotes._blobs_of(commits)[0]))
    assert len(names[0]) == 6 * 300
    assert len(collections) <= 1, collections


def test_reading_a_state_of_a_thousand_variables_sets_off_no_garbage_collection(ws):
    """Reading a state (every clone and checkout does) allocates thousands of records that hold no
    reference cycles: a collection started in the middle finds nothing to free, yet in a process with a
    large heap (a kernel, the remote benchmark) it may be a full one that walks every object, the
    largest part of a clone's time there (~0.1-0.2 s of 0.25 s). The read pauses the collector."""
    ns = {f"v{i}": {"id": i, "values": list(range(20))} for i in range(1000)}
    ws.commit(ns, "many")
    commit = ws.history.repo.head.peel(pygit2.Commit)
    ws.history._states.clear()  # read from git, not from the cache of states read before
    states = []
    collections = _collections_during(lambda: states.append(ws.history.read_state(commit)))
    assert len(states[0].variables) == 1000 and len(states[0].groups) == 1000
    # one young collection once the collector is back on (it gathers the new records once); before: dozens
    assert len(collections) <= 1, collections


def test_a_commit_encodes_only_the_records_that_changed(ws, monkeypatch):
    """A session's next commit carries the unchanged records over as objects: the group records were
    encoded to JSON again at every commit (~1,000 json.dumps for a namespace of 1,000 variables,
    2.3 ms of the writer thread per commit in a real notebook's 533), and each ``id`` encoded again."""
    ns = many(1000)
    ws.commit(ns, "a thousand")
    ns["v500"] = {"id": -1}
    calls = []
    real_dumps = json.dumps
    monkeypatch.setattr(json, "dumps", lambda *a, **k: calls.append(1) or real_dumps(*a, **k))
    ws.commit(ns, "one changed", names={"v500"})
    assert len(calls) <= 10, f"json.dumps called {len(calls)} times"
    monkeypatch.undo()
    assert ws.load("v500") == {"id": -1} and ws.load("v499") == many(1000)["v499"]
    assert ws.fsck().ok


def test_a_commit_lays_out_again_only_the_shards_whose_records_changed(ws, monkeypatch):
    """Every line of every shard was built again at each commit (~1 ms of the writer thread's GIL for a
    notebook's 533 variables); now a shard whose records are the ones the last commit laid out is taken
    as it is."""
    from txgit import history

    ns = many(1000)
    ws.commit(ns, "a thousand")
    lines = []
    real = history._var_line_body
    monkeypatch.setattr(history, "_var_line_body", lambda record: lines.append(1) or real(record))
    ns["v500"] = {"id": -1}
    ws.commit(ns, "one changed", names={"v500"})
    assert len(lines) <= history.SHARD_MAX, f"{len(lines)} variable lines built for one changed variable"
    ns["new_one"] = [1, 2, 3]
    del ns["v7"]
    ws.commit(ns, "one added, one removed")
    monkeypatch.undo()
    assert ws.load("v500") == {"id": -1} and ws.load("new_one") == [1, 2, 3] and "v7" not in ws.state().variables
    assert ws.fsck().ok


def test_shards_laid_out_from_an_earlier_layout_are_the_same_bytes(ws):
    """record_shards with the last layout gives what it gives without one, over random adds, removes,
    changes and regroupings (shards splitting past SHARD_MAX included)."""
    import random

    from txgit.history import State, record_shards
    from txgit.state import GroupRecord, VarRecord
    from txgit.state.snapshot import StreamRecord

    rng = random.Random(7)
    names = [f"n{i}" for i in range(400)]

    def group(members: list[str], salt: int) -> tuple[str, GroupRecord]:
        record = GroupRecord(names=sorted(members), streams=[StreamRecord(salt, [f"{salt:064x}"])])
        return record.id, record

    live: dict[str, VarRecord] = {}
    groups: dict[str, GroupRecord] = {}
    layout = None
    for step in range(120):
        for _ in range(rng.choice([0, 1, 1, 2, 5, 40])):
            n, what = rng.choice(names), rng.random()
            if what < 0.3 and n in live:
                del live[n]
            else:
                gid, record = group([n] + rng.sample(names, rng.choice([0, 0, 1])), rng.randrange(1 << 30))
                groups[gid] = record
                live[n] = VarRecord("value", "dict", f"step {step}", size=step, group=gid)
        used = {r.group for r in live.values()}
        groups = {g: r for g, r in groups.items() if g in used}
        state = State(dict(live), dict(groups), {})
        shards, layout = record_shards(state, layout)
        fresh, _ = record_shards(State(dict(live), dict(groups), {}))
        assert shards == fresh, step
        assert list(shards) == sorted(shards)
