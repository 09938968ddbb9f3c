"""txgit's version, in a module of its own: the engine records it in every commit's meta, and
the package's ``__init__`` (which pulls in the whole Python API) is above the engine."""

__version__ = "0.1.0"

# The storage format a commit needs to be read: its records (records/, meta.json), how values are
# pickled and how their bytes are cut into blobs. Every commit records it in meta.json ("format"); a
# commit without it is format 1. Raise it when a commit written from now on could not be read by a
# txgit that knows only the formats before it; a reader refuses commits of a format above its own.
# 1: one git file per record (vars/<name>, groups/<id>). 2: the records as lines in ~32-variable
# shards (records/<shard>; see txgit.history), so that a state of many variables is few git objects.
# 3: as 2, and a group may list a name whose record names another group (the name was bound to a new
# value and the others kept the group): only the names whose records name a group are restored from
# it. Written only by states that hold such a group (txgit.history.format_needed); others stay 2.
FORMAT_VERSION = 3
