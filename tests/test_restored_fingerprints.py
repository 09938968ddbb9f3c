"""After a checkout, the restored buffers' fingerprints are reused by address instead of being
computed a second time (issue 19, item 1); what is committed afterwards is still what the values hold."""

from __future__ import annotations

import numpy as np
import pandas as pd

from txgit import Workspace
from txgit.state import Fingerprints, restore
from txgit.state.snapshot import fingerprint_stream


def _namespace() -> dict:
    rng = np.random.default_rng(11)
    return {
        "__name__": "__main__",
        "arr": rng.standard_normal(400_000),
        "df": pd.DataFrame({"a": rng.integers(0, 9, 200_000), "b": rng.random(200_000)}),
        "small": [1, 2, 3],
    }


def test_restore_knows_its_buffers_by_address_and_nothing_else(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    ws.commit(_namespace(), "one")
    state = ws.state()
    fps = Fingerprints()
    values = restore(state.variables, state.groups, ws.blobs.get_many, {}, fps, join=ws.blobs.read_joined)
    arr = values["arr"]
    view = memoryview(arr).cast("B")
    assert fps.known(view) == fingerprint_stream(view) and fps[fps.known(view)]
    assert fps.known(view[8:]) is None  # not the whole buffer
    assert fps.known(memoryview(arr.copy()).cast("B")) is None  # equal bytes elsewhere: not known by address
    assert fps.known(memoryview(bytes(view))) is None  # read-only
    assert len(fps.buffers) == len([k for k in fps])


def test_after_a_checkout_an_unchanged_value_commits_as_unchanged_and_a_changed_one_as_changed(tmp_path):
    ns = _namespace()
    Workspace.init(tmp_path / "ws").commit(ns, "one")
    ws = Workspace.open(tmp_path / "ws")
    target: dict = {"__name__": "__main__"}
    ws.checkout("HEAD", target, force=True)
    same = ws.commit(target, "nothing changed")
    assert same.bytes_written == 0 and ws.diff("HEAD~1", "HEAD").empty
    target["arr"][1000:1010] = 7.0  # in place, in the very buffer the checkout fingerprinted
    target["df"].loc[5, "b"] = -1.0
    changed = ws.commit(target, "changed in place")
    assert changed.bytes_written > 0 and sorted(ws.diff("HEAD~1", "HEAD").changed) == ["arr", "df"]
    again: dict = {"__name__": "__main__"}
    Workspace.open(tmp_path / "ws").checkout("HEAD", again, force=True)
    assert again["arr"].tobytes() == target["arr"].tobytes()
    assert again["df"].equals(target["df"]) and again["df"].loc[5, "b"] == -1.0
