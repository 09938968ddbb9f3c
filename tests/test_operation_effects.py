"""Effects an operation records: counting the machine's cores is not one (issue 5's benchmark found it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from txgit.sessions.operations import OperationWatch
from txgit.sessions.tracking import analyze_code


def _watched(root: Path, run):
    """The operation record of ``run()`` watched as a cell's body."""
    w = OperationWatch(root)
    w.start("pass", analyze_code("pass"), [], {}, [])
    try:
        run()
    finally:
        op = w.stop(0.1)
    return op


def watch(root: Path, run) -> list[str]:
    return _watched(root, run).effects


@pytest.mark.skipif(shutil.which("lscpu") is None, reason="needs lscpu (Linux)")
def test_counting_cores_as_loky_does_is_not_an_effect(tmp_path: Path) -> None:
    # loky runs exactly this the first time a kernel fits an OpenMP estimator (HistGradientBoosting):
    # recorded as "runs other programs", that cell could never be reused.
    assert watch(tmp_path, lambda: subprocess.run("lscpu --parse=core".split(), capture_output=True)) == []
    assert watch(tmp_path, lambda: subprocess.run([shutil.which("lscpu"), "--parse=core"],
                                                  capture_output=True)) == []


def test_other_programs_still_are(tmp_path: Path) -> None:
    assert watch(tmp_path, lambda: subprocess.run([sys.executable, "-c", "pass"])) == ["runs other programs"]
    if shutil.which("lscpu"):  # the same program with other arguments is not the core count
        assert watch(tmp_path, lambda: subprocess.run(["lscpu", "--json"], capture_output=True)) == \
            ["runs other programs"]


def test_events_the_watch_does_not_act_on_return_at_once(tmp_path: Path, monkeypatch) -> None:
    """txgit's audit hook is called for every audit event of the kernel, for good: ``copy.deepcopy``
    raises ``builtins.id`` per object it copies (matplotlib deep-copies transforms and paths while it
    draws), and each call asked which watch runs (``_watching``). Only the events it acts on do now;
    those are still seen (a file read, another program)."""
    import copy

    from txgit.sessions import operations

    asked = []
    real = operations._watching
    monkeypatch.setattr(operations, "_watching", lambda: asked.append(1) or real())
    box = [[i] for i in range(200)]
    effects = watch(tmp_path, lambda: [copy.deepcopy(box) for _ in range(5)])
    assert effects == [] and len(asked) < 20, len(asked)  # ~1,000 builtins.id events before
    assert watch(tmp_path, lambda: subprocess.run([sys.executable, "-c", "pass"])) == ["runs other programs"]


def test_files_read_are_recorded_by_their_real_path_through_links_changed_mid_cell(tmp_path: Path) -> None:
    """Opens resolve folders once per cell, but a folder link retargeted in the cell, and a link to a
    file, still record the file really read."""
    import os

    from txgit.sessions.operations import _Watch

    for d in ("v1", "v2"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "x.txt").write_text(d)
    (tmp_path / "cur").symlink_to(tmp_path / "v1")
    (tmp_path / "v1" / "alias.txt").symlink_to(tmp_path / "v2" / "x.txt")
    w = _Watch(str(tmp_path), ())
    w.opened(str(tmp_path / "cur" / "x.txt"), "r", 0)
    (tmp_path / "cur").unlink()
    (tmp_path / "cur").symlink_to(tmp_path / "v2")
    w.opened(str(tmp_path / "cur" / "x.txt"), "r", 0)
    w.opened(str(tmp_path / "v1" / "alias.txt"), "r", 0)
    w.opened(str(tmp_path / "cur" / "new.txt"), "w", 0)
    real = os.path.realpath(tmp_path)
    assert w.read == {f"{real}/v1/x.txt", f"{real}/v2/x.txt"} and w.written == {f"{real}/v2/new.txt"}


def test_rng_probe_does_not_import_numpy_random_and_sees_it_once_imported():
    """numpy 2 imports numpy.random on first use: until then its global generator does not exist
    (nothing drew from it), and probing it must not import it (~8 ms in a cell's hook)."""
    code = (
        "import sys, numpy\n"
        "from txgit.sessions.operations import rng_dependence, rng_states\n"
        "before = rng_states()\n"
        "assert 'numpy.random.mtrand' not in sys.modules and 'numpy' not in before, before\n"
        "x = numpy.random.rand(3)\n"  # a cell that draws from it first
        "after = rng_states()\n"
        "dep = rng_dependence({'numpy', 'random', 'rand', 'x'}, before, after)\n"
        "assert dep['numpy'].startswith('before:fresh:'), dep\n"  # a fresh random state: not reusable
        "again = rng_states()\n"
        "numpy.random.rand(1)\n"
        "assert rng_states()['numpy'] != again['numpy']\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_numpy_rng_digest_sees_a_cached_normal_set_on_unchanged_words():
    """``set_state`` can give the generator a cached normal without moving its words: the next normal
    drawn is then that one, so the digest must change (its cached normal is read in place too)."""
    code = (
        "import numpy as np, blake3\n"
        "from txgit.sessions.operations import rng_states\n"
        "def full():\n"
        "    st = np.random.get_state(); h = blake3.blake3(st[1].tobytes()); h.update(repr(st[2:]).encode())\n"
        "    return h.hexdigest()[:32]\n"
        "np.random.seed(0)\n"
        "a = rng_states()['numpy']\n"
        "assert a == rng_states()['numpy'] == full()\n"
        "st = np.random.get_state()\n"
        "np.random.set_state(st[:3] + (1, 0.25))\n"
        "b = rng_states()['numpy']\n"
        "assert b != a and b == full(), (a, b, full())\n"
        "np.random.set_state(st)\n"
        "assert rng_states()['numpy'] == a\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_numpy_rng_digest_read_in_place_sees_every_draw():
    """The global generator's digest is read from its words in place when they did not move (issue 17:
    ``get_state()`` twice per cell cost ~120 us); it must still change with every draw, a cached normal
    drawn without moving the words included, and equal what a full ``get_state()`` read gives."""
    code = (
        "import numpy as np, blake3\n"
        "from txgit.sessions.operations import rng_states\n"
        "def full():\n"
        "    st = np.random.get_state(); h = blake3.blake3(st[1].tobytes()); h.update(repr(st[2:]).encode())\n"
        "    return h.hexdigest()[:32]\n"
        "np.random.seed(0)\n"
        "a = rng_states()['numpy']\n"
        "assert a == rng_states()['numpy'] == full()\n"
        "np.random.rand(1)\n"
        "b = rng_states()['numpy']\n"
        "assert b != a and b == full()\n"
        "np.random.seed(0)\n"
        "assert rng_states()['numpy'] == a\n"
        "np.random.standard_normal()\n"  # draws a pair: one is cached, the words moved
        "c = rng_states()['numpy']\n"
        "assert c == full() and np.random.get_state()[3] == 1\n"
        "np.random.standard_normal()\n"  # the cached one: the words stay as they are
        "d = rng_states()['numpy']\n"
        "assert d != c and d == full() and rng_states()['numpy'] == d\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def _watched_env(root: Path, run) -> dict[str, str]:
    op = _watched(root, run)
    return {k: v for k, v in op.env.items() if k.startswith("$TXGIT_TEST_")}


def _exceptions_raised(run) -> int:
    """Exception events in Python frames while ``run`` runs (raised, caught, re-raised: each counts)."""
    count = [0]

    def local(frame, event, arg):
        count[0] += event == "exception"
        return local

    sys.settrace(lambda frame, event, arg: local)
    try:
        run()
    finally:
        sys.settrace(None)
    return count[0]


def test_a_watched_read_of_a_missing_environment_variable_raises_nothing(tmp_path: Path, monkeypatch) -> None:
    """matplotlib's ``findfont`` reads ``os.getenv('MPL_IGNORE_SYSTEM_FONTS')`` (not set) ~400 times per
    drawn 4x4 figure: each read raised ``KeyError`` in ``os.environ``, caught and raised again by
    txgit's wrapper, caught by ``Mapping.get``, and hashed ``None`` again (1.3 -> 4.6 us a read under
    py-spy). Now no exception, one digest; still an input of the cell, absent or set."""
    from txgit.sessions import process

    monkeypatch.delenv("TXGIT_TEST_MISSING", raising=False)
    digests = []
    real = process._value_digest
    monkeypatch.setattr(process, "_value_digest", lambda v: digests.append(v) or real(v))
    raised: list[int] = []

    def reads() -> None:
        raised.append(_exceptions_raised(lambda: [os.getenv("TXGIT_TEST_MISSING") for _ in range(50)]))
        assert os.environ.get("TXGIT_TEST_MISSING", "dflt") == "dflt"
        assert "TXGIT_TEST_MISSING" not in os.environ
        with pytest.raises(KeyError):
            os.environ["TXGIT_TEST_MISSING"]

    assert _watched_env(tmp_path, reads) == {"$TXGIT_TEST_MISSING": process.ABSENT}
    assert raised == [0] and digests.count(None) == 1  # (the others: the settings the watch starts with)
    monkeypatch.setenv("TXGIT_TEST_SET", "a")
    assert _watched_env(tmp_path, lambda: os.getenv("TXGIT_TEST_SET")) == \
        {"$TXGIT_TEST_SET": process.digest("$TXGIT_TEST_SET")}
    assert _watched_env(tmp_path, lambda: "TXGIT_TEST_SET" in os.environ) == \
        {"$TXGIT_TEST_SET": process.digest("$TXGIT_TEST_SET")}
    with pytest.raises(TypeError):  # as os.environ says it
        os.environ.get(1)


def test_an_environment_variable_s_first_read_is_the_cell_s_input(tmp_path: Path, monkeypatch) -> None:
    """A cell that reads a variable and then sets it depends on the value it found, not on its own."""
    from txgit.sessions import process

    monkeypatch.delenv("TXGIT_TEST_LATE", raising=False)

    def read_set_read() -> None:
        assert os.getenv("TXGIT_TEST_LATE") is None
        os.environ["TXGIT_TEST_LATE"] = "set"
        assert os.getenv("TXGIT_TEST_LATE") == "set" and os.environ["TXGIT_TEST_LATE"] == "set"

    try:
        assert _watched_env(tmp_path, read_set_read) == {"$TXGIT_TEST_LATE": process.ABSENT}
    finally:
        os.environ.pop("TXGIT_TEST_LATE", None)
