"""A corrupted blob on a remote's storage: `txgit fsck --remote NAME --verify` finds it (loose or a
member of a pack), `--repair` puts a verified good copy back from here, and a lazy clone that meets
it is told whom to ask, with its own state untouched. Real S3 (moto on 127.0.0.1) and a folder remote."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from cliutil import assert_one_line_error
from conftest import session_namespace
from servers import S3_ENV, make_bucket, s3_requests
from txgit import Workspace
from txgit.errors import CorruptBlob
from txgit.remote import EMBEDDED_DIR


def _alice(tmp_path: Path, where: str, s3: str | None, monkeypatch) -> tuple[Workspace, dict, dict]:
    """Alice's workspace, pushed: 20 small variables (one pack on the remote) and a big array (loose
    chunks). Returns the workspace, its namespace and the clone options Bob needs."""
    ws = Workspace.init(tmp_path / "a")
    ns = session_namespace()
    for i in range(20):
        ns[f"v{i}"] = {"id": i, "values": list(range(i, i + 20))}
    ns["big"] = np.arange(300_000)  # 2.4 MB: loose chunks on a remote
    ws.commit(ns, "twenty small and a big one")
    options: dict = {}
    if where == "s3":
        for k, v in S3_ENV.items():
            monkeypatch.setenv(k, v)
        bucket = f"rc-{tmp_path.name[-20:].lower().replace('_', '-')}"
        make_bucket(s3, bucket)
        options = {"storage_options": {"endpoint_url": s3}}
        ws.remotes.add("origin", str(tmp_path / "r.git"), storage=f"s3://{bucket}/blobs", **options)
    else:
        ws.remotes.add("origin", str(tmp_path / "r.git"))
    ws.push()
    return ws, ns, options


def _damage_on_remote(ws: Workspace, name: str) -> None:
    """Bit rot on the remote, behind txgit's back: one byte of the blob flipped where the storage
    keeps it (a loose object, or its range inside a pack: the pack keeps its size)."""
    store = ws.remotes.store("origin")
    store.packs.refresh()
    member = store.packs.packed().get(name)
    path = store.path(name) if member is None else store.packs.pack_path(member.pack)
    data = bytearray(store.fs.cat_file(path))
    at = (0 if member is None else member.offset) + (len(data) if member is None else member.length) // 2
    data[at] ^= 0xFF
    store.fs.pipe_file(path, bytes(data))
    store.fs.invalidate_cache()


def _victims(ws: Workspace) -> tuple[str, str]:
    """A loose chunk of `big` and a packed member (`v3`) on the remote."""
    state = ws.state()
    store = ws.remotes.store("origin")
    store.packs.refresh()
    chunk = sorted(set(state.groups[state.variables["big"].group].chunk_names()) - store.packs.packed().keys())[0]
    member = sorted(state.groups[state.variables["v3"].group].chunk_names())[0]
    assert member in store.packs.packed()
    return chunk, member


@pytest.mark.parametrize("where", ["s3", "folder"])
def test_fsck_remote_verify_finds_corrupt_blobs_and_repair_puts_good_copies_back(tmp_path, where, s3, monkeypatch,
                                                                                run_txgit):
    ws, ns, options = _alice(tmp_path, where, s3, monkeypatch)
    a = tmp_path / "a"
    chunk, member = _victims(ws)
    for name in (chunk, member):
        _damage_on_remote(ws, name)

    # listing alone cannot see bit rot: that is what --verify is for
    assert run_txgit("fsck", "--remote", "origin", cwd=a, env=S3_ENV).returncode == 0
    proc = run_txgit("fsck", "--remote", "origin", "--verify", cwd=a, env=S3_ENV)
    assert f"remote origin has corrupt blob {chunk}" in proc.stdout, proc.stdout + proc.stderr
    assert f"remote origin has corrupt blob {member}" in proc.stdout, proc.stdout
    assert_one_line_error(proc, "2 corrupt", "`txgit fsck --remote origin --verify --repair`")

    # Bob's lazy clone meets the bad blob: one line naming it, the remote and whom to ask; his state whole
    bob = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b", **options)
    got = session_namespace()
    with pytest.raises(CorruptBlob) as err:
        bob.checkout("main", got)
    text = str(err.value)
    assert "\n" not in text and (chunk in text or member in text) and "remote origin" in text, text
    assert "ask whoever has a good copy to run `txgit fsck --remote origin --verify --repair`" in text, text
    assert not [n for n in got if n not in ("__name__", "__builtins__")], got  # nothing half loaded
    assert not bob.store.has(chunk) and not bob.store.has(member)
    proc = run_txgit("fetch", "--eager", cwd=tmp_path / "b", env=S3_ENV)
    assert_one_line_error(proc, "remote origin", "`txgit fsck --remote origin --verify --repair`")

    # Alice repairs from her good copies; the remote verifies clean; Bob's retry works
    proc = run_txgit("fsck", "--remote", "origin", "--verify", "--repair", cwd=a, env=S3_ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"remote origin has corrupt blob {chunk} (uploaded again, verified)" in proc.stdout, proc.stdout
    assert f"remote origin has corrupt blob {member} (uploaded again, verified)" in proc.stdout, proc.stdout
    assert proc.stdout.strip().endswith("ok (2 repaired)"), proc.stdout
    proc = run_txgit("fsck", "--remote", "origin", "--verify", cwd=a, env=S3_ENV)
    assert proc.returncode == 0 and proc.stdout.strip().endswith(": ok"), proc.stdout + proc.stderr
    bob.checkout("main", got)
    assert got["v3"] == ns["v3"] and int(got["big"][-1]) == 299_999
    assert run_txgit("fsck", cwd=tmp_path / "b", env=S3_ENV).returncode == 0


def test_repair_with_no_good_copy_here_says_so_and_changes_nothing(tmp_path, run_txgit, monkeypatch):
    ws, _, _ = _alice(tmp_path, "folder", None, monkeypatch)
    chunk, _ = _victims(ws)
    _damage_on_remote(ws, chunk)
    rotten = (tmp_path / "r.git" / EMBEDDED_DIR / chunk[:2] / chunk[2:]).read_bytes()
    ws.store.delete([chunk])  # Alice's copy is gone too: nothing to send
    proc = run_txgit("fsck", "--remote", "origin", "--verify", "--repair", cwd=tmp_path / "a")
    assert f"remote origin has corrupt blob {chunk} (no good copy here either)" in proc.stdout, proc.stdout
    assert_one_line_error(proc, "1 corrupt")
    assert (tmp_path / "r.git" / EMBEDDED_DIR / chunk[:2] / chunk[2:]).read_bytes() == rotten
    # --verify is about a remote's copies: alone, one line saying so
    assert_one_line_error(run_txgit("fsck", "--verify", cwd=tmp_path / "a"), "--verify checks a remote", "--remote NAME")


def test_clone_eager_meeting_a_corrupt_blob_says_what_to_do_not_to_fsck_the_folder_it_removed(tmp_path, run_txgit,
                                                                                             monkeypatch):
    ws, _, _ = _alice(tmp_path, "folder", None, monkeypatch)
    chunk, _ = _victims(ws)
    _damage_on_remote(ws, chunk)
    proc = run_txgit("clone", "--eager", str(tmp_path / "r.git"), "bob", cwd=tmp_path)
    assert_one_line_error(proc, chunk, "remote origin", "nothing was cloned", f"{tmp_path / 'bob'} was removed",
                          "ask whoever has a good copy to run `txgit fsck --remote origin --verify --repair`")
    assert "run `txgit fsck`" not in proc.stderr and not (tmp_path / "bob").exists()
    # Alice mends it; the same clone then works
    run_txgit("fsck", "--remote", "origin", "--verify", "--repair", cwd=tmp_path / "a", check=True)
    run_txgit("clone", "--eager", str(tmp_path / "r.git"), "bob", cwd=tmp_path, check=True)
    assert run_txgit("fsck", cwd=tmp_path / "bob").returncode == 0


def test_a_corrupt_copy_on_one_remote_is_passed_over_for_a_sound_one_on_another(tmp_path, monkeypatch):
    ws, ns, _ = _alice(tmp_path, "folder", None, monkeypatch)
    ws.remotes.add("spare", str(tmp_path / "spare.git"))
    ws.push("spare")
    chunk, member = _victims(ws)
    for name in (chunk, member):
        _damage_on_remote(ws, name)
    bob = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b")
    bob.remotes.add("spare", str(tmp_path / "spare.git"))
    got = session_namespace()
    assert bob.remotes.names() == ["origin", "spare"], bob.remotes.names()
    bob.checkout("main", got)  # origin's copies fail their hash: spare.s are taken, verified
    assert got["v3"] == ns["v3"] and int(got["big"][-1]) == 299_999
    assert bob.fsck().ok



@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_fetch_eager_takes_a_sound_copy_from_another_remote_as_a_load_does(tmp_path, monkeypatch, damage):
    """A load passes over origin's bad or lost copy for spare's (the test above); `fetch --eager`
    asked origin alone, and stopped on the first bad blob with nothing of the rest fetched."""
    ws, ns, _ = _alice(tmp_path, "folder", None, monkeypatch)
    ws.remotes.add("spare", str(tmp_path / "spare.git"))
    ws.push("spare")
    chunk, member = _victims(ws)
    _damage_on_remote(ws, member)
    if damage == "corrupt":
        _damage_on_remote(ws, chunk)
    else:
        store = ws.remotes.store("origin")
        store.fs.rm(store.path(chunk))
    bob = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b")
    bob.remotes.add("spare", str(tmp_path / "spare.git"))
    state = bob.state("origin/main")
    blobs = {n for g in state.groups.values() for n in g.chunk_names()}
    fetched = bob.fetch("origin", eager=True)
    assert not bob.store.missing(blobs) and fetched.blobs_fetched >= len(blobs) - 1, fetched
    report = Workspace.open(bob.root).fsck()
    assert report.ok and not report.on_remote, report
    shutil.rmtree(tmp_path / "r.git")  # all of it is here now: no remote is asked again
    shutil.rmtree(tmp_path / "spare.git")
    got = session_namespace()
    Workspace.open(bob.root).checkout("main", got)
    assert got["v3"] == ns["v3"] and int(got["big"][-1]) == 299_999



def test_fetch_eager_past_a_bad_blob_reads_the_rest_in_batches_and_shows_progress(tmp_path, s3, monkeypatch):
    """`fetch --eager` meeting a corrupt blob on origin fell back to one blob at a time, with no
    progress: every blob the fast path had not brought was one request (a range of a pack, or a loose
    object), in turn, while the bar stood where the fast path had stopped. Now the rest comes in
    batches (a pack's members in one read), the bad blob from the spare remote, and the progress
    goes on to the total."""
    ws, ns, options = _alice(tmp_path, "s3", s3, monkeypatch)
    for push in range(6):  # more packs than a fetch reads whole beside their indexes
        for i in range(50):
            ns[f"w{push}_{i}"] = {"id": i, "values": list(range(i, i + 30 + push))}
        ws.commit(ns, f"fifty more ({push})")
        ws.push()
    ws.remotes.add("spare", str(tmp_path / "spare.git"))
    ws.push("spare")
    state = ws.state()
    blobs = {n for g in state.groups.values() for n in g.chunk_names()}
    first = min(blobs)  # in the fast path's first batch: almost everything is left to the slow path
    _damage_on_remote(ws, first)
    bob = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b", **options)
    bob.remotes.add("spare", str(tmp_path / "spare.git"))
    bucket = ws.remotes.store("origin").root.split("/")[0]
    before = len(s3_requests(s3, bucket))
    said: list[tuple[str, int, int]] = []
    fetched = bob.fetch("origin", eager=True, progress=lambda *a: said.append(a))
    gets = [p for m, p in s3_requests(s3, bucket)[before:] if m == "GET"]
    assert not bob.store.missing(blobs) and fetched.blobs_fetched == len(blobs), fetched
    assert len(gets) < len(blobs) // 4, (len(gets), len(blobs))  # it was one GET per blob, 300+
    total = said[0][2]
    assert said[-1] == ("download", total, total), said[-3:]
    assert [d for _, d, _ in said] == sorted(d for _, d, _ in said), said  # never backwards
    got = session_namespace()
    Workspace.open(bob.root).checkout("main", got)
    assert got["w5_49"] == ns["w5_49"] and int(got["big"][-1]) == 299_999


def test_fetch_eager_with_no_sound_copy_anywhere_names_the_blob_and_what_to_do(tmp_path, monkeypatch):
    ws, _, _ = _alice(tmp_path, "folder", None, monkeypatch)
    ws.remotes.add("spare", str(tmp_path / "spare.git"))
    ws.push("spare")
    chunk, _ = _victims(ws)
    _damage_on_remote(ws, chunk)
    spare = ws.remotes.store("spare")
    spare.fs.rm(spare.path(chunk))
    bob = Workspace.clone(str(tmp_path / "r.git"), tmp_path / "b")
    bob.remotes.add("spare", str(tmp_path / "spare.git"))
    with pytest.raises(CorruptBlob, match=f"blob {chunk} on remote origin .*fsck --remote origin --verify --repair"):
        bob.fetch("origin", eager=True)
    assert Workspace.open(bob.root).fsck().ok  # the sound blobs it got are kept; nothing bad was stored



def test_verify_reads_a_pack_at_once_not_a_request_per_member(tmp_path, s3, monkeypatch):
    """320 small variables (7 packs) and a big array's loose chunks: hashing them all on S3 reads
    each pack once and the chunks, not one range per member."""
    import s3fs

    ws, ns, _ = _alice(tmp_path, "s3", s3, monkeypatch)
    for push in range(6):  # more packs than a fetch reads whole beside their indexes
        for i in range(20 + 50 * push, 70 + 50 * push):
            ns[f"v{i}"] = {"id": i}
        ws.commit(ns, "50 more")
        ws.push()
    reads: list[str] = []
    real = s3fs.S3FileSystem._cat_file

    async def counted(self, path, *args, **kwargs):
        reads.append(path)
        return await real(self, path, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_cat_file", counted)
    check = Workspace.open(ws.root).remotes.check_storage("origin", verify=True)  # nothing kept in memory
    store = ws.remotes.store("origin")
    chunks = len({n for g in ws.state().groups.values() for n in g.chunk_names()} - store.packs.packed().keys())
    assert check.ok and check.verified and check.blobs > 320, check
    assert len([p for p in reads if not p.endswith(".idx")]) <= chunks + len(store.packs.indexes()), reads


@pytest.mark.parametrize("failure", ["refused", "silent"])
def test_a_network_failure_while_verifying_is_a_network_error_never_a_missing_blob(tmp_path, s3, monkeypatch, failure):
    """The storage answered the listing, then the network failed as the blobs were read: every blob
    read then was "missing" (the reads' errors were dropped as absent files), and fsck said the
    remote lacked them. Now it is one error naming the remote, and the repair changes nothing."""
    from servers import switchable_proxy

    from txgit.errors import RemoteError
    from txgit.storage import ObjectStore

    monkeypatch.setenv("TXGIT_REMOTE_TIMEOUT", "2")
    with switchable_proxy(int(s3.rsplit(":", 1)[1])) as proxy:
        ws, _, _ = _alice(tmp_path, "s3", f"http://127.0.0.1:{proxy.port}", monkeypatch)
        store = ws.remotes.store("origin")
        before = store.fs.find(store.root)
        real = ObjectStore._read_loose

        def cut(self, names):  # the listing and the packs are read: the network fails on the loose blobs
            proxy.set(failure)
            return real(self, names)

        monkeypatch.setattr(ObjectStore, "_read_loose", cut)
        try:
            check = Workspace.open(ws.root).remotes.check_storage("origin", verify=True, resend=True)
        except RemoteError as e:
            said = str(e)
        else:
            pytest.fail(f"no network error, but {check}")
        assert "remote storage s3://" in said and "missing" not in said and "lacks" not in said, said
        monkeypatch.setattr(ObjectStore, "_read_loose", real)
        proxy.set("pass")
        check = Workspace.open(ws.root).remotes.check_storage("origin", verify=True)
        assert check.ok and check.verified and not check.lacking, check
        store.fs.invalidate_cache()
        assert store.fs.find(store.root) == before  # nothing uploaded again, nothing removed
