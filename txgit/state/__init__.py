"""State layer: namespaces <-> records and chunks. Knows the storage layer only."""

from txgit.state.snapshot import (
    CHUNK_SIZE,
    MODULE,
    NAMESPACE,
    UNPICKLABLE,
    VALUE,
    Fingerprints,
    GroupRecord,
    Snapshot,
    RestoredGroups,
    StreamCache,
    StreamRecord,
    VarRecord,
    is_variable_name,
    restore,
    snapshot,
)

__all__ = [
    "CHUNK_SIZE", "MODULE", "NAMESPACE", "UNPICKLABLE", "VALUE", "Fingerprints", "GroupRecord", "Snapshot", "RestoredGroups", "StreamCache",
    "StreamRecord", "VarRecord", "is_variable_name", "restore", "snapshot",
]
