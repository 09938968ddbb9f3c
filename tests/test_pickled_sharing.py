"""Sharing only through a path the pickle takes, and meeting only through what a reducer leaves out
(issue 17, branch i17-onewalk), checked by identity after a checkout into a fresh kernel.

The first was a gap of the sharing walk (it did not follow a ``functools.partial``'s arguments, held in C
outside any ``__dict__``), now closed; the second holds: what a reducer leaves out comes back as the reducer restores it."""

from __future__ import annotations

import pytest
from kernelutil import checked_out_in_a_fresh_kernel, silent_eval

from txgit import Workspace

pytestmark = pytest.mark.timeout(300)

# ``shared`` reaches ``held`` only through a functools.partial's arguments: no attribute, no
# ``__dict__``, nothing the sharing walk follows; the pickle takes that path. ``dropped`` and ``keeper``
# meet only through an attribute that ``Cache.__getstate__`` leaves out: nothing of it is saved.
CELLS = [
    "import functools\nheld = [1, 2]\nshared = functools.partial(print, [[[held]]])",
    "class Cache:\n"
    "    def __init__(self, scratch):\n        self.value, self.scratch = 3, {'a': [[scratch]]}\n"
    "    def __getstate__(self):\n        return {'value': self.value}\n"
    "    def __setstate__(self, state):\n        self.__dict__.update(state, scratch=None)\n"
    "keeper = [7]\ndropped = Cache(keeper)",
    "other = [0]",
    "later = functools.partial(print, {'k': [keeper]})",  # a new alias of an older variable, by pickle only
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The cells in a live kernel, then every name checked out into a fresh one."""
    ws = Workspace.init(tmp_path_factory.mktemp("pickled") / "ws")
    with checked_out_in_a_fresh_kernel(ws.root, CELLS) as k2:
        yield ws, k2


def test_values_that_share_only_through_what_the_pickle_takes_come_back_as_one(run):
    ws, k2 = run
    assert silent_eval(k2, "(shared.args[0][0][0][0] is held, held)") == (True, [1, 2])
    assert silent_eval(k2, "later.args[0]['k'][0] is keeper") is True
    groups = {n: r.group for n, r in ws.state().variables.items()}
    assert groups["shared"] == groups["held"] and groups["later"] == groups["keeper"]


def test_values_that_meet_only_where_the_pickle_does_not_go_come_back_as_saved(run):
    # (apart when their pickles decide it, as in the in-process test below; a value walked because its
    # pickle met another's is still grouped by the walk's paths, which may take the dropped attribute)
    ws, k2 = run
    assert silent_eval(k2, "(dropped.value, dropped.scratch, keeper)") == (3, None, [7])
