"""What a cell reads from its process besides its variables and files: environment variables,
a script's arguments (``sys.argv``) and the settings of the libraries it computes with.

All three decide a result as much as its inputs do (``txgit run --reuse train.py 0.5`` after
``... 0.1``; ``sklearn.set_config(transform_output="pandas")``), so they are recorded with each
operation (as digests: the record is pushed with the history, and values may be secrets) and
compared before a recorded run is reused (:func:`digest`).
"""

from __future__ import annotations

import json
import os
import operator
import sys
from collections.abc import Callable
from typing import Any

import blake3

ABSENT = "absent"  # the digest of a variable that is not set


def _nobody() -> None:
    return None


_watching: Callable[[], Any] = _nobody  # the watched cell's record, or None (see install)


def _value_digest(value: str | None) -> str:
    # a digest, not the value: the record is pushed with the history, and variables may hold secrets
    return ABSENT if value is None else blake3.blake3(value.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _settings_text(lib: str) -> str | None:
    """The settings of an imported library that change what code computes or prints with it (None:
    not imported, or unreadable): ``sklearn.set_config(transform_output="pandas")``, pandas' options,
    ``np.seterr``/print options, torch's default dtype and determinism, the decimal context."""
    module = sys.modules.get(lib)
    if module is None:
        return None
    try:
        if lib == "sklearn":
            return repr(sorted(module.get_config().items()))
        if lib == "pandas":  # (options are registered as their modules are imported: only changed ones count)
            config = sys.modules["pandas._config.config"]
            return repr(sorted(_pandas_options.changed(config._global_config, config._registered_options)))
        if lib == "numpy":
            return repr((sorted(module.geterr().items()), sorted(module.get_printoptions().items())))
        if lib == "torch":
            return repr((module.get_default_dtype(), module.are_deterministic_algorithms_enabled()))
        if lib == "decimal":
            return repr(module.getcontext())
    except Exception:  # another version's internals: not watched
        return None
    return None


def _changed_options(options: dict[str, Any], registered: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for key, value in options.items():
        if isinstance(value, dict):
            out += _changed_options(value, registered, prefix + key + ".")
        elif (option := registered.get(prefix + key)) is None or option.defval != value:
            out.append((prefix + key, repr(value)))
    return out


class _OptionLeaves:
    """pandas' options that differ from their defaults, as :func:`_changed_options` finds them, at a
    fraction of its cost: twice per cell, the nested option dicts are walked again only when one of them
    was added, replaced or resized (an option registered as a pandas module is imported); otherwise each
    option is looked up in its dict through a flat list kept from the last walk (set_option assigns there)."""

    def __init__(self) -> None:
        self._root: dict[str, Any] | None = None
        self._registered = 0
        self._shape: list[tuple[dict[str, Any], int]] = []  # each nested dict and its size when walked
        self._links: list[tuple[dict[str, Any], str, dict[str, Any]]] = []  # (parent, key, child dict)
        self._leaves: list[tuple[dict[str, Any], str, str, Any]] = []  # (its dict, key, full name, option)
        # the same, column by column, read with map() in C: a per-item Python loop was most of the
        # comparison's cost (~75-170 options, twice per cell)
        self._dicts: list[dict[str, Any]] = []
        self._sizes: list[int] = []
        self._parents: list[dict[str, Any]] = []
        self._link_keys: list[str] = []
        self._children: list[dict[str, Any]] = []
        self._leaf_dicts: list[dict[str, Any]] = []
        self._leaf_keys: list[str] = []

    def _same_shape(self, root: dict[str, Any], registered: dict[str, Any]) -> bool:
        return (root is self._root and len(registered) == self._registered
                and list(map(len, self._dicts)) == self._sizes
                and all(map(operator.is_, map(dict.get, self._parents, self._link_keys), self._children)))

    def _walk(self, root: dict[str, Any], registered: dict[str, Any]) -> None:
        self._root, self._registered = root, len(registered)
        self._shape, self._links, self._leaves = [], [], []
        todo: list[tuple[dict[str, Any], str]] = [(root, "")]
        while todo:
            options, prefix = todo.pop()
            self._shape.append((options, len(options)))
            for key, value in options.items():
                if isinstance(value, dict):
                    self._links.append((options, key, value))
                    todo.append((value, prefix + key + "."))
                else:
                    self._leaves.append((options, key, prefix + key, registered.get(prefix + key)))
        self._dicts = [d for d, _ in self._shape]
        self._sizes = [n for _, n in self._shape]
        self._parents, self._link_keys, self._children = ([link[i] for link in self._links] for i in range(3))
        self._leaf_dicts = [leaf[0] for leaf in self._leaves]
        self._leaf_keys = [leaf[1] for leaf in self._leaves]

    def values(self, root: dict[str, Any], registered: dict[str, Any]) -> tuple[Any, ...]:
        """Every option's value (and the list they were read through): equal tuples, equal settings."""
        if not self._same_shape(root, registered):
            self._walk(root, registered)
        return (self._leaves, *map(dict.__getitem__, self._leaf_dicts, self._leaf_keys))

    def changed(self, root: dict[str, Any], registered: dict[str, Any]) -> list[tuple[str, str]]:
        if not self._same_shape(root, registered):
            self._walk(root, registered)
        out = []
        for options, key, name, option in self._leaves:
            value = options[key]
            # (a leaf that became a dict changed a dict's size: walked again above)
            if option is None or (value is not option.defval and option.defval != value):
                out.append((name, repr(value)))
        return out


_pandas_options = _OptionLeaves()


SETTINGS_LIBRARIES = ("sklearn", "pandas", "numpy", "torch", "decimal")


def _settings_values(lib: str, module: Any) -> Any:
    """The raw settings :func:`_settings_text` would describe, cheap to read and to compare (None: no
    such shortcut). Settings are replaced when set, not mutated in place, so equal values (compared
    identity first) describe equal settings."""
    if lib == "pandas":
        config = sys.modules["pandas._config.config"]
        return _pandas_options.values(config._global_config, config._registered_options)
    if lib == "numpy":
        return module.geterr(), module.get_printoptions()
    if lib == "sklearn":
        return module.get_config()
    return None  # (torch's two flags and the decimal context: described as cheaply as compared)


# library -> (its settings' values when last described, their digest): a cell that changed no setting
# (nearly all of them) costs a comparison per library, twice, not a description and a digest
_described: dict[str, tuple[Any, str]] = {}


def settings_digests() -> dict[str, str]:
    """``settings:<library>`` -> digest, for each library of :data:`SETTINGS_LIBRARIES` imported now:
    inputs of every cell (about 10 us when no setting changed since the last call)."""
    out = {}
    for lib in SETTINGS_LIBRARIES:
        module = sys.modules.get(lib)
        if module is None:
            continue
        try:
            values = _settings_values(lib, module)
            last = _described.get(lib)
            if values is not None and last is not None and bool(last[0] == values):
                out["settings:" + lib] = last[1]
                continue
        except Exception:  # another version's internals, a value whose == raises: described in full
            values = None
        text = _settings_text(lib)
        if text is None:
            _described.pop(lib, None)
            continue
        out["settings:" + lib] = digest = _value_digest(text)
        if values is not None:
            _described[lib] = (values, digest)
    return out


def digest(name: str) -> str:
    """The digest of what a cell read from its process: ``$NAME`` (an environment variable),
    ``sys.argv`` (a script's arguments) or ``settings:<library>`` (:func:`settings_digests`); what a
    recorded run's :attr:`Operation.env` is compared with."""
    if name.startswith("settings:"):
        text = _settings_text(name.removeprefix("settings:"))
        return "not imported" if text is None else _value_digest(text)
    if name == "sys.argv":
        return _value_digest(json.dumps([str(a) for a in sys.argv[1:]]))  # [0]: where the script or kernel is
    return _value_digest(os.environ.get(name.removeprefix("$")))


# Variables that say where the machine, the user and the terminal are, not what a computation is:
# libraries read them in passing (argparse reads COLUMNS, matplotlib HOME), and a collaborator's differ.
_MACHINE_ENV = frozenset({"HOME", "USER", "USERNAME", "LOGNAME", "PATH", "PWD", "OLDPWD", "SHELL", "TERM",
                          "COLUMNS", "LINES", "TMPDIR", "TEMP", "TMP", "DISPLAY", "HOSTNAME", "LANG", "LANGUAGE"})
_MACHINE_ENV_PREFIXES = ("LC_", "XDG_", "JPY_", "JUPYTER_", "IPYKERNEL_", "PYDEVD_", "VSCODE_", "TERM_", "SSH_")


def _env_read(key: object, value: str | None) -> None:
    w = _watching()
    if w is None or not isinstance(key, str):
        return
    name = "$" + key
    # the first read is the cell's input (one that reads and then sets depends on what it found); a
    # library reading one variable hundreds of times (matplotlib's findfont) is hashed once
    if name not in w.env and key not in _MACHINE_ENV and not key.startswith(_MACHINE_ENV_PREFIXES):
        w.env[name] = _value_digest(value)


class _Environ(type(os.environ)):  # type: ignore[misc]
    """``os.environ``'s class, made to report what a watched cell reads and sets (``os.getenv``,
    ``os.environ.get``, ``in`` and iteration all go through these): a script run with another
    ``RUN_NAME=...`` must not reuse the statements that read it."""

    def __getitem__(self, key: str) -> str:
        try:
            value = super().__getitem__(key)
        except KeyError:
            _env_read(key, None)
            raise
        _env_read(key, value)
        return value

    # ``get`` (``os.getenv``) and ``in`` without the KeyError that ``Mapping``'s go through: a missing
    # variable is read as often as a set one (raised, caught, raised again and caught: 1.3 -> 4.6 us)
    def get(self, key: str, default: Any = None) -> Any:
        value = self._data.get(self.encodekey(key))  # (a key that is not a str: TypeError, as before)
        if value is None:
            _env_read(key, None)
            return default
        text = self.decodevalue(value)
        _env_read(key, text)
        return text

    def __contains__(self, key: object) -> bool:
        value = self._data.get(self.encodekey(key))
        _env_read(key, None if value is None else self.decodevalue(value))
        return value is not None

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key, value)
        _env_set()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        _env_set()


def _env_set() -> None:
    w = _watching()
    if w is None:
        return
    frame = sys._getframe(2)
    while frame is not None:  # a module setting its defaults while imported (scikit-learn sets KMP_*):
        if frame.f_code.co_filename == "<frozen importlib._bootstrap>":  # importing it again does it again
            return
        frame = frame.f_back
    w.effects.add("sets environment variables")


class _Argv(list):  # type: ignore[type-arg]
    """``sys.argv``, made to report that a watched cell read it (argparse reads ``sys.argv[1:]``)."""

    def _read(self) -> None:
        if (w := _watching()) is not None:
            w.argv_read = True

    def __getitem__(self, i: Any) -> Any:
        self._read()
        return super().__getitem__(i)

    def __iter__(self) -> Any:
        self._read()
        return super().__iter__()

    def __len__(self) -> int:
        self._read()
        return super().__len__()

    def __contains__(self, item: object) -> bool:
        self._read()
        return super().__contains__(item)


def install(watching: Callable[[], Any]) -> None:
    """Report reads of the environment and of ``sys.argv``, and setting the environment, to
    ``watching()``: the watched cell's record (``env``, ``argv_read``, ``effects``) or None."""
    global _watching
    _watching = watching
    if type(os.environ) is not _Environ:
        os.environ.__class__ = _Environ
    if not isinstance(sys.argv, _Argv):
        sys.argv = _Argv(sys.argv)
