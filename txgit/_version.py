"""txgit's version, in a module of its own: the engine records it in every commit's meta, and
the package's ``__init__`` (which pulls in the whole Python API) is above the engine."""

__version__ = "0.1.0"
