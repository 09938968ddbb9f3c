"""A full disk never loses a user's change or breaks a repository (failures, round 5).

The scenarios run on a real small file system (a tmpfs in a private mount namespace: ENOSPC, see
tests/smalldisk.py); the same write paths are covered with RLIMIT_FSIZE (EFBIG), which every OS
allows, so the suite never merely skips. Each says which errno it covers. The bar: one line naming
the operation, "no space left on device", where and what to do; a non-zero exit; fsck passes; and
the same operation completes once there is room."""

from __future__ import annotations

import functools
import subprocess
import sys

import pytest

from cliutil import assert_one_line_error
from smalldisk import limit_file_size, run_on_small_disk, small_disk_available

small_disk = pytest.mark.skipif(not small_disk_available(), reason="no user namespaces here: the RLIMIT_FSIZE "
                                "tests below cover the same write paths (EFBIG)")


def _proc(values: list) -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess([], values[0], values[1], values[2])


# A remote with a state of 8 MB (an array, in 1 MiB chunks) on branch `big`, and a small one on main.
_REMOTE = """
import numpy as np, shutil
from txgit import Workspace
host = DISK.parent
alice = Workspace.init(host / "alice")
alice.commit({"__name__": "__main__", "a": 1}, "small")
alice.create_branch("big", alice.head().id)
alice.checkout("big", {})
alice.commit({"__name__": "__main__", "a": 1, "big": np.arange(1_000_000)}, "big")
alice.checkout("main", {})
assert txgit("remote", "add", "origin", str(host / "team.git"), cwd=host / "alice").returncode == 0
assert txgit("push", "--all", cwd=host / "alice").returncode == 0
def run(name, *args, cwd):
    p = txgit(*args, cwd=cwd)
    report(**{name: [p.returncode, p.stdout, p.stderr]})
"""


@small_disk
def test_clone_fetch_and_gc_on_a_full_disk_say_one_line_change_nothing_and_complete_once_there_is_room(tmp_path):
    """ENOSPC. Before: a traceback ending in `OSError: [Errno 28] No space left on device` for each."""
    got = run_on_small_disk(_REMOTE + """
fill(3000)  # room for git's objects and a few chunks, not for 8 MB
run("clone", "clone", "--eager", str(host / "team.git"), str(DISK / "bob"), cwd=DISK)
report(after_clone=sorted(p.name for p in DISK.iterdir()))
run("lazy", "clone", str(host / "team.git"), str(DISK / "bob"), cwd=DISK)
run("fetch", "fetch", "--eager", cwd=DISK / "bob")
run("fsck", "fsck", cwd=DISK / "bob")
run("status", "status", cwd=DISK / "bob")
free()
run("fetch_again", "fetch", "--eager", cwd=DISK / "bob")
run("fsck_again", "fsck", cwd=DISK / "bob")

fill(3000)  # a push to a folder remote on the full disk (alice's workspace is on the host's)
assert txgit("remote", "add", "usb", str(DISK / "usb.git"), cwd=host / "alice").returncode == 0
run("push", "push", "usb", "big", cwd=host / "alice")
free()
run("push_again", "push", "usb", "big", cwd=host / "alice")
shutil.rmtree(DISK / "bob")
run("clone_pushed", "clone", "--eager", str(DISK / "usb.git"), str(DISK / "carol"), cwd=DISK)
run("fsck_pushed", "fsck", cwd=DISK / "carol")
shutil.rmtree(DISK / "carol")

ws = Workspace.init(DISK / "g")  # many loose small blobs and git objects: gc packs both
ns = {"__name__": "__main__"}
for i in range(40):
    ns.update({f"v{j}": [i, j] * 50 for j in range(3)})
    ws.commit(ns, f"c{i}")
fill(30)
run("gc", "gc", cwd=DISK / "g")
run("gc_fsck", "fsck", cwd=DISK / "g")
free()
run("gc_again", "gc", cwd=DISK / "g")
run("gc_fsck_again", "fsck", cwd=DISK / "g")
run("gc_log", "log", "--oneline", cwd=DISK / "g")
""", tmp_path, size_kb=16384)
    disk = tmp_path / "disk"
    assert_one_line_error(_proc(got["clone"]), "cannot clone", f"no space left on device ({disk}): nothing was cloned "
                          f"({disk / 'bob'} was removed); free some space there and clone again")
    assert got["after_clone"] == [".ballast"]  # the half-made clone was removed
    assert got["lazy"][0] == 0, got["lazy"]
    assert_one_line_error(_proc(got["fetch"]), "txgit fetch: no space left on device", str(disk / "bob" / ".txgit"),
                          "nothing was lost; free some space there and run it again")
    assert got["fsck"][0] == 0 and "not downloaded yet" in got["fsck"][1], got["fsck"]
    assert "On branch main" in got["status"][1] or "main" in got["status"][1], got["status"]
    assert got["fetch_again"][0] == 0 and "fetched" in got["fetch_again"][1], got["fetch_again"]
    assert got["fsck_again"][0] == 0 and "not downloaded" not in got["fsck_again"][1], got["fsck_again"]

    # (a push said it in one line already: the remote's storage failed, what it made there was removed)
    assert_one_line_error(_proc(got["push"]), f"remote storage {disk / 'usb.git'}", "No space left on device",
                          "nothing was changed on usb")
    assert got["push_again"][0] == 0, got["push_again"]
    assert got["clone_pushed"][0] == 0 and got["fsck_pushed"][0] == 0, (got["clone_pushed"], got["fsck_pushed"])

    assert_one_line_error(_proc(got["gc"]), "txgit gc: no space left on device", str(disk / "g" / ".txgit"))
    assert got["gc_fsck"][0] == 0 and "checked 40 commits, 120 blobs: ok" in got["gc_fsck"][1], got["gc_fsck"]
    assert got["gc_again"][0] == 0 and "into one pack" in got["gc_again"][1], got["gc_again"]
    assert got["gc_fsck_again"][0] == 0, got["gc_fsck_again"]
    assert got["gc_log"][1].count("\n") == 40


@small_disk
def test_a_kernel_on_a_full_disk_keeps_its_values_and_commits_them_once_there_is_room(tmp_path):
    """ENOSPC, written by the kernel's background writer and its git helper process. Before: `%txgit
    commit` failed its cell with `OSError: [Errno 28] No space left on device` and a traceback, the
    auto-commit said `[Errno 28] No space left on device` without where or what to do, and `txgit
    checkout` from a terminal beside the kernel said `txgit: error: OSError: [Errno 28] No space left
    on device`."""
    got = run_on_small_disk(_REMOTE + """
from kernelutil import Kernel
assert txgit("clone", str(host / "team.git"), str(DISK / "bob"), cwd=DISK).returncode == 0
k = Kernel(DISK / "bob")
try:
    k.ok("%load_ext txgit")
    k.ok("%txgit checkout main")
    k.ok("b = 2")
    fill(1000)
    # small values commit in the few pages left; a large array cannot
    shown = [k.run("import numpy as np\\nlarge = np.ones(1_000_000)\\nc = 3") for _ in range(1)]
    shown += [k.run("d = 4"), k.run("%txgit commit -m by-hand")]
    report(cells=[[r.status, r.stderr, r.error, r.traceback] for r in shown])
    report(values=k.value("(a, b, c, d, float(large.sum()))"))
    run("fsck_full", "fsck", cwd=DISK / "bob")
    free()
    r = k.run("e = 5")
    k.settle()
    report(cell_after=[r.status, r.stderr])
    run("log", "log", "--oneline", cwd=DISK / "bob")
    run("show", "show", "main", cwd=DISK / "bob")
    fill(1000)
    run("terminal_checkout", "checkout", "big", cwd=DISK / "bob")  # asks the kernel, which cannot load it
    r = k.run("%txgit checkout big")  # its 8 MB come from the folder remote: they cannot land
    report(checkout=[r.status, r.stderr, r.error, r.traceback])
    report(after_checkout=k.value("sorted(k for k in globals() if k in ('a', 'b', 'c', 'd', 'e', 'large', 'big'))"))
    run("status_full", "status", cwd=DISK / "bob")
    free()
    r = k.run("%txgit checkout big")
    report(checkout_after=[r.status, r.stderr, r.error], big=k.value("int(big.sum())"))
    run("fsck", "fsck", cwd=DISK / "bob")
finally:
    k.shutdown()
""", tmp_path, size_kb=24576)
    bob = tmp_path / "disk" / "bob" / ".txgit"
    lines = "".join(c[1] for c in got["cells"])
    assert "Traceback" not in lines and all(not c[3] for c in got["cells"][:2]), got["cells"]
    assert (f"txgit: auto-commit failed: no space left on device ({bob}): what the cells set stays in memory; "
            "free some space there and the next commit takes it") in lines, got["cells"]
    magic = got["cells"][2]
    assert magic[0] == "error" and "%txgit commit: no space left on device" in magic[2], magic
    assert "OSError" not in magic[2] and len(magic[3]) <= 1, magic
    assert got["values"] == [1, 2, 3, 4, 1_000_000.0]
    assert got["fsck_full"][0] == 0, got["fsck_full"]
    # (its stderr may still say why the previous cell's background commit failed: that is reported
    # at the next cell; this cell's commit takes what it held)
    assert got["cell_after"][0] == "ok", got["cell_after"]
    assert got["log"][0] == 0 and "cell" in got["log"][1].splitlines()[0], got["log"]
    for name in ("a ", "b ", "c ", "d ", "e ", "large "):  # everything the cells set is in main's tip
        assert f"\n{name}" in got["show"][1], (name, got["show"][1])
    assert_one_line_error(_proc(got["terminal_checkout"]), "'s checkout: no space left on device", str(bob),
                          "the kernel keeps its values; free some space there and run it again")
    checkout = got["checkout"]
    assert checkout[0] == "error" and "%txgit checkout: no space left on device" in checkout[2], checkout
    assert "Traceback" not in checkout[1] and len(checkout[3]) <= 1, checkout
    assert got["after_checkout"] == ["a", "b", "c", "d", "e", "large"]  # the kernel kept its values
    assert "On branch main" in got["status_full"][1] or "on branch main" in got["status_full"][1], got["status_full"]
    assert got["checkout_after"][0] == "ok" and got["big"] == 499999500000, got["checkout_after"]
    assert got["fsck"][0] == 0, got["fsck"]


@small_disk
def test_load_ext_on_a_full_disk_fails_in_one_line_and_loads_once_there_is_room(tmp_path):
    """ENOSPC writing the kernel's record while attaching. Before: `%load_ext txgit` failed its cell with
    a traceback ending in `OSError: [Errno 28] No space left on device` (kernel.py's record write)."""
    got = run_on_small_disk("""
from kernelutil import Kernel
from txgit import Workspace
ws = Workspace.init(DISK / "ws")
ws.commit({"z": 0}, "zero")
fill(0)
k = Kernel(DISK / "ws")
try:
    r = k.run("%load_ext txgit")
    report(load=[r.status, r.stderr, r.error, r.traceback])
    k.ok("a = 1")
    report(kernels=sorted(p.name for p in (ws.dir / "kernels").glob("*")))
    free()
    r = k.run("%load_ext txgit")
    report(again=[r.status, r.stdout, r.stderr, r.error])
    k.ok("b = 2")
    k.settle()
    p = txgit("show", "HEAD", cwd=DISK / "ws")
    report(show=p.stdout)
finally:
    k.shutdown()
""", tmp_path, size_kb=4096)
    status, stderr, error, traceback = got["load"]
    assert status == "error" and "Traceback" not in stderr and len(traceback) <= 1, got["load"]
    assert f"%load_ext txgit: no space left on device ({tmp_path / 'disk' / 'ws'}" in error, error
    assert "free some space there and run `%load_ext txgit` again" in error, error
    assert [n for n in got["kernels"] if n != "claim.lock"] == []  # no half-written record
    assert got["again"][0] == "ok", got["again"]
    assert "\nb " in got["show"], got["show"]


@small_disk
def test_an_ops_log_line_and_a_kernel_record_cut_short_by_a_full_disk_break_no_later_read(tmp_path):
    """ENOSPC on small appends and records. Before: the ops-log append wrote what fitted and returned
    (os.write's short count ignored), and the next entry, appended to that cut line, read as damaged:
    lost; a kernel record's write left its temp file (`PID.tmp`) in the kernels folder."""
    got = run_on_small_disk("""
from txgit import Workspace
from txgit.sessions import opslog
from txgit.sessions.kernel import register_kernel, update_kernel
ws = Workspace.init(DISK / "ws")
ws.commit({"a": 1}, "one")
commit = ws.head().id
opslog.append(ws.dir, commit, {"code": "first"})
register_kernel(ws, "conn.json", pid=4242, branch="main")
fill(0)
try:
    opslog.append(ws.dir, commit, {"code": "x" * 6000})  # more than the last page of the log holds
    report(append="ok")
except OSError as e:
    report(append=e.errno)
try:
    update_kernel(ws, "other", pid=4242)
    register_kernel(ws, "conn.json", pid=4343, branch="main")
    report(record="ok")
except OSError as e:
    report(record=e.errno)
report(kernels=sorted(p.name for p in (ws.dir / "kernels").iterdir()))
free()
opslog.append(ws.dir, commit, {"code": "third"})
report(read=[e["cell"]["code"][:10] for e in opslog.read(ws.dir)[0]])
report(record_text=(ws.dir / "kernels" / "4242.json").read_text())
""", tmp_path, size_kb=2048)
    assert got["append"] == 28 and got["record"] == 28, got
    assert got["read"] == ["first", "third"]  # the cut entry is skipped; the one after it is whole
    assert got["kernels"] == ["4242.json", "claim.lock"] or got["kernels"] == ["4242.json"], got["kernels"]
    assert '"branch": "main"' in got["record_text"]  # the old record, whole


@small_disk
@pytest.mark.parametrize("shared", ["s3"], indirect=True)
def test_pull_and_fetch_from_git_daemon_and_s3_on_a_full_disk_move_nothing_and_complete_once_there_is_room(
        tmp_path, shared):
    """ENOSPC while git objects (from git daemon) and blobs (from moto's S3) come in. Before: a traceback
    ending in `OSError: [Errno 28]` (fetch --eager); pull said "cannot reach remote 'origin' (…): cannot
    extend packfile '…': No space left on device": the remote answered, the disk here was full."""
    url, add, clone, _env = shared
    got = run_on_small_disk(f"""
import numpy as np
from txgit import Workspace
host = DISK.parent
def run(name, *args, cwd):
    p = txgit(*args, cwd=cwd)
    report(**{{name: [p.returncode, p.stdout, p.stderr]}})
alice = Workspace.init(host / "alice")
alice.commit({{"__name__": "__main__", "a": 1}}, "small")
assert txgit("remote", "add", "origin", {url!r}, *{add!r}, cwd=alice.root).returncode == 0
assert txgit("push", cwd=alice.root).returncode == 0
p = txgit("clone", {url!r}, *{clone!r}, str(DISK / "bob"), cwd=DISK)
assert p.returncode == 0, p.stderr
bob = Workspace.open(DISK / "bob")
before = bob.head().id
alice.commit({{"__name__": "__main__", "a": 2, "big": np.arange(1_000_000)}}, "big")
for i in range(30):  # enough git objects that the fetch cannot land in what is left
    alice.commit({{"__name__": "__main__", "a": 2, "big": alice.load("big"), **{{f"x{{j}}": [i, j] for j in range(20)}}}}, f"c{{i}}")
assert txgit("push", cwd=alice.root).returncode == 0
fill(0)
run("pull", "pull", cwd=bob.root)
report(head_after_pull=Workspace.open(bob.root).head().id == before)
run("fsck_full", "fsck", cwd=bob.root)
free()
run("pull_again", "pull", cwd=bob.root)
fill(3000)
run("fetch", "fetch", "--eager", cwd=bob.root)
run("fsck_fetch", "fsck", cwd=bob.root)
free()
run("fetch_again", "fetch", "--eager", cwd=bob.root)
run("fsck", "fsck", cwd=bob.root)
report(big=int(Workspace.open(bob.root).load("big", trust=True).sum()))
""", tmp_path, size_kb=16384)
    bob = tmp_path / "disk" / "bob" / ".txgit"
    assert_one_line_error(_proc(got["pull"]), f"remote 'origin' ({url}): no space left on device ({bob}",
                          "nothing was lost; free some space there and run it again")
    assert got["head_after_pull"] is True and got["fsck_full"][0] == 0, got
    assert got["pull_again"][0] == 0, got["pull_again"]
    assert_one_line_error(_proc(got["fetch"]), f"txgit fetch: no space left on device ({bob}")
    assert got["fsck_fetch"][0] == 0 and "not downloaded yet" in got["fsck_fetch"][1], got["fsck_fetch"]
    assert got["fetch_again"][0] == 0 and got["fsck"][0] == 0 and "not downloaded" not in got["fsck"][1], got
    assert got["big"] == 499999500000


@small_disk
def test_a_reflog_line_cut_short_by_a_full_disk_does_not_become_a_commit_that_never_was(tmp_path):
    """ENOSPC inside libgit2's reflog append: `txgit checkout HEAD~1` on a full disk wrote the first 50
    bytes of HEAD's reflog line (what fitted in its last page) and failed. Before: the next commit's
    line, appended to that cut one, read as an entry naming 78e11dfc… (half of one id, half of
    another): fsck failed ("reflog of HEAD names …, which is not a readable commit") and gc refused
    from then on. Now the workspace lock cuts such a line off before anything appends."""
    got = run_on_small_disk("""
from txgit import Workspace
ws = Workspace.init(DISK / "w")
ws.commit({"a": 1}, "one")
ws.commit({"a": 2}, "two")
log = ws.dir / "repo.git" / "logs" / "HEAD"
last = log.read_bytes().splitlines(keepends=True)[-1]
base = len(last) - len(b"two")  # a commit's line is this long plus its message
room = (4096 - log.stat().st_size % 4096) - 50 - base  # the next line ends 50 bytes before a page ends
ws.commit({"a": 3}, "x" * (room if room > 0 else room + 4096))
fill(0)
p = txgit("checkout", "HEAD~1", cwd=DISK / "w")
report(checkout=[p.returncode, p.stdout, p.stderr], cut=not log.read_bytes().endswith(b"\\n"))
free()
Workspace.open(DISK / "w").commit({"a": 4}, "four")
for name, args in (("fsck", ["fsck"]), ("gc", ["gc"]), ("log", ["log", "--oneline"])):
    p = txgit(*args, cwd=DISK / "w")
    report(**{name: [p.returncode, p.stdout, p.stderr]})
""", tmp_path, size_kb=2048)
    assert_one_line_error(_proc(got["checkout"]), "txgit checkout: no space left on device")
    assert got["cut"] is True  # what the full disk left: the premise of this test
    assert got["fsck"][0] == 0 and "checked 4 commits" in got["fsck"][1], got["fsck"]
    assert got["gc"][0] == 0, got["gc"]
    assert got["log"][1].splitlines()[0].endswith("four"), got["log"]


@small_disk
def test_the_packers_on_a_full_disk_leave_the_store_valid_and_no_temp_file(tmp_path):
    """ENOSPC while packing: the blob packer (what a commit runs now and then), the history packer
    (gc's) and the background history packer a commit starts. Each writes under a temp name and
    renames; on failure its temp file (which would hold the space it has) is removed. Before: the
    history packer left its staging folder (`txgit-pack-tmp/pack/`, empty here: libgit2 removed its
    temp pack) until the next pack; the rest held already."""
    got = run_on_small_disk("""
import os
from txgit import Workspace, gitpack
ws = Workspace.init(DISK / "g")
ws.history.auto_pack = False
ws.auto_pack_blobs = False
ns = {"__name__": "__main__"}
for i in range(60):
    ns.update({f"v{j}": [i, j] * 50 for j in range(3)})
    ws.commit(ns, f"c{i}")
def leftovers():
    return sorted(str(p.relative_to(DISK)) + ("/" if p.is_dir() else f" {p.stat().st_size}") for p in (DISK / "g").rglob("*") if "tmp" in str(p.relative_to(DISK)) or p.suffix in (".pack", ".idx"))
fill(8)
for what, pack in (("blobs", ws.store.pack_loose), ("history", ws.history.pack)):
    try:
        pack()
        report(**{what: "packed"})
    except Exception as e:
        report(**{what: type(e).__name__ + ": " + str(e)})
os.waitpid(gitpack.start_background(ws.history.repo.path), 0)  # (its output goes nowhere)
report(left=leftovers())
p = txgit("fsck", cwd=DISK / "g")
report(fsck=[p.returncode, p.stdout, p.stderr])
free()
ws.store.pack_loose()
ws.history.pack()
p = txgit("fsck", cwd=DISK / "g")
report(fsck_after=[p.returncode, p.stdout, p.stderr], packed=leftovers())
""", tmp_path, size_kb=8192)
    assert "No space left on device" in got["blobs"] and "No space left on device" in got["history"], got
    assert got["left"] == [], got["left"]
    assert got["fsck"][0] == 0 and "checked 60 commits, 180 blobs: ok" in got["fsck"][1], got["fsck"]
    assert got["fsck_after"][0] == 0 and len([n for n in got["packed"] if ".pack " in n]) == 2, got


# -- the same write paths under a file size limit (EFBIG), which every OS allows --------------------------
def _limited(limit: int, *args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "txgit", *args], cwd=cwd, capture_output=True, text=True,
                          preexec_fn=functools.partial(limit_file_size, limit), timeout=300)


def test_commit_clone_and_gc_past_a_file_size_limit_say_one_line_and_complete_without_it(tmp_path, run_txgit):
    """EFBIG (RLIMIT_FSIZE): a pack of a large state, a clone's fetched chunks, gc's packs. Before: a
    traceback ending in `OSError: [Errno 27] File too large`."""
    import numpy as np

    from txgit import Workspace

    script = tmp_path / "train.py"
    script.write_text("import numpy as np\nbig = np.arange(1_000_000)\n")
    ws = Workspace.init(tmp_path / "ws")
    ran = _limited(256 * 1024, "run", str(script), cwd=ws.root)
    assert_one_line_error(ran, "txgit run: file too large for this process's file size limit", str(ws.dir),
                          "raise the limit (`ulimit -f`) and run it again")
    assert ws.fsck().ok and "big" not in ws.state().variables  # the block before it is committed
    run_txgit("run", str(script), cwd=ws.root, check=True)
    assert int(ws.load("big").sum()) == 499999500000

    alice = Workspace.init(tmp_path / "alice")
    alice.commit({"__name__": "__main__", "big": np.arange(1_000_000)}, "big")
    run_txgit("remote", "add", "origin", str(tmp_path / "team.git"), cwd=alice.root, check=True)
    run_txgit("push", cwd=alice.root, check=True)
    cloned = _limited(512 * 1024, "clone", "--eager", str(tmp_path / "team.git"), "bob", cwd=tmp_path)
    assert_one_line_error(cloned, "cannot clone", "file too large", "nothing was cloned", "clone again")
    assert not (tmp_path / "bob").exists()
    run_txgit("clone", "--eager", str(tmp_path / "team.git"), "bob", cwd=tmp_path, check=True)

    g = Workspace.init(tmp_path / "g")
    ns = {"__name__": "__main__"}
    for i in range(40):
        ns.update({f"v{j}": [i, j] * 50 for j in range(3)})
        g.commit(ns, f"c{i}")
    packed = _limited(8 * 1024, "gc", cwd=g.root)
    assert_one_line_error(packed, "txgit gc: file too large")
    assert g.fsck().ok
    assert run_txgit("gc", cwd=g.root, check=True).returncode == 0 and g.fsck().ok
    assert len(list(g.log())) == 40


def test_a_kernel_past_a_file_size_limit_keeps_its_values_and_commits_them_once_the_limit_is_raised(tmp_path):
    """EFBIG (RLIMIT_FSIZE, set in the kernel by a cell: its writer thread and its git helper are under
    it), the kernel's write paths where no tmpfs can be mounted. Before: `%txgit commit` failed with
    `OSError: [Errno 27] File too large` and a traceback."""
    from kernelutil import Kernel

    from txgit import Workspace

    ws = Workspace.init(tmp_path / "ws")
    k = Kernel(ws.root)
    try:
        k.ok("%load_ext txgit")
        k.ok("a = 1")
        k.ok("import resource\nhard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]\n"
             "resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, hard))")
        k.ok("import numpy as np\nbig = np.arange(1_000_000)")
        told = k.run("b = 2")
        magic = k.run("%txgit commit -m by-hand")
        k.ok("resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))")
        k.ok("c = 3")
        k.settle()
        assert k.value("(a, b, c, int(big.sum()))") == (1, 2, 3, 499999500000)
    finally:
        k.shutdown()
    assert (f"txgit: auto-commit failed: file too large for this process's file size limit ({ws.dir}): what the "
            "cells set stays in memory; raise the limit (`ulimit -f`) and the next commit takes it") in told.stderr
    assert magic.status == "error" and "%txgit commit: file too large" in magic.error, magic.error
    assert len(magic.traceback) <= 1, magic.traceback
    assert ws.fsck().ok
    assert int(ws.load("big").sum()) == 499999500000 and ws.load("c") == 3


@small_disk
def test_an_init_cut_short_by_a_full_disk_leaves_no_half_made_history_and_works_once_there_is_room(tmp_path):
    """ENOSPC at every point of `txgit init` (libgit2 writes its template files one by one). Before: with
    8 KiB free, init died in a traceback and left a repo.git without HEAD, which every later command
    (`init` again, `status`, `fsck`) met with a traceback ('Repository not found')."""
    found = run_on_small_disk("""
        import shutil
        from txgit import Workspace
        cut, whole = [], []
        for leave in range(0, 40, 2):
            root = DISK / f"w{leave}"
            fill(leave)
            try:
                Workspace.init(root)
                made = True
            except Exception as e:
                made = False
                cut.append([leave, type(e).__name__, (root / ".txgit" / "repo.git").exists(),
                            sorted(p.name for p in (root / ".txgit").glob("repo.git*"))
                            if (root / ".txgit").exists() else []])
            free()
            ws = Workspace.open(root) if made else Workspace.init(root)
            ws.commit({"__name__": "__main__", "x": leave}, "after")
            whole.append([leave, ws.fsck().ok, ws.load("x") == leave])
            shutil.rmtree(root)
        fill(8)
        (DISK / "cli").mkdir()
        p = txgit("init", cwd=DISK / "cli")
        free()
        again = txgit("init", cwd=DISK / "cli")
        report(cut=cut, whole=whole, cli=[p.returncode, p.stdout, p.stderr], again=again.returncode)
    """, tmp_path, size_kb=2048)
    assert len(found["cut"]) >= 3  # several cut points were met, none left a history behind
    assert all(not exists and not left for _, _, exists, left in found["cut"]), found["cut"]
    assert all(ok and loaded for _, ok, loaded in found["whole"]), found["whole"]
    assert_one_line_error(_proc(found["cli"]), "txgit init: no space left on device", "nothing was lost",
                          "free some space there and run it again")
    assert found["again"] == 0


def test_a_history_folder_that_is_not_a_repository_is_one_line_not_a_traceback(tmp_path, run_txgit):
    """A repo.git left half-made (by an older txgit's init cut short, or damaged by hand): every command
    said `pygit2.GitError: Repository not found` in a traceback."""
    history = tmp_path / ".txgit" / "repo.git"
    (history / "hooks").mkdir(parents=True)
    (history / "description").write_text("Unnamed repository\n")
    for args in (["status"], ["log"], ["fsck"], ["commit", "-m", "x"]):
        p = run_txgit(*args, cwd=tmp_path)
        assert_one_line_error(p, "cannot be opened", str(history), "remove that folder and run `txgit init`")
