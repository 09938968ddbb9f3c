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

Not captured: the global random generators (``random``, ``numpy.random``'s legacy global state).
They advance on every draw, so recording them would either commit cells that changed nothing else
or record a position already stale; no stored value depends on them; and the code that seeded them
is in the history. A generator held in a variable (``rng = np.random.default_rng(0)``) is a value
and is restored exactly. Other module globals (a library's caches, registries) are not seen either.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Mapping
from typing import Any

RCPARAMS = "matplotlib.rcParams"
_NOT_RESTORED = frozenset({"backend"})  # the process's display, chosen by its host (inline, Agg, a window)


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


class LibraryState:
    """Captures the recorded library settings of this process, cheaply when nothing changed."""

    def __init__(self) -> None:
        self._values: tuple[Any, ...] | None = None  # rcParams' values when last captured
        self._doc: dict[str, Any] = {}

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
        self._values = values
        # one line of compact JSON: meta.json is written with indent (Python's slower encoder), and a
        # string costs it nothing, where a dict of a style's 20-odd settings cost ~0.2 ms per commit
        self._doc = {RCPARAMS: json.dumps(changed, sort_keys=True, separators=(",", ":"))}
        return self._doc


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
