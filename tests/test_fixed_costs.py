"""The fixed cost of every cell (issue 17): probes txgit takes before and after each cell are
computed once and cheaply when nothing changed, and still see every change.

Costs are counted (walks, calls), never timed: the machine is shared.
"""

from __future__ import annotations

import sys

import pandas as pd
import pytest

from txgit.sessions import process


@pytest.fixture
def walks(monkeypatch):
    """Counts the walks of pandas' nested option dicts."""
    count = [0]
    real = process._OptionLeaves._walk

    def counting(self, root, registered):
        count[0] += 1
        real(self, root, registered)

    monkeypatch.setattr(process._OptionLeaves, "_walk", counting)
    return count


def _reference() -> str:
    config = pd._config.config
    return repr(sorted(process._changed_options(config._global_config, config._registered_options)))


def test_pandas_options_are_walked_again_only_when_their_dicts_change(walks):
    """Twice per cell, all of pandas' ~150 options were walked and compared; now a flat list is kept,
    and a new option (registered when a pandas module is first imported) makes it walk again."""
    name = "txgit_test.fixed_cost_option"
    process._pandas_options = process._OptionLeaves()
    before = process.digest("settings:pandas")
    assert process.digest("settings:pandas") == before and walks[0] == 1
    try:
        pd.set_option("display.max_columns", 3)
        changed = process.digest("settings:pandas")
        assert changed != before and walks[0] == 1  # a value set: no walk, still seen
        assert process._settings_text("pandas") == _reference()
        pd.reset_option("display.max_columns")
        assert process.digest("settings:pandas") == before

        pd._config.config.register_option(name, 1)  # a module imported later registers its own
        assert process.digest("settings:pandas") == before and walks[0] == 2
        pd.set_option(name, 2)
        assert process.digest("settings:pandas") not in (before, changed) and walks[0] == 2
        assert process._settings_text("pandas") == _reference()
        assert "txgit_test.fixed_cost_option" in process._settings_text("pandas")
    finally:
        pd.reset_option("display.max_columns")
        config = pd._config.config
        config._registered_options.pop(name, None)
        config._global_config.pop("txgit_test", None)
    assert process._settings_text("pandas") == _reference() and walks[0] == 3  # (a dict removed: walked)


def test_an_option_dict_replaced_by_hand_is_walked_again(walks):
    """Code that replaces one of pandas' nested dicts (not through set_option) is still seen."""
    process._pandas_options = process._OptionLeaves()
    config = pd._config.config
    before = process.digest("settings:pandas")
    display = config._global_config["display"]
    try:
        config._global_config["display"] = {**display, "max_columns": 7}
        assert process.digest("settings:pandas") != before and walks[0] == 2
        assert process._settings_text("pandas") == _reference()
    finally:
        config._global_config["display"] = display
    assert process.digest("settings:pandas") == before


def test_settings_are_described_again_only_when_they_changed(monkeypatch):
    """settings_digests runs twice per cell: settings unchanged since the last call are compared, not
    described and digested again; a changed one (numpy's, pandas', sklearn's) is."""
    import numpy as np
    import sklearn

    described = []
    real = process._settings_text
    monkeypatch.setattr(process, "_settings_text", lambda lib: described.append(lib) or real(lib))
    first = process.settings_digests()
    described.clear()
    assert process.settings_digests() == first
    assert not {"pandas", "numpy", "sklearn"} & set(described)
    old = np.seterr(over="raise")
    try:
        pd.set_option("display.max_rows", 5)
        sklearn.set_config(assume_finite=True)
        changed = process.settings_digests()
        for lib in ("pandas", "numpy", "sklearn"):
            assert changed["settings:" + lib] != first["settings:" + lib]
            assert changed["settings:" + lib] == process.digest("settings:" + lib)  # what reuse compares
    finally:
        np.seterr(**old)
        pd.reset_option("display.max_rows")
        sklearn.set_config(assume_finite=False)
    assert process.settings_digests() == first


def test_pythons_generator_is_copied_again_only_when_it_moved():
    """Each cell reads Python's generator four times (before, after, commit, record); getstate() copies
    625 words each time. Its words are read in place, and the last copy is given again while they, the
    index and the cached normal are the same: every move is still seen."""
    import random

    from txgit.sessions.operations import rng_states
    from txgit.state import libstate

    first = libstate.python_random_state(random)
    assert first == random.getstate() and libstate._python_words_readable
    assert libstate.python_random_state(random) is first and rng_states()["random"] == str(hash(first))

    def check() -> tuple:
        state = libstate.python_random_state(random)
        assert state == random.getstate() and rng_states()["random"] == str(hash(random.getstate()))
        return state

    random.random()
    moved = check()
    assert moved != first
    random.gauss(0, 1)  # draws two normals, caches one (gauss_next)
    cached = check()
    assert cached[2] is not None
    random.setstate((cached[0], cached[1], None))  # the same words without the cached normal
    assert check()[2] is None
    random.seed(1)
    seeded = check()
    random.seed(1)
    assert check() == seeded
    random.setstate(first)
    assert check() == first


def test_a_generator_a_failed_cell_drew_from_is_put_back_after_quiet_cells(ws):
    """The rollback's copy of Python's generator is the one read in place before the cell: after quiet
    cells that did not move it, a failing cell that draws still leaves it where it was."""
    import random

    from conftest import session_namespace

    from txgit.sessions.session import NamespaceSession

    ns = session_namespace()
    s = NamespaceSession(ws, ns, kind="test")
    for code in ("import random\nrandom.seed(3)", "x = 1", "y = 2"):
        s.before_cell(code)
        exec(code, ns)
        s.after_cell()
    where = random.getstate()
    code = "z = random.random() + random.gauss(0, 1)\nraise ValueError('no')"
    s.before_cell(code)
    try:
        exec(code, ns)
    except ValueError as e:
        s.after_cell(error=e)
    assert random.getstate() == where and "z" not in ns


@pytest.fixture
def numpy_copies(monkeypatch):
    """Counts the full copies of numpy's global generator (``get_state``, 624 words: ~40-60 us each)."""
    from txgit.state import libstate

    count = [0]
    real = libstate._numpy_full_state

    def counting(gen):
        count[0] += 1
        return real(gen)

    monkeypatch.setattr(libstate, "_numpy_full_state", counting)
    return count


def test_numpys_generator_is_copied_again_only_when_it_moved(numpy_copies):
    """The rollback's mark and the commit's position read numpy's global generator each cell; a quiet
    cell's reads share one copy (words, position and cached normal read in place), and every move is
    still seen: draws, a cached normal drawn without moving the words, set_state adding one to
    unchanged words, reseeding."""
    import numpy as np

    from txgit.state import libstate

    np.random.rand()
    state = libstate.LibraryState()
    state.mark()
    first = state.positions()[libstate.NUMPY_RANDOM]
    copies = numpy_copies[0]
    for _ in range(5):
        state.mark()
        assert state.positions()[libstate.NUMPY_RANDOM] == first
        assert state.rewind() == []
    assert numpy_copies[0] == copies  # nothing moved: no copy

    def moved_and_put_back(move) -> None:
        state.mark()
        before = np.random.get_state(legacy=False)
        text = state.positions()[libstate.NUMPY_RANDOM]
        move()
        assert state.positions()[libstate.NUMPY_RANDOM] != text
        assert state.rewind() == [libstate.NUMPY_RANDOM]
        after = np.random.get_state(legacy=False)
        assert (after["state"]["key"] == before["state"]["key"]).all()
        assert [after["state"]["pos"], after["has_gauss"], after["gauss"]] == [
            before["state"]["pos"], before["has_gauss"], before["gauss"]]

    moved_and_put_back(np.random.rand)
    np.random.standard_normal()  # draws two normals, caches one
    assert np.random.get_state(legacy=False)["has_gauss"] == 1
    moved_and_put_back(np.random.standard_normal)  # takes the cached one: the words do not move
    np.random.standard_normal()  # the cached one drawn: none left
    st = np.random.get_state(legacy=False)
    assert st["has_gauss"] == 0
    moved_and_put_back(lambda: np.random.set_state(dict(st, has_gauss=1, gauss=0.25)))
    moved_and_put_back(lambda: np.random.seed(7))


def test_a_frame_is_described_reading_its_dtypes_once_and_a_series_without_columns():
    """Each value a commit saves is described (its pointer file's summary); a DataFrame's ``dtypes``
    builds a new Series (~15 us) and was built twice, and a Series was asked for ``columns``, which
    pandas answers by searching its index. The descriptions stay the same."""
    import numpy as np

    from txgit.state.summary import describe

    reads: list[str] = []

    class Frame(pd.DataFrame):
        @property
        def dtypes(self):
            reads.append("dtypes")
            return super().dtypes

    class Series(pd.Series):
        def __getattr__(self, name):
            reads.append(name)
            return super().__getattr__(name)

    frame = Frame(np.zeros((3, 2)), columns=pd.MultiIndex.from_product([["a"], ["x", "y"]]))
    assert describe(frame) == ("Frame 3x2", {"shape": [3, 2], "columns": ["('a', 'x')", "('a', 'y')"],
                                             "dtypes": ["float64", "float64"]})
    assert reads == ["dtypes"]
    reads.clear()
    series = Series(np.arange(4), index=pd.MultiIndex.from_product([["a", "b"], [1, 2]]), name="n")
    assert describe(series) == ("Series 4 int64", {"shape": [4], "dtype": "int64", "name": "n"})
    assert "columns" not in reads


def test_a_quiet_cell_reads_no_commit_object_nor_a_merge_file(ws, monkeypatch):
    """Before and after every cell a session asks whether its branch moved (``follow``, the quiet
    cell's settling) and whether a merge waits. The branch's id is read from its ref alone and the state
    by that id (the commit object was read each time), and no merge waiting is one stat of the merges
    folder (the merge file's path was built and a missing file opened). Both are still seen."""
    from conftest import session_namespace

    from txgit import merging
    from txgit.history import History
    from txgit.merge import MergeInProgress
    from txgit.sessions.session import NamespaceSession
    from txgit.workspace import Workspace

    ns = session_namespace()
    s = NamespaceSession(ws, ns, kind="test")

    def cell(code: str) -> None:
        s.follow()  # as a kernel's pre_run_cell does
        s.before_cell(code)
        exec(code, ns)
        s.after_cell()

    cell("x = [1, 2]")
    reads = {"commit objects": 0, "merge files": 0}

    def counting(key, real):
        def wrapper(*args, **kwargs):
            reads[key] += 1
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(History, "tip", counting("commit objects", History.tip))
    monkeypatch.setattr(merging, "_merge_file", counting("merge files", merging._merge_file))
    committed = s.base
    for _ in range(3):
        cell("len(x)")
    assert s.base == committed and reads == {"commit objects": 0, "merge files": 0}

    # the branch moved outside the session (another process): the next cell's follow() loads it
    other = NamespaceSession(Workspace.open(ws.root), {"x": [1, 2], "y": 3}, kind="test")
    other.commit("y from elsewhere")
    cell("len(x)")
    assert ns["y"] == 3 and s.base == other.base

    # a merge waiting for its conflicts is seen, and once it is gone, no merge file is read again
    waiting = MergeInProgress(s.ref, s.base, s.base, s.base, "test", "a merge")
    merging.save_merge(ws, waiting)
    assert s.merging() is not None
    merging._clear_merge(ws, s.ref)
    reads["merge files"] = 0
    assert s.merging() is None and reads["merge files"] == 0


_started: list[str] = []  # programs started while a test below listens (an audit hook stays for the process)


def _listen(event: str, args: tuple) -> None:
    if _started and event == "subprocess.Popen":
        _started.append(str(args[1]))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the folder watch is Linux's inotify")
def test_the_folder_watch_starts_no_program_on_the_first_cell(tmp_path, monkeypatch):
    """The first cell's folder watch found libc with ctypes.util.find_library, which runs `ldconfig -p`
    (a fork of the kernel, 1-4 ms of the first cell): libc is the process's own."""
    from txgit.sessions import filewatch

    sys.addaudithook(_listen)
    monkeypatch.setattr(filewatch, "_instance", None)  # a fresh watch, as the kernel's first cell makes
    _started[:] = ["listening"]
    try:
        watch = filewatch.FolderWatch(str(tmp_path))
        watch.start()
        (tmp_path / "data.csv").write_text("a\n1\n")
        read, written, lost = watch.stop()
    finally:
        started, _started[:] = _started[1:], []
    assert started == []
    assert written == {str(tmp_path / "data.csv")} and not lost  # and it still watches


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the folder watch is Linux's inotify")
def test_reading_the_folder_watch_keeps_the_gil(tmp_path, monkeypatch):
    """Each cell's hooks read the watch's queue twice. ``os.read`` released the GIL for that system
    call, and a thread waiting for it (the background writer) took it, for up to a switch interval,
    in the middle of the hook (in-process 03.05: 25-46 ms of such waits a notebook). The queue's fd
    never blocks: it is read holding the GIL, and a waiting thread gets no turn from it."""
    import threading
    import time

    from txgit.sessions import filewatch

    monkeypatch.setattr(filewatch, "_instance", None)
    watch = filewatch.FolderWatch(str(tmp_path))
    watch.start()
    turns, stop = [0], [False]

    def waiting_for_the_gil() -> None:  # as the writer does between its system calls
        while not stop[0]:
            turns[0] += 1
            time.sleep(0)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(100.0)  # no forced switch: only a released GIL lets the thread run
    thread = threading.Thread(target=waiting_for_the_gil, daemon=True)
    try:
        thread.start()
        time.sleep(0.01)  # (it runs while we sleep, and then waits for the GIL)
        before = turns[0]
        for _ in range(20000):
            watch.start()
        during = turns[0] - before
    finally:
        stop[0] = True
        sys.setswitchinterval(interval)
        thread.join()
    assert during == 0
    (tmp_path / "out.csv").write_text("a\n")  # and the queue is still read
    read, written, lost = watch.stop()
    assert written == {str(tmp_path / "out.csv")} and not lost


def test_a_commit_reads_the_git_config_only_when_it_changed(ws, tmp_path, monkeypatch):
    """Each commit opened the global git config for its author (~0.1 ms of the background writer's CPU
    under the kernel's GIL). It is read again when the file or the variables that decide the author
    change: an edit of the same size, another file, a variable set."""
    import os

    import pygit2
    from pygit2.enums import ConfigLevel

    from txgit import history

    for var in ("GIT_AUTHOR_NAME", "TXGIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "TXGIT_AUTHOR_EMAIL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(history, "_author_seen", None, raising=False)  # what another test's commits left
    home = tmp_path / "home"
    home.mkdir()
    saved = pygit2.settings.search_path[ConfigLevel.GLOBAL]
    opened = []
    real = pygit2.Config.get_global_config

    def counted():
        opened.append(1)
        return real()

    monkeypatch.setattr(pygit2.Config, "get_global_config", staticmethod(counted))
    pygit2.settings.search_path[ConfigLevel.GLOBAL] = str(home)
    try:
        config = home / ".gitconfig"
        config.write_text("[user]\n\tname = Ann\n\temail = ann@example.org\n")
        authors = []
        for i in range(3):
            ws.commit({"x": i}, f"c{i}")
            authors.append(ws.log(max_count=1)[0].author)
        assert len(opened) == 1  # read once for three commits
        stat = config.stat()
        config.write_text("[user]\n\tname = Bob\n\temail = bob@example.org\n")  # same size
        os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same mtime: the ctime moved
        ws.commit({"x": 3}, "c3")
        authors.append(ws.log(max_count=1)[0].author)
        monkeypatch.setenv("TXGIT_AUTHOR_NAME", "Cy")
        ws.commit({"x": 4}, "c4")
        authors.append(ws.log(max_count=1)[0].author)
        monkeypatch.delenv("TXGIT_AUTHOR_NAME")
        other = tmp_path / "other"
        other.mkdir()
        (other / ".gitconfig").write_text("[user]\n\tname = Dee\n")
        pygit2.settings.search_path[ConfigLevel.GLOBAL] = str(other)
        ws.commit({"x": 5}, "c5")
        authors.append(ws.log(max_count=1)[0].author)
    finally:
        pygit2.settings.search_path[ConfigLevel.GLOBAL] = saved
    assert [a.split(" <")[0] for a in authors] == ["Ann", "Ann", "Ann", "Bob", "Cy", "Dee"]
