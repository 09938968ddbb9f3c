"""An object's identity as a number, without an audit event.

``id()`` raises the audit event ``builtins.id``, and txgit's operation watch installs an audit hook (a
Python call per event, for the whole life of the kernel): the walk that groups a figure's objects
took ~48,000 ids and paid the hook for each (a figure of 750 lines: 33 ms of walk without the hook,
42 ms with it). ``object.__hash__`` is CPython's default hash: the object's address rotated by 4 bits
(one to one, so as good as ``id`` for telling live objects apart), and raises no event. Every set of
identities the state layer and the sessions compare with each other is made with this one function:
an ``id()`` taken beside them would never match.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

identity: Callable[[Any], int] = object.__hash__

_MASK = (1 << 64) - 1


def address_identity(address: int) -> int:
    """The :func:`identity` an object at ``address`` would have (a tensor's storage: memory, not an
    object), so that it meets the identities of objects exactly as ``id()``'s addresses did."""
    rotated = ((address >> 4) | (address << 60)) & _MASK
    rotated = rotated - (1 << 64) if rotated >= 1 << 63 else rotated
    return -2 if rotated == -1 else rotated
