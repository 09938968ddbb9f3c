"""The git side of a push: which git pack a push sends to a local bare repository.

A push of one new commit holds one version of each record shard, so libgit2's delta search can
only pair different variables' shards (a few percent of bytes for most of the push's time): it is
skipped for such a push. A push of several commits keeps it, since successive versions of a
shard delta well. The choice is per push: the workspace's git config is left as it was."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import session_namespace
from txgit import Workspace


def _pack_objects(remote: Path) -> tuple[int, int]:
    """(objects, of which deltas) in the remote's packs, as `git verify-pack -v` lists them."""
    objects = deltas = 0
    for idx in (remote / "objects" / "pack").glob("*.idx"):
        out = subprocess.run(["git", "verify-pack", "-v", str(idx)], check=True, capture_output=True,
                             text=True).stdout
        for line in out.splitlines():
            fields = line.split()
            if len(fields) >= 5 and fields[1] in ("commit", "tree", "blob", "tag"):
                objects += 1
                deltas += len(fields) == 7  # a delta names its depth and base
    return objects, deltas


def _many_variables(n: int) -> dict:
    ns = session_namespace()
    for i in range(n):
        ns[f"v{i}"] = {"id": i, "name": f"row-{i}", "values": list(range(i % 17, i % 17 + 20))}
    return ns


def _config_entries(ws: Workspace) -> dict[str, str]:
    return {e.name: e.value for e in ws.history.repo.config if e.level == 5}  # the repository's own file


def test_push_of_one_commit_sends_no_deltas_and_leaves_the_config_alone(tmp_path):
    ws = Workspace.init(tmp_path / "a")
    ns = _many_variables(400)  # ~16 record shards of similar text: libgit2 would delta them
    ws.commit(ns, "state")
    before = _config_entries(ws)
    ws.remotes.add("origin", str(tmp_path / "r.git"))
    ws.push()
    objects, deltas = _pack_objects(tmp_path / "r.git")
    assert objects >= 16 and deltas == 0
    after = {k: v for k, v in _config_entries(ws).items() if not k.startswith(("remote.", "branch."))}
    assert after == {k: v for k, v in before.items() if not k.startswith(("remote.", "branch."))}
    clone = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b", eager=True)
    got = session_namespace()
    clone.checkout("main", got)
    assert got["v399"] == ns["v399"]


def test_push_of_several_commits_keeps_deltas_between_versions(tmp_path):
    ws = Workspace.init(tmp_path / "a")
    ns = _many_variables(400)
    ws.commit(ns, "state")
    for i in range(6):  # each commit rewrites one shard: versions of one file delta well
        ns["v7"] = {"id": -i, "values": list(range(20))}
        ws.commit(ns, f"change {i}")
    ws.remotes.add("origin", str(tmp_path / "r.git"))
    ws.push()
    _, deltas = _pack_objects(tmp_path / "r.git")
    assert deltas >= 5
    clone = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b", eager=True)
    got = session_namespace()
    clone.checkout("main", got)
    assert got["v7"] == ns["v7"] and got["v399"] == ns["v399"]


def test_an_eager_clone_of_a_history_reads_each_record_shard_once(tmp_path, monkeypatch):
    # 15 commits of 400 variables, each changing one: the clone needs every commit's chunk names, and
    # reads them from the record shards each commit changed, not from every commit's whole state
    ws = Workspace.init(tmp_path / "a")
    ns = _many_variables(400)
    ws.commit(ns, "state")
    for i in range(15):
        ns[f"v{i * 25}"] = {"id": -i}
        ws.commit(ns, f"change {i}")
    ws.remotes.add("origin", str(tmp_path / "r.git"))
    ws.push()
    from txgit.state import GroupRecord

    parsed = []  # group records parsed (instrumented, not replaced: the real parser still runs)
    real = GroupRecord.from_bytes.__func__
    monkeypatch.setattr(GroupRecord, "from_bytes",
                        classmethod(lambda cls, data: parsed.append(data) or real(cls, data)))
    clone = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b", eager=True)
    # the tip's state read whole (the checkout reads it next), the others' changed shards (<= 64 lines)
    assert len(parsed) <= 400 + 15 * 64 < 16 * 400, len(parsed)
    every_commit = ws.remotes._new_commits([str(ws.history.head_commit().id)], [])
    assert len(every_commit) == 16 and not clone.store.missing(ws.remotes._blobs_of(every_commit)[0])
    monkeypatch.undo()
    for back in (0, 7, 15):
        got = session_namespace()
        clone.checkout(f"main~{back}", got)
        want = session_namespace()
        ws.checkout(f"main~{back}", want)
        assert {k: v for k, v in got.items() if k.startswith("v")} == {k: v for k, v in want.items() if k.startswith("v")}
