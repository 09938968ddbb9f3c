"""Damaged blobs (flipped byte, cut short, gone, swapped for a hostile pickle) are detected by
every reader, named in the error, never unpickled, and repaired from a store holding good copies."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from conftest import session_namespace
from txgit import Workspace
from txgit.errors import BlobError, CorruptBlob, MissingBlob
from txgit.storage import ObjectStore

# A value whose unpickling writes a file: if the marker appears, a damaged blob was unpickled.
BOMB = """
import pathlib
import numpy as np
class Bomb:
    def __init__(self, path):
        self.path = path
    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))
bomb = Bomb(MARKER)
big = np.arange(400_000)
small = {"a": 1}
"""


def damage(path: Path, how: str) -> None:
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    elif how == "truncate":
        path.write_bytes(bytes(data[: len(data) - 1]))
    elif how == "missing":
        path.unlink()
    elif how == "hostile":  # valid pickle, wrong bytes: would run code if it were loaded
        path.write_bytes(pickle.dumps(_Hostile(str(path.parent / "never"))))
    else:
        raise AssertionError(how)


class _Hostile:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.fixture
def armed(tmp_path: Path):
    marker = tmp_path / "UNPICKLED"
    ws = Workspace.init(tmp_path / "ws")
    ns = session_namespace(BOMB.replace("MARKER", repr(str(marker))))
    ws.commit(ns, "armed")
    # The payload really fires on unpickling (so its absence below proves something).
    ws.load("bomb")
    assert marker.exists()
    marker.unlink()
    backup = tmp_path / "backup"
    shutil.copytree(ws.store.root, backup)
    return ws, marker, backup


def chunk_of(ws: Workspace, var: str, index: int = 0) -> str:
    state = ws.state()
    return state.groups[state.variables[var].group].chunk_names()[index]


CASES = [("bomb", 0, "flip"), ("bomb", 0, "truncate"), ("bomb", 0, "missing"), ("small", 0, "hostile"),
         ("bomb", 0, "hostile"), ("big", 1, "flip"), ("big", -1, "truncate"), ("big", 2, "missing")]


@pytest.mark.parametrize("var,index,how", CASES)
def test_damage_is_detected_by_every_reader_and_never_unpickled(armed, var, index, how, run_txgit):
    ws, marker, backup = armed
    name = chunk_of(ws, var, index)
    damage(Path(ws.store.path(name)), how)
    expected = MissingBlob if how == "missing" else CorruptBlob

    with pytest.raises(expected, match=name[:12]):
        ws.load(var)
    ns = session_namespace()
    with pytest.raises(expected, match=name[:12]):
        ws.checkout("HEAD", ns)
    assert ns == session_namespace()  # nothing half-restored
    report = ws.fsck()
    assert not report.ok and len(report.problems) == 1
    kind = "missing" if how == "missing" else "corrupt"
    assert report.problems[0].startswith(f"{kind} blob {name} ({var} in commit ")
    # The CLI: one line naming the blob, exit 1, no traceback.
    proc = run_txgit("show", "HEAD", var, cwd=ws.root)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and name[:12] in proc.stderr
    proc = run_txgit("fsck", cwd=ws.root)
    assert proc.returncode == 1 and proc.stdout.splitlines() == report.problems
    assert "Traceback" not in proc.stderr
    assert not marker.exists() and not (Path(ws.store.path(name)).parent / "never").exists()

    # Repair from a store that has a good copy: afterwards everything is whole again.
    fixed = ws.fsck(repair=True, stores=[ObjectStore(str(backup))])
    assert fixed.ok and fixed.repaired == {name: str(backup)}
    assert ws.fsck().ok
    ws.checkout("HEAD", ns)
    assert set(ns) >= {"bomb", "big", "small"} and int(ns["big"][-1]) == 399_999
    assert marker.exists()  # this time the real value was loaded, so its payload ran


def test_repair_skips_a_bad_copy_and_takes_the_next_store(armed, tmp_path):
    ws, marker, backup = armed
    name = chunk_of(ws, "big", 1)
    damage(Path(ws.store.path(name)), "flip")
    bad_backup = tmp_path / "bad-backup"
    shutil.copytree(backup, bad_backup)
    damage(Path(ObjectStore(str(bad_backup)).path(name)), "truncate")

    report = ws.fsck(repair=True, stores=[ObjectStore(str(bad_backup))])
    assert not report.ok and report.repaired == {}
    assert report.problems == [f"corrupt blob {name} (big in commit {ws.head().short_id}) (no store had a good copy)"]
    report = ws.fsck(repair=True, stores=[ObjectStore(str(bad_backup)), ObjectStore(str(backup))])
    assert report.ok and report.repaired == {name: str(backup)}
    assert int(ws.load("big")[123]) == 123


def test_cli_repair_from_a_folder(armed, run_txgit):
    ws, marker, backup = armed
    names = [chunk_of(ws, "big", 0), chunk_of(ws, "small")]
    damage(Path(ws.store.path(names[0])), "missing")
    damage(Path(ws.store.path(names[1])), "flip")
    proc = run_txgit("fsck", "--repair", cwd=ws.root)  # no remote: nothing to repair from
    assert proc.returncode == 1 and len(proc.stdout.splitlines()) == 2
    proc = run_txgit("fsck", "--repair", "--from", str(backup), cwd=ws.root, check=True)
    assert proc.stdout.splitlines()[0] == f"repair: tried {backup}: 2 blobs repaired"  # says which store it tried
    assert sorted(proc.stdout.splitlines()[1:3]) == sorted(f"repaired blob {n} from {backup}" for n in names)
    assert proc.stdout.splitlines()[-1].endswith(": ok (2 repaired)")
    assert run_txgit("fsck", cwd=ws.root, check=True).stdout.startswith("checked 1 commit, ")
    assert not marker.exists()


def test_a_blob_name_is_never_a_path(tmp_path):
    store = ObjectStore(str(tmp_path / "store"))
    for name in ["../" * 10 + "etc/passwd", "ab/../../x", "0" * 63 + "/", "A" * 64]:
        with pytest.raises(BlobError, match="invalid blob name"):
            store.get(name)
        with pytest.raises(BlobError, match="invalid blob name"):
            store.put_named({name: b"x"}, check=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def _drop_git_object(ws: Workspace, oid: str) -> None:
    path = Path(ws.history.repo.path) / "objects" / oid[:2] / oid[2:]
    path.chmod(0o644)
    path.unlink()


@pytest.mark.parametrize("what", ["records tree", "records shard", "parent commit", "head commit"])
def test_missing_git_objects_are_reported_not_tracebacks(ws, what, run_txgit):
    ns = session_namespace("a = [1]\n")
    ws.commit(ns, "one")
    ns["a"] = [2]
    ws.commit(ns, "two")
    head = ws.history.head_commit()
    oid = {"records tree": lambda: head.tree["records"].id,
           "records shard": lambda: next(iter(ws.history.repo[head.tree["records"].id])).id,
           "parent commit": lambda: head.parent_ids[0],
           "head commit": lambda: head.id}[what]()
    _drop_git_object(ws, str(oid))
    fresh = Workspace.open(ws.root)  # a new process's view: no object cache
    report = fresh.fsck()
    assert not report.ok and str(oid)[:8] in " ".join(report.problems), report.problems
    with pytest.raises(Exception) as info:
        fresh.gc(grace_seconds=0, reflog_days=0)
    assert "gc deleted nothing" in str(info.value)
    for args in (["fsck"], ["status"], ["log"], ["show"], ["gc"]):
        proc = run_txgit(*args, cwd=ws.root)
        assert "Traceback" not in proc.stderr, (args, proc.stderr)
        if proc.returncode:
            assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("txgit: error: "), (args, proc.stderr)
