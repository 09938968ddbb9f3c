"""txgit's own work kept out of the schedule of Python's cyclic garbage collector.

CPython walks the whole heap once the objects promoted to its oldest generation since the last
full walk exceed a quarter of what that walk kept (and the middle generation was collected ten
times since). Every object txgit keeps (its modules when imported, a session's state) would count
toward that walk and bring it closer to the user's cells: in a notebook's kernel, loading txgit
made the first cell's ``import pandas`` walk the whole heap (30-90 ms on the median notebooks of
issue 17's benchmark), where a kernel without txgit did not walk it in that notebook at all.

A program that manages its collector itself (turned off, or objects frozen with ``gc.freeze``) is
left as it is. Standard library only: the lowest layer.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a block that makes many objects which outlive it (a bulk
    read of records, the pickle of a figure, an import): they set off one young collection every 700,
    which find nothing to free, and move the next full one closer. Left off only where it was off (a
    caller's own ``gc.disable()`` is kept)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@contextmanager
def kept_out_of_schedule() -> Iterator[None]:
    """Run a block that makes long-lived objects (txgit's import, a kernel session's start) with the
    collector paused; then move every object it made to the oldest generation without counting
    them toward the next full walk (``gc.freeze`` and ``gc.unfreeze``: nothing stays frozen), and
    set its counters of young and middle collections back where the block found them (collections
    of the then empty young generations). So the program's next full walk comes when it would have
    without txgit; it then walks txgit's objects too. Cycles that became garbage during the block
    are freed by that walk, not by a young collection."""
    if not gc.isenabled() or gc.get_freeze_count():
        yield  # the program manages its collector: not touched
        return
    _, middle, oldest = gc.get_count()
    # the program's own young objects promoted, and counted toward the next full walk, as the next middle
    # collection would: only what the block makes is kept out (~1 ms: the young generations are small)
    gc.collect(1)
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.freeze()
        gc.unfreeze()  # (into the oldest generation; the counters of all three are now 0)
        for _ in range(oldest):
            gc.collect(1)  # the oldest generation's counter + 1; the young ones are empty
        for _ in range(middle):
            gc.collect(0)  # the middle generation's counter + 1
