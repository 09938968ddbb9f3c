"""numpy views come back as views of what they viewed (issue 17, branch i17-views).

A view (a slice, a column, a transpose, a reshape, a field of a structured array, an ``np.void`` row)
shares its base's memory; plain pickle writes each array's bytes on its own, so after a checkout the
view was a copy and a write through the base no longer showed in it. Arrays of one group that view one
memory are now pickled as views of one carrier of that memory."""

from __future__ import annotations

import numpy as np
import pytest
from kernelutil import checked_out_in_a_fresh_kernel, silent_eval

from txgit import Workspace
from txgit.state import restore, snapshot

pytestmark = pytest.mark.timeout(300)

CELLS = [
    ("import numpy as np\n"
     "records = np.zeros(5, dtype=[('a', 'i4'), ('b', 'f8')])\n"
     "first = records[:1]\nrow = records[0]\nfield = records['a']"),
    # ``grid`` is itself a view of a base no variable names (the arange)
    "grid = np.arange(12.).reshape(3, 4)\ncol = grid[:, 0]\nt = grid.T\nflat = grid.reshape(-1)\nback = flat[::-2]",
    "owner = np.arange(10)\nhead = {'h': owner[:3]}",
    "hidden = np.arange(100_000.)[10:20]",  # the only array of its large base
    "big = np.arange(300_000.)\nbig_tail = big[-1000:]",  # the base large enough to go out of band
    "z_big = np.arange(200_000.)\na_head = z_big[:100]",  # a small view pickled before its large base
]


def _in_process(cells: list[str]) -> tuple[dict, dict, object]:
    ns: dict = {}
    for code in cells:
        exec(code, ns)  # noqa: S102 - the test's own cells
    snap = snapshot(ns)
    out = restore(snap.variables, snap.groups, lambda names: {n: bytes(snap.chunks[n]) for n in names}, {})
    return ns, out, snap


VIEWS = [("first", "records"), ("field", "records"), ("col", "grid"), ("t", "grid"), ("flat", "grid"),
         ("back", "grid"), ("big_tail", "big"), ("a_head", "z_big")]


def test_views_restored_through_the_api_share_their_bases_memory():
    ns, out, _ = _in_process(CELLS)
    for view, base in VIEWS:
        assert np.shares_memory(out[view], out[base]), view
        np.testing.assert_array_equal(out[view], ns[view])
        assert out[view].dtype == ns[view].dtype and out[view].strides == ns[view].strides, view
    assert np.shares_memory(out["head"]["h"], out["owner"])
    np.testing.assert_array_equal(out["owner"], np.arange(10))
    out["records"]["a"][0] = 9
    assert out["first"]["a"][0] == 9 and out["field"][0] == 9
    out["grid"][0, 0], out["grid"][2, 3] = -1.0, -2.0
    assert out["col"][0] == -1.0 and out["t"][0, 0] == -1.0 and out["flat"][0] == -1.0 and out["back"][0] == -2.0
    out["big"][-1], out["z_big"][0] = -5.0, -6.0
    assert out["big_tail"][-1] == -5.0 and out["a_head"][0] == -6.0


def test_views_restored_twice_still_share():
    # a restored array is numpy's reshape of a buffer's array: its views are found through that one
    _, out, _ = _in_process(CELLS)
    snap = snapshot(out)
    twice = restore(snap.variables, snap.groups, lambda names: {n: bytes(snap.chunks[n]) for n in names}, {})
    for view, base in VIEWS:
        assert np.shares_memory(twice[view], twice[base]), view
        np.testing.assert_array_equal(twice[view], out[view])


def test_a_structured_row_is_grouped_with_its_array_and_restored_as_its_row():
    _, out, snap = _in_process(CELLS)
    assert snap.variables["row"].group == snap.variables["records"].group
    assert isinstance(out["row"], np.void)
    out["records"]["b"][0] = 2.5
    assert out["row"]["b"] == 2.5
    out["row"]["a"] = 4
    assert out["records"]["a"][0] == 4


def test_a_view_whose_base_no_variable_holds_is_a_copy_of_its_own_bytes():
    _, out, snap = _in_process(CELLS)
    np.testing.assert_array_equal(out["hidden"], np.arange(10.0, 20.0))
    assert snap.variables["hidden"].size < 10_000  # not its 800 kB base
    # a restored state pickles the same way each time, its large buffers to the committed chunks
    again, third = snapshot(out), snapshot(out)
    assert {n: r.group for n, r in again.variables.items()} == {n: r.group for n, r in third.variables.items()}

    def buffers(s):
        return {c for g in s.groups.values() for stream in g.streams[1:] for c in stream.chunks}
    assert buffers(again) == buffers(snap)
    # unrelated arrays are not glued into one group
    assert len({snap.variables[n].group for n in ("records", "grid", "owner", "hidden", "big", "z_big")}) == 6


def test_read_only_views_stay_read_only():
    _, out, _ = _in_process(["import numpy as np\nbase = np.arange(6)\nro = base[1:4]\nro.flags.writeable = False"])
    assert not out["ro"].flags.writeable and out["base"].flags.writeable
    out["base"][1] = 7
    assert out["ro"][0] == 7


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    ws = Workspace.init(tmp_path_factory.mktemp("views") / "ws")
    with checked_out_in_a_fresh_kernel(ws.root, CELLS) as k2:
        yield ws, k2


def test_views_checked_out_in_a_fresh_kernel_see_writes_through_their_base(kernels):
    _, k2 = kernels
    pairs = ", ".join(f"bool(np.shares_memory({v}, {b}))" for v, b in VIEWS)
    assert silent_eval(k2, f"[{pairs}]") == [True] * len(VIEWS)
    k2.ok("records['a'][0] = 9\ngrid[0, 0] = -1.0")
    assert silent_eval(k2, "(int(first['a'][0]), int(row['a']), int(field[0]), float(col[0]), float(t[0, 0]))") == \
        (9, 9, 9, -1.0, -1.0)


def test_a_view_restored_alone_keeps_its_values():
    # restore() of one name unpickles that name's group: the view comes back viewing the group's memory,
    # which no other name holds then; it equals what was committed
    _, _, snap = _in_process(CELLS)
    only = {"col": snap.variables["col"]}
    out = restore(only, snap.groups, lambda names: {n: bytes(snap.chunks[n]) for n in names}, {})
    assert list(out) == ["col"] and out["col"].tolist() == [0.0, 4.0, 8.0]


def test_views_of_datetimes_and_a_frame_of_them():
    # a datetime64 array is pickled through an int64 view of itself: that view is not taken for a view
    # of the array (it recursed), and real views of it still share its memory
    pd = pytest.importorskip("pandas")
    ns, out, _ = _in_process([("import numpy as np\nimport pandas as pd\n"
                               "stamps = np.arange(20_000).astype('datetime64[s]')\nlate = stamps[-5:]\n"
                               "frame = pd.DataFrame({'ts': pd.date_range('2024-01-01', periods=10_000, freq='min')})")])
    assert np.shares_memory(out["late"], out["stamps"]) and (out["late"] == ns["late"]).all()
    assert out["frame"].equals(ns["frame"]) and isinstance(out["frame"], pd.DataFrame)
