"""Library settings that live in module state, which values depend on: recorded with a commit,
put back on checkout.

A variable's pickle holds the object, not the settings its library reads when it uses it:
matplotlib draws a restored figure with the fonts, hatch widths and formatter limits of the
process's ``rcParams``, and the next figure a cell makes takes its colors, sizes and style from
them (``plt.style.use("ggplot")``, ``sns.set_theme()``). Those settings are the session's state as
much as its variables are, so a commit records the ones that differ from the library's defaults,
as JSON in its ``meta.json`` (``libraries``), and a checkout makes the process's settings equal
the recorded ones.

What is captured, and why only this (see docs/notebooks.md, "What a checkout restores"):

* matplotlib's ``rcParams``, when matplotlib is loaded. ``backend`` is recorded (a cell that only
  switches it is committed) but never set back: it names the process's display (inline, a window),
  chosen by its host, not a setting of the state.
* the positions of the global random generators: Python's ``random`` and numpy's legacy global
  ``RandomState`` (once ``numpy.random`` is loaded: before, it does not exist and nothing drew from
  it). A commit records where they were when it was made, so that after a checkout of it the next
  ``np.random.rand()`` gives the number it gave right after the commit, in a fresh kernel too; pylab's
  ``beta``, ``normal`` ... are functions of that generator. They advance on every draw, so a move of
  theirs alone is not a change that makes a commit (a cell that only prints ``np.random.rand()``).
  They are not in ``meta.json`` but a file each in the commit's tree (:func:`position_file`), shared
  by the commits whose generators did not move. A failed cell puts them back where they were
  before it ran (:meth:`LibraryState.mark`, :meth:`LibraryState.rewind`).

Other module globals (a library's caches, registries) are not seen.
"""

from __future__ import annotations

import _random
import base64
import ctypes
import json
import struct
import sys
import warnings
from collections.abc import Mapping
from typing import Any

RCPARAMS = "matplotlib.rcParams"
PYTHON_RANDOM = "random"
NUMPY_RANDOM = "numpy.random"
GENERATORS = (PYTHON_RANDOM, NUMPY_RANDOM)
_NOT_RESTORED = frozenset({"backend"})  # the process's display, chosen by its host (inline, Agg, a window)
# what the host sets when pyplot is first imported or its backend chosen (`%matplotlib inline` turns on
# interactive mode; a backend switch turns off the fallback): no change of the user's settings
_HOST_SETTINGS = frozenset({"backend", "backend_fallback", "interactive"})


def _to_json(value: Any) -> Any:
    """An rcParams value as JSON that its validator accepts back (the way matplotlibrc writes it)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {"tuple": [_to_json(v) for v in value]}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    name = getattr(value, "value", None)  # CapStyle, JoinStyle: enums of strings
    if isinstance(name, str):
        return name
    return {"text": repr(value)}  # a Cycler's repr is what matplotlibrc holds for axes.prop_cycle


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if "tuple" in value:
            return tuple(_from_json(v) for v in value["tuple"])
        return value.get("text")
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


# -- the global random generators -------------------------------------------------------------------

def _python_random() -> Any:
    return sys.modules.get("random")


def _numpy_random() -> Any:
    """numpy's legacy global RandomState, if it exists (numpy 2 makes it when numpy.random is loaded)."""
    mtrand = sys.modules.get("numpy.random.mtrand")
    return getattr(mtrand, "_rand", None)


# Each cell reads the generators four times (before it, after it, for its commit, and for its
# operation's record): getstate() copies Python's 625 words into ints (~15 us). Its MT19937 words are
# read in place instead (~1 us), and the last copy is handed out again while they are the same: equal
# words, index and cached normal (``gauss_next``, an attribute) are the same state. numpy's legacy
# generator is copied each time: its cached normal is out of reach, and ``set_state`` can give one to
# words that did not move.
_MT_WORDS = 624
_PYTHON_WORDS_AT = 2 * ctypes.sizeof(ctypes.c_void_p)  # _random.Random: PyObject_HEAD, int index, uint32 state[624]
_python_words_readable: bool | None = None  # checked against getstate() on first use
_python_known: tuple[Any, bytes, Any, Any] | None = None  # (instance, index and words, gauss_next, getstate())


def _python_words(inst: Any) -> bytes | None:
    """The index and words of a ``random.Random`` read in place; None where its layout is not the one
    known here (another Python build), which the first read checks against ``getstate()``."""
    global _python_words_readable
    if _python_words_readable is False or type(inst).__mro__[-2:] != (_random.Random, object):
        return None
    words = ctypes.string_at(id(inst) + _PYTHON_WORDS_AT, 4 + 4 * _MT_WORDS)
    if _python_words_readable is None:
        state = inst.getstate()[1]
        _python_words_readable = len(state) == _MT_WORDS + 1 and words == struct.pack(
            f"=i{_MT_WORDS}I", state[_MT_WORDS], *state[:_MT_WORDS])
        if not _python_words_readable:
            return None
    return words


def python_random_state(rnd: Any) -> Any:
    """``random.getstate()``, the same tuple as last time when the generator did not move."""
    global _python_known
    inst = getattr(rnd.getstate, "__self__", None)  # random's functions are bound to one instance
    if not isinstance(inst, _random.Random) or type(inst).getstate is not rnd.Random.getstate:
        return rnd.getstate()
    words, gauss = _python_words(inst), getattr(inst, "gauss_next", None)
    known = _python_known
    if words is not None and known is not None and known[0] is inst and known[1] == words and known[2] == gauss:
        return known[3]
    state = rnd.getstate()
    if words is not None and _python_words(inst) == words:  # (not drawn from by another thread meanwhile)
        _python_known = (inst, words, gauss, state)
    return state


# numpy's legacy generator likewise: ``get_state`` copies its 624 words into a new array (~40-60 us;
# the rollback's mark and the commit's position read it every cell). Its MT19937 words and position
# are read in place (the bit generator's public ``ctypes.state_address``), and so is its cached normal
# (``has_gauss``, ``gauss``: a field of the RandomState object, drawn without moving the words), whose
# offset is found once per process on a private RandomState and checked against ``get_state``.
_MT_STATE_BYTES = 4 * _MT_WORDS + 4  # numpy's mt19937_state: uint32 key[624], int pos
_numpy_cached_normal_at: int | None = None  # offset of (int has_gauss, double gauss) in a RandomState
_numpy_layout_known: bool | None = None  # None: not checked yet; False: another layout, always copied
_numpy_known: tuple[Any, Any, bytes, Any] | None = None  # (generator, bit generator, bytes, get_state())


def _numpy_full_state(gen: Any) -> Any:
    return gen.get_state(legacy=False)


def _numpy_check_layout(cls: type) -> bool:
    """Find and check where a RandomState keeps its cached normal, and that its MT19937 words are
    where ``ctypes.state_address`` says: on private generators, never the user's."""
    global _numpy_cached_normal_at
    probe = cls(12345)
    probe.standard_normal()  # two normals drawn, one cached
    st = probe.get_state(legacy=False)
    size = cls.__basicsize__
    mem = ctypes.string_at(id(probe), size)
    wanted = struct.pack("=d", st["gauss"])
    found = [at for at in range(8, size - 7, 8) if mem[at:at + 8] == wanted]
    if st["has_gauss"] != 1 or len(found) != 1:
        return False
    at = found[0] - 8  # C layout: int has_gauss, padding, double gauss

    for has_gauss, gauss in ((1, 0.25), (0, 0.0)):
        probe.set_state(dict(st, has_gauss=has_gauss, gauss=gauss))
        if _numpy_cached_normal(probe, at) != struct.pack("=i", has_gauss) + struct.pack("=d", gauss):
            return False
    probe.random_sample()
    st = probe.get_state(legacy=False)
    words = ctypes.string_at(probe._bit_generator.ctypes.state_address, _MT_STATE_BYTES)
    if words != struct.pack(f"={_MT_WORDS}Ii", *(int(w) for w in st["state"]["key"]), st["state"]["pos"]):
        return False
    _numpy_cached_normal_at = at
    return True


def _numpy_cached_normal(gen: Any, at: int) -> bytes:
    """``has_gauss`` and ``gauss`` as they are in memory (not the padding between them)."""
    return ctypes.string_at(id(gen) + at, 4) + ctypes.string_at(id(gen) + at + 8, 8)


def _numpy_in_place(gen: Any) -> bytes | None:
    """numpy's legacy generator's words, position and cached normal read in place; None where that is not
    known to be right (a subclass, another bit generator, another numpy's layout)."""
    global _numpy_layout_known
    mtrand = sys.modules.get("numpy.random.mtrand")
    bitgen = getattr(gen, "_bit_generator", None)
    if _numpy_layout_known is False or mtrand is None or type(gen) is not mtrand.RandomState or \
            type(bitgen).__name__ != "MT19937" or type(bitgen).__module__ != "numpy.random._mt19937":
        return None
    if _numpy_layout_known is None:
        try:
            _numpy_layout_known = _numpy_check_layout(type(gen))
        except Exception:
            _numpy_layout_known = False
        if not _numpy_layout_known:
            return None
    at = _numpy_cached_normal_at
    assert at is not None
    return ctypes.string_at(bitgen.ctypes.state_address, _MT_STATE_BYTES) + _numpy_cached_normal(gen, at)


def numpy_random_state(gen: Any) -> Any:
    """``gen.get_state(legacy=False)``, the same dict as last time when the generator did not move
    (callers must not change it)."""
    global _numpy_known
    now = _numpy_in_place(gen)
    known = _numpy_known
    if now is not None and known is not None and known[0] is gen and known[1] is gen._bit_generator \
            and known[2] == now:
        return known[3]
    state = _numpy_full_state(gen)
    if now is not None and _numpy_in_place(gen) == now:  # (not drawn from by another thread meanwhile)
        _numpy_known = (gen, gen._bit_generator, now, state)
    return state


def _raw_positions() -> dict[str, Any]:
    """The generators' states as their modules give them (copies: later draws do not change them)."""
    out: dict[str, Any] = {}
    rnd = _python_random()
    if rnd is not None:
        try:
            out[PYTHON_RANDOM] = python_random_state(rnd)
        except Exception:  # a patched random module: its position is not recorded
            pass
    gen = _numpy_random()
    if gen is not None:
        try:
            # the dict form: a quarter cheaper than the legacy tuple, and it also holds a bit generator
            # other than MT19937 (np.random.set_bit_generator)
            out[NUMPY_RANDOM] = numpy_random_state(gen)
        except Exception:
            pass
    return out


def _same_raw(a: Any, b: Any) -> bool:
    """Equal states; numpy's arrays compared by their bytes."""
    if a is b and a is not None:  # (a generator that did not move: the copy read last time)
        return True
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_raw(a[k], b[k]) for k in a)
    if hasattr(a, "tobytes"):
        return hasattr(b, "tobytes") and a.dtype == b.dtype and a.tobytes() == b.tobytes()
    return a is not None and b is not None and bool(a == b)


def _state_to_json(state: Any) -> Any:
    """numpy's state dict as JSON: arrays as dtype and base64 of their bytes, ints of any size as JSON's."""
    if isinstance(state, dict):
        return {k: _state_to_json(v) for k, v in state.items()}
    if hasattr(state, "tobytes"):
        return {"ndarray": state.dtype.newbyteorder("<").str, "b64": base64.b64encode(
            state.astype(state.dtype.newbyteorder("<")).tobytes()).decode()}
    return state.item() if hasattr(state, "item") else state  # a numpy scalar


def _state_from_json(data: Any) -> Any:
    if isinstance(data, dict):
        if "ndarray" in data:
            import numpy as np

            return np.frombuffer(base64.b64decode(data["b64"]), dtype=data["ndarray"]).astype(
                np.dtype(data["ndarray"]).newbyteorder("="))
        return {k: _state_from_json(v) for k, v in data.items()}
    return data


def _encode(gen: str, raw: Any) -> str:
    """A generator's state as compact JSON text (Python's MT19937 words as base64 of little-endian uint32)."""
    if gen == PYTHON_RANDOM:
        version, internal, gauss = raw
        words = base64.b64encode(struct.pack(f"<{len(internal)}I", *internal)).decode()
        return json.dumps([version, words, gauss], separators=(",", ":"))
    return json.dumps(_state_to_json(raw), separators=(",", ":"))


def _decode(gen: str, text: str) -> Any:
    data = json.loads(text)
    if gen == PYTHON_RANDOM:
        version, words, gauss = data
        raw = base64.b64decode(words)
        internal = struct.unpack(f"<{len(raw) // 4}I", raw)
        return int(version), tuple(int(x) for x in internal), None if gauss is None else float(gauss)
    return _state_from_json(data)


def _set_raw(gen: str, raw: Any) -> None:
    if gen == PYTHON_RANDOM:
        import random

        random.setstate(raw)
    else:
        import numpy.random

        numpy.random.set_state(raw)


def position_file(gen: str) -> str:
    """Where in a commit's tree the position of generator ``gen`` is: a file each, so that commits whose
    generators did not move share it (3.3 kB each, incompressible)."""
    return f"libraries/{gen}.json"


def describe(item: str) -> str:
    """How messages name a recorded item: ``matplotlib settings``, ``numpy.random generator``."""
    return "matplotlib settings" if item == RCPARAMS else f"{item} generator" if item in GENERATORS else item


def restore_generators(doc: Mapping[str, str] | None) -> list[str]:
    """Put the global generators where ``doc`` (generator -> :meth:`LibraryState.positions` text, as a
    commit's files hold them) says; one line per one that could not be set. A generator the commit
    records nothing of is left where it is. Call it after values were made again by their code (which
    may draw)."""
    problems: list[str] = []
    for gen in GENERATORS:
        text = (doc or {}).get(gen)
        if not isinstance(text, str):
            continue
        try:
            _set_raw(gen, _decode(gen, text))
        except Exception as e:  # a damaged record, numpy gone from this environment
            problems.append(f"{gen} generator: {type(e).__name__}: {e}")
    return problems


class LibraryState:
    """Captures the recorded library settings of this process, cheaply when nothing changed."""

    def __init__(self) -> None:
        self._values: tuple[Any, ...] | None = None  # rcParams' values when last captured
        self._doc: dict[str, Any] = {}
        self._raw: dict[str, Any] = {}  # generator -> its state when last recorded, and its text
        self._text: dict[str, str] = {}
        self._marked: dict[str, Any] = {}  # generator -> its state before the running cell

    def positions(self) -> dict[str, str]:
        """``{"random": text, "numpy.random": text}``: where the global generators are now, for a commit's
        ``libraries`` (numpy's only once its global generator exists). Encoded again only when moved."""
        out: dict[str, str] = {}
        for gen, raw in _raw_positions().items():
            if not _same_raw(raw, self._raw.get(gen)):
                try:
                    self._raw[gen], self._text[gen] = raw, _encode(gen, raw)
                except Exception:  # a state of a form not known here: not recorded, the commit goes on
                    self._raw.pop(gen, None)
                    self._text.pop(gen, None)
                    continue
            out[gen] = self._text[gen]
        return out

    def mark(self) -> None:
        """Remember where the generators are, before a cell that may fail runs (a few microseconds)."""
        self._marked = _raw_positions()

    def moved(self) -> dict[str, bool]:
        """The generators whose state changed since :meth:`mark`, each with whether it did not exist then
        (its module first loaded since)."""
        return {gen: gen not in self._marked for gen, raw in _raw_positions().items()
                if not _same_raw(raw, self._marked.get(gen))}

    def rewind(self) -> list[str]:
        """Put the generators back where :meth:`mark` found them, those that moved since; returns their
        names. One that did not exist then (its module first loaded by the cell) is left alone."""
        moved = []
        for gen, raw in _raw_positions().items():
            before = self._marked.get(gen)
            if before is not None and not _same_raw(raw, before):
                try:
                    _set_raw(gen, before)
                except Exception:  # the cell replaced the generator by one of another kind: left as it is
                    continue
                moved.append(gen)
        return moved

    def capture(self) -> dict[str, Any]:
        """``{"matplotlib.rcParams": "{key: value, ...}"}`` (as JSON text): the settings that differ from
        the library's defaults; empty when matplotlib is not loaded. A few microseconds when nothing changed
        since the last call (rcParams' values are replaced, not mutated, when set)."""
        mpl = sys.modules.get("matplotlib")
        params = getattr(mpl, "rcParams", None)
        defaults = getattr(mpl, "rcParamsDefault", None)
        if not isinstance(params, dict) or not isinstance(defaults, dict):
            return {}
        values = tuple(dict.values(params))
        try:
            same = values == self._values  # in C: each element by identity first
        except Exception:  # a value whose == raises (an array someone set): look again
            same = False
        if same:
            return self._doc
        self._values = values
        self._doc = {RCPARAMS: _settings_text(_differing(params, defaults))}
        return self._doc


def _differing(params: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of ``params`` that differ from ``defaults``, as JSON."""
    changed: dict[str, Any] = {}
    for key, value in dict.items(params):
        if key == "backend" and not isinstance(value, str):
            continue  # not resolved yet: matplotlib's "choose one when first needed" sentinel
        try:
            same = bool(value == dict.get(defaults, key, _MISSING))
        except Exception:
            same = False
        if not same:
            changed[key] = _to_json(value)
    return changed


def _settings_text(settings: Mapping[str, Any]) -> str:
    # one line of compact JSON: meta.json is written with indent (Python's slower encoder), and a
    # string costs it nothing, where a dict of a style's 20-odd settings cost ~0.2 ms per commit
    return json.dumps(settings, sort_keys=True, separators=(",", ":"))


def _settings_of(doc: Mapping[str, Any]) -> dict[str, Any]:
    text = doc.get(RCPARAMS) or "{}"
    return json.loads(text) if isinstance(text, str) else dict(text)


def changed_settings(before: Mapping[str, Any], after: Mapping[str, Any]) -> set[str]:
    """The settings (rcParams keys) a cell changed: those whose values differ between two
    :meth:`LibraryState.capture` taken before and after it. Where matplotlib was first loaded by the
    cell (``before`` empty), against the settings it was loaded with (its matplotlibrc). What the host
    sets on pyplot's import or a backend switch is no change of the user's."""
    if before is after:
        return set()
    if RCPARAMS in before:
        old = _settings_of(before)
    else:
        mpl = sys.modules.get("matplotlib")
        orig, defaults = getattr(mpl, "rcParamsOrig", None), getattr(mpl, "rcParamsDefault", None)
        old = _differing(orig, defaults) if isinstance(orig, dict) and isinstance(defaults, dict) else {}
    new = _settings_of(after)
    return {k for k in old.keys() | new.keys() if old.get(k, _MISSING) != new.get(k, _MISSING)} - _HOST_SETTINGS


def with_settings(recorded: Mapping[str, Any], now: Mapping[str, Any], keys: set[str]) -> dict[str, Any]:
    """The library settings of ``recorded`` (a commit's library items) with the settings ``keys`` as
    ``now`` (a :meth:`LibraryState.capture`) has them: what a commit of a process that never loaded
    ``recorded`` records, when its cells changed ``keys`` alone (``recorded`` has settings)."""
    if not keys:
        return {RCPARAMS: recorded[RCPARAMS]}
    settings, current = _settings_of(recorded), _settings_of(now)
    for key in keys:
        if key in current:
            settings[key] = current[key]
        else:  # back to the default
            settings.pop(key, None)
    return {RCPARAMS: _settings_text(settings)}


def restore(doc: Mapping[str, Any] | None) -> list[str]:
    """Make this process's library settings those of ``doc`` (a commit's ``libraries``); returns
    what could not be set, one line each. Libraries the commit records nothing of are left alone."""
    problems: list[str] = []
    if not doc or RCPARAMS not in doc:
        return problems
    import matplotlib

    settings = doc.get(RCPARAMS) or {}
    if isinstance(settings, str):
        settings = json.loads(settings)
    recorded = {k: _from_json(v) for k, v in settings.items()}
    params, defaults = matplotlib.rcParams, matplotlib.rcParamsDefault
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a key deprecated since the commit: set all the same
        for key in list(params):
            if key in _NOT_RESTORED or key in recorded:
                continue
            if key in defaults and dict.__getitem__(params, key) is not dict.__getitem__(defaults, key):
                try:
                    if params[key] != defaults[key]:
                        dict.__setitem__(params, key, dict.__getitem__(defaults, key))  # validated already
                except Exception:
                    pass
        for key, value in recorded.items():
            if key in _NOT_RESTORED:
                continue
            try:
                params[key] = value
            except Exception as e:  # a key this matplotlib lacks, a value its validator refuses
                problems.append(f"matplotlib rcParams[{key!r}]: {type(e).__name__}: {e}")
    return problems


_MISSING = object()
