"""txgit's version, in a module of its own: the engine records it in every commit's meta, and
the package's ``__init__`` (which pulls in the whole Python API) is above the engine."""

__version__ = "0.1.0"

# The storage format a commit needs to be read: its records (vars/, groups/, meta.json), how values are
# pickled and how their bytes are cut into blobs. Every commit records it in meta.json ("format"); a
# commit without it is format 1. Raise it when a commit written from now on could not be read by a
# txgit that knows only the formats before it; a reader refuses commits of a format above its own.
FORMAT_VERSION = 1
