"""What changed *inside* a variable between two states: semantic diffs of loaded values.

:meth:`txgit.Workspace.diff` says which variables changed from their records
alone. This module loads the old and new values (``Workspace.load``, or the
live namespace) and says how they differ in the terms of their type:

* DataFrames: shape, columns added and removed, dtype changes, how many rows
  and cells changed, and a sample of changed rows (old -> new per cell);
* Series: the same, as a one-column frame;
* arrays and tensors: shape, dtype, how many elements changed and the largest
  absolute difference;
* models: scikit-learn estimators' changed hyper-parameters and fitted
  attributes, torch modules' changed parameters (largest absolute difference
  of each), other objects' changed attributes;
* dicts and plain values: keys added/removed/changed, old -> new.

Duck-typed: nothing here imports pandas, numpy or torch unless a value of that
kind is being compared. A value that cannot be loaded (missing blob, module
not installed) is reported as such; it never fails the diff.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from txgit.errors import TxgitError
from txgit.history import RevRange
from txgit.state import UNPICKLABLE, VarRecord
from txgit.visual.text import plural
from txgit.workspace import StateDiff, Workspace

SAMPLE_ROWS = 5
SAMPLE_COLUMNS = 8
LOAD_LIMIT = 512 * 1024 * 1024  # bytes: values larger than this are compared by their records only
_SHORT = 80


def short_repr(value: Any, limit: int = _SHORT) -> str:
    """repr cut to ``limit`` characters, on one line; a broken __repr__ gives a placeholder."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class ParamChange:
    """One changed parameter or attribute of a model (or entry of a dict)."""

    name: str
    old: str  # short repr; "" when absent
    new: str
    max_abs_diff: float | None = None  # for numeric arrays/tensors of the same shape
    status: str = "changed"  # added | removed | changed


@dataclass
class Sample:
    """Some changed rows of a table: ``rows`` are (index label, [(old, new) per column])."""

    columns: list[str]
    rows: list[tuple[str, list[tuple[str, str]]]]
    total_rows: int  # how many rows changed in all


@dataclass
class ValueDiff:
    """How two values of one variable differ.

    ``facts``: short human sentences ("columns added: a, b"). ``details``:
    the same as JSON-safe data for programs (``max_abs_diff``, ``columns_added``…).
    """

    kind: str  # dataframe | series | array | tensor | model | mapping | sequence | value
    facts: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    sample: Sample | None = None
    params: list[ParamChange] = field(default_factory=list)


@dataclass
class VariableChange:
    """One variable of a :class:`SemanticDiff`."""

    name: str
    status: str  # added | removed | changed
    old: VarRecord | None
    new: VarRecord | None
    diff: ValueDiff | None = None  # None: added/removed, or values not compared (see note)
    note: str | None = None  # why values were not compared

    @property
    def type(self) -> str:
        rec = self.new or self.old
        return rec.type if rec is not None else ""


@dataclass
class SemanticDiff:
    """Every variable that differs between two states, with what changed inside each."""

    a: str
    b: str
    a_id: str
    b_id: str | None  # None: the live namespace
    changes: list[VariableChange]

    @property
    def empty(self) -> bool:
        return not self.changes

    def __getitem__(self, name: str) -> VariableChange:
        for c in self.changes:
            if c.name == name:
                return c
        raise KeyError(name)

    def counts(self) -> tuple[int, int, int]:
        """(added, removed, changed)."""
        return tuple(sum(c.status == s for c in self.changes) for s in ("added", "removed", "changed"))  # type: ignore[return-value]


# -- comparing two values ------------------------------------------------------------------

def _module(value: Any) -> str:
    return getattr(type(value), "__module__", "") or ""


def _is_frame(v: Any) -> bool:
    return _module(v).startswith("pandas") and hasattr(v, "columns") and hasattr(v, "dtypes") and hasattr(v, "index")


def _is_series(v: Any) -> bool:
    return _module(v).startswith("pandas") and type(v).__name__ == "Series"


def _is_array(v: Any) -> bool:
    return _module(v) == "numpy" and type(v).__name__ == "ndarray"


def _is_tensor(v: Any) -> bool:
    return _module(v).startswith("torch") and hasattr(v, "detach") and hasattr(v, "shape")


def _is_torch_module(v: Any) -> bool:
    return hasattr(v, "state_dict") and hasattr(v, "parameters") and callable(getattr(v, "state_dict", None))


def _is_estimator(v: Any) -> bool:
    return callable(getattr(v, "get_params", None)) and hasattr(v, "fit")


def _same(a: Any, b: Any) -> bool:
    """Equality that never raises and treats arrays, frames and NaN sanely."""
    if a is b:
        return True
    if _is_array(a) or _is_array(b) or _is_tensor(a) or _is_tensor(b):
        d = compare_arrays(a, b)
        return not d.details.get("changed_elements") and not d.details.get("shape_changed") \
            and not d.details.get("dtype_changed")
    try:
        eq = a == b
        if isinstance(eq, bool):
            return eq or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))
        if hasattr(eq, "all"):
            return bool(eq.all())
        return bool(eq)
    except Exception:
        return short_repr(a, 10_000) == short_repr(b, 10_000)


def _shape(v: Any) -> str:
    return "x".join(str(d) for d in v.shape) or "scalar"


def _to_numpy(v: Any) -> Any:
    if _is_tensor(v):
        return v.detach().cpu().numpy()
    return v


def compare_arrays(old: Any, new: Any) -> ValueDiff:
    """numpy arrays (or torch tensors): shape, dtype, changed elements, largest absolute difference."""
    import numpy as np

    kind = "tensor" if _is_tensor(new) or _is_tensor(old) else "array"
    a, b = np.asarray(_to_numpy(old)), np.asarray(_to_numpy(new))
    out = ValueDiff(kind)
    if a.shape != b.shape:
        out.facts.append(f"shape {_shape(a)} -> {_shape(b)}")
        out.details["shape_changed"] = True
    else:
        out.facts.append(f"shape {_shape(a)}")
    if a.dtype != b.dtype:
        out.facts.append(f"dtype {a.dtype} -> {b.dtype}")
        out.details["dtype_changed"] = True
    else:
        out.facts.append(f"dtype {a.dtype}")
    out.details.update(old_shape=list(a.shape), new_shape=list(b.shape), old_dtype=str(a.dtype), new_dtype=str(b.dtype))
    if a.shape != b.shape:
        return out
    numeric = a.dtype.kind in "biufc" and b.dtype.kind in "biufc"
    try:
        if numeric:
            fa, fb = a.astype(np.complex128 if "c" in (a.dtype.kind, b.dtype.kind) else np.float64), \
                b.astype(np.complex128 if "c" in (a.dtype.kind, b.dtype.kind) else np.float64)
            both_nan = np.isnan(fa) & np.isnan(fb)
            differ = (fa != fb) & ~both_nan
            changed = int(differ.sum())
            delta = np.abs(fa - fb)
            delta = np.where(both_nan, 0.0, delta)
            max_abs = float(np.nanmax(delta)) if delta.size else 0.0
            if np.isnan(delta).any():  # a NaN on one side only
                max_abs = float("nan")
            out.details["max_abs_diff"] = max_abs
        else:
            changed = int((a != b).sum())
    except (TypeError, ValueError):  # object arrays whose elements do not compare
        changed = sum(not _same(x, y) for x, y in zip(a.ravel().tolist(), b.ravel().tolist()))
    out.details["changed_elements"] = changed
    out.facts.append(f"{changed:,} of {a.size:,} elements changed")
    if numeric and "max_abs_diff" in out.details:
        out.facts.append(f"max abs difference {_num(out.details['max_abs_diff'])}")
    return out


def _num(x: float) -> str:
    return f"{x:.6g}"


def _cell(v: Any) -> str:
    item = getattr(v, "item", None)
    if callable(item) and _module(v) == "numpy":  # np.float64(3.0) -> 3.0
        try:
            v = item()
        except (TypeError, ValueError):
            pass
    return short_repr(v, 40)


def compare_frames(old: Any, new: Any) -> ValueDiff:
    """pandas DataFrames: shape, columns, dtypes, changed rows and cells, a sample of changed rows."""
    import numpy as np

    out = ValueDiff("dataframe")
    so, sn = "x".join(map(str, old.shape)), "x".join(map(str, new.shape))
    out.facts.append(f"shape {so} -> {sn}" if so != sn else f"shape {sn}")
    oc, nc = [str(c) for c in old.columns], [str(c) for c in new.columns]
    added = [c for c, s in zip(new.columns, nc) if s not in oc]
    removed = [c for c, s in zip(old.columns, oc) if s not in nc]
    out.details.update(old_shape=list(old.shape), new_shape=list(new.shape),
                       columns_added=[str(c) for c in added], columns_removed=[str(c) for c in removed])
    if added:
        out.facts.append("columns added: " + ", ".join(f"{c} ({new[c].dtype})" if not _dup(new, c) else str(c)
                                                       for c in added))
    if removed:
        out.facts.append("columns removed: " + ", ".join(str(c) for c in removed))
    common = [c for c in old.columns if c in set(new.columns) and not _dup(old, c) and not _dup(new, c)]
    dtype_changes = {str(c): (str(old[c].dtype), str(new[c].dtype)) for c in common if old[c].dtype != new[c].dtype}
    out.details["dtype_changes"] = dtype_changes
    for c, (a, b) in dtype_changes.items():
        out.facts.append(f"dtype of {c}: {a} -> {b}")
    # rows: align on the index when it is unique on both sides, else by position
    if old.index.is_unique and new.index.is_unique:
        rows_added = new.index.difference(old.index, sort=False)
        rows_removed = old.index.difference(new.index, sort=False)
        shared = new.index.intersection(old.index, sort=False)
        o, n = old.loc[shared, common], new.loc[shared, common]
    elif len(old) == len(new):
        rows_added = rows_removed = old.index[:0]
        o, n = old[common].reset_index(drop=True), new[common].reset_index(drop=True)
    else:
        out.facts.append("rows not compared: the index has duplicates and the lengths differ")
        return out
    if len(rows_added):
        out.facts.append(f"{plural(len(rows_added), 'row')} added")
    if len(rows_removed):
        out.facts.append(f"{plural(len(rows_removed), 'row')} removed")
    out.details.update(rows_added=int(len(rows_added)), rows_removed=int(len(rows_removed)))
    if not common or not len(o):
        out.details.update(rows_changed=0, cells_changed=0)
        return out
    diff_mask = np.zeros(o.shape, dtype=bool)
    max_abs: float | None = None
    for j, c in enumerate(common):
        a, b = o[c].to_numpy(), n[c].to_numpy()
        try:
            ne = ~(_eq_or_both_nan(a, b))
        except Exception:
            ne = np.array([not _same(x, y) for x, y in zip(a.tolist(), b.tolist())], dtype=bool)
        diff_mask[:, j] = ne
        if a.dtype.kind in "biuf" and b.dtype.kind in "biuf" and ne.any():
            d = np.abs(a.astype(np.float64) - b.astype(np.float64))[ne]
            d = d[~np.isnan(d)]
            if d.size:
                max_abs = max(max_abs or 0.0, float(d.max()))
    changed_rows = np.flatnonzero(diff_mask.any(axis=1))
    out.details.update(rows_changed=int(changed_rows.size), cells_changed=int(diff_mask.sum()))
    if max_abs is not None:
        out.details["max_abs_diff"] = max_abs
    if changed_rows.size:
        out.facts.append(f"{plural(int(changed_rows.size), 'row')} changed ({plural(int(diff_mask.sum()), 'cell')})"
                         + (f", max abs difference {_num(max_abs)}" if max_abs is not None else ""))
        cols = [j for j in range(len(common)) if diff_mask[:, j].any()][:SAMPLE_COLUMNS]
        rows = []
        for i in changed_rows[:SAMPLE_ROWS]:
            cells = [(_cell(o.iat[i, j]), _cell(n.iat[i, j])) if diff_mask[i, j] else (_cell(n.iat[i, j]),) * 2
                     for j in cols]
            rows.append((_cell(o.index[i]), cells))
        out.sample = Sample([str(common[j]) for j in cols], rows, int(changed_rows.size))
    return out


def _dup(frame: Any, column: Any) -> bool:
    return list(frame.columns).count(column) > 1


def _eq_or_both_nan(a: Any, b: Any) -> Any:
    import numpy as np

    eq = np.asarray(a == b, dtype=bool)
    if a.dtype.kind in "fc" or b.dtype.kind in "fc" or a.dtype.kind == "O":
        import pandas as pd

        eq |= np.asarray(pd.isna(a), dtype=bool) & np.asarray(pd.isna(b), dtype=bool)
    return eq


def compare_series(old: Any, new: Any) -> ValueDiff:
    out = compare_frames(old.to_frame(name="value"), new.to_frame(name="value"))
    out.kind = "series"
    out.facts = [f for f in out.facts if not f.startswith("columns ")]
    out.facts = [f.replace("dtype of value", "dtype") for f in out.facts]
    if old.name != new.name:
        out.facts.append(f"name {old.name!r} -> {new.name!r}")
    return out


def _param(name: str, a: Any, b: Any, missing: object) -> ParamChange | None:
    if a is missing:
        return ParamChange(name, "", short_repr(b), status="added")
    if b is missing:
        return ParamChange(name, short_repr(a), "", status="removed")
    if _same(a, b):
        return None
    p = ParamChange(name, short_repr(a), short_repr(b))
    if _is_array(a) or _is_tensor(a):
        d = compare_arrays(a, b)
        p.old, p.new = _array_label(a), _array_label(b)
        p.max_abs_diff = d.details.get("max_abs_diff")
    return p


def _array_label(v: Any) -> str:
    return f"{type(v).__name__} {getattr(v, 'dtype', '')} {_shape(v)}"


def compare_models(old: Any, new: Any) -> ValueDiff:
    """Estimators (get_params + fitted attributes), torch modules (state_dict), other objects (attributes)."""
    out = ValueDiff("model")
    missing = object()
    if type(old) is not type(new):
        out.facts.append(f"type {type(old).__name__} -> {type(new).__name__}")
    if _is_torch_module(old) and _is_torch_module(new):
        sa, sb = old.state_dict(), new.state_dict()
        for k in list(sa) + [k for k in sb if k not in sa]:
            p = _param(k, sa.get(k, missing), sb.get(k, missing), missing)
            if p:
                out.params.append(p)
        out.facts.append(f"{len(out.params)} of {len(set(sa) | set(sb))} parameters changed")
    else:
        if _is_estimator(old) and _is_estimator(new):
            try:
                pa, pb = old.get_params(deep=False), new.get_params(deep=False)
            except Exception:
                pa, pb = {}, {}
            for k in sorted(set(pa) | set(pb)):
                p = _param(k, pa.get(k, missing), pb.get(k, missing), missing)
                if p:
                    out.params.append(p)
            hyper = len(out.params)
            if hyper:
                out.facts.append(f"{hyper} hyper-parameter{'s' if hyper != 1 else ''} changed")
            fa = {k: v for k, v in vars(old).items() if k.endswith("_") and not k.startswith("_")}
            fb = {k: v for k, v in vars(new).items() if k.endswith("_") and not k.startswith("_")}
            was, now = bool(fa), bool(fb)
            if was != now:
                out.facts.append("fitted" if now else "no longer fitted")
        else:
            fa = {k: v for k, v in getattr(old, "__dict__", {}).items() if not k.startswith("__")}
            fb = {k: v for k, v in getattr(new, "__dict__", {}).items() if not k.startswith("__")}
        before = len(out.params)
        unseen = 0
        for k in sorted(set(fa) | set(fb)):
            p = _param(k, fa.get(k, missing), fb.get(k, missing), missing)
            if p and p.status == "changed" and p.old == p.new and p.max_abs_diff is None:
                # unequal, yet printed the same (a matplotlib transform keyed by id(), a cache): a line
                # with two equal sides shows nothing, and a figure had ~20 of them around its real change
                unseen += 1
            elif p:
                out.params.append(p)
        learned = len(out.params) - before
        if learned:
            out.facts.append(f"{learned} attribute{'s' if learned != 1 else ''} changed")
        if unseen:
            out.facts.append(f"{unseen} more differ{'s' if unseen == 1 else ''} in what {'its' if unseen == 1 else 'their'} "
                             "repr does not show")
    diffs = [p.max_abs_diff for p in out.params if p.max_abs_diff is not None]
    if diffs:
        out.details["max_abs_diff"] = max(diffs)
    out.details["params_changed"] = [p.name for p in out.params]
    return out


def compare_mappings(old: Mapping, new: Mapping) -> ValueDiff:
    out = ValueDiff("mapping")
    missing = object()
    keys = list(old) + [k for k in new if k not in old]
    for k in keys:
        p = _param(short_repr(k, 40), old.get(k, missing), new.get(k, missing), missing)
        if p:
            out.params.append(p)
    counts = {s: sum(p.status == s for p in out.params) for s in ("added", "removed", "changed")}
    out.facts.append(", ".join(f"{n} key{'s' if n != 1 else ''} {s}" for s, n in counts.items() if n) or "no key changed")
    out.details.update({f"keys_{s}": [p.name for p in out.params if p.status == s] for s in counts})
    return out


def compare_values(old: Any, new: Any) -> ValueDiff:
    """How ``new`` differs from ``old``, in the terms of their type (see the module docstring)."""
    try:
        if _is_frame(old) and _is_frame(new):
            return compare_frames(old, new)
        if _is_series(old) and _is_series(new):
            return compare_series(old, new)
        if (_is_array(old) or _is_tensor(old)) and (_is_array(new) or _is_tensor(new)):
            return compare_arrays(old, new)
        if (_is_torch_module(old) and _is_torch_module(new)) or (_is_estimator(old) and _is_estimator(new)):
            return compare_models(old, new)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            return compare_mappings(old, new)
        if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
            out = ValueDiff("sequence")
            if len(old) != len(new):
                out.facts.append(f"length {len(old)} -> {len(new)}")
            else:
                changed = sum(not _same(x, y) for x, y in zip(old, new))
                out.facts.append(f"{changed} of {len(old)} items changed")
            out.params.append(ParamChange("value", short_repr(old), short_repr(new)))
            return out
        if type(old) is type(new) and not isinstance(old, (str, int, float, complex, bool, bytes)) \
                and hasattr(old, "__dict__") and not isinstance(old, type) and not callable(old):
            return compare_models(old, new)  # plain objects: their attributes
    except Exception as e:  # a comparison must not break the diff: say it could not be done
        return ValueDiff("value", facts=[f"values not compared ({type(e).__name__}: {e})"])
    out = ValueDiff("value")
    if type(old) is not type(new):
        out.facts.append(f"type {type(old).__name__} -> {type(new).__name__}")
    out.params.append(ParamChange("value", short_repr(old), short_repr(new)))
    return out


# -- comparing two states of a workspace ------------------------------------------------------

def _loadable(rec: VarRecord, limit: int) -> str | None:
    """Why a record's value is not loaded for comparison, or None when it is."""
    if rec.kind == UNPICKLABLE:
        return f"not saved ({rec.reason or 'not picklable'})"
    if rec.kind != "value":
        return f"a {rec.kind}, compared by record only"
    if rec.size and rec.size > limit:
        return f"larger than the comparison limit ({rec.size:,} bytes)"
    return None


def semantic_diff(ws: Workspace, a: str = "HEAD", b: str | None = None, *,
                  namespace: Mapping[str, Any] | None = None, names: list[str] | None = None,
                  load_limit: int = LOAD_LIMIT, trust: bool = False, safe: bool = False,
                  live: Mapping[str, Any] | None = None, carried: str | None = None) -> SemanticDiff:
    """Which variables differ from revision ``a`` to ``b`` (or to a live ``namespace``), and how.
    ``live``: the namespace's records when a session has them (:meth:`Workspace.diff`); those of names
    the namespace lacks are carried over from commit ``carried`` (a fresh kernel's values not loaded),
    whose values are compared for them.

    Changed variables are loaded on both sides and compared with
    :func:`compare_values`; added and removed ones are described by their
    records. ``names`` limits the diff to those variables. Revisions that do not
    exist raise :class:`txgit.errors.UnknownRevision`. ``trust``/``safe``: as for
    :meth:`Workspace.load`, for states from remotes not marked trusted. ``a`` alone
    may be a range (``A..B``; ``A...B``: from the merge base), as for :meth:`Workspace.diff`.
    """
    rng = RevRange.parse(a) if b is None and namespace is None else None
    if rng is not None:  # A..B, A...B: the two commits Workspace.diff compares for them
        ends = ws.diff(a)
        old_info, new_info = ws.resolve(ends.a), ws.resolve(ends.b)
        a, b = rng.old_label, rng.right
    else:
        old_info = ws.resolve(a)
        new_info = ws.resolve(b) if b is not None else None
    if new_info is None and namespace is None:
        raise TypeError("semantic_diff needs a second revision or a namespace")
    records: StateDiff = ws.diff(old_info.id, new_info.id if new_info else None, namespace=namespace, live=live)
    keep = set(names) if names is not None else None
    changes: list[VariableChange] = []
    for name, rec in records.added.items():
        changes.append(VariableChange(name, "added", None, rec))
    for name, rec in records.removed.items():
        changes.append(VariableChange(name, "removed", rec, None))
    for name, (old_rec, new_rec) in records.changed.items():
        if keep is not None and name not in keep:
            continue  # loading it to drop it was O(changed) loads per conflict listed
        ch = VariableChange(name, "changed", old_rec, new_rec)
        why = _loadable(old_rec, load_limit) or (_loadable(new_rec, load_limit) if new_info is not None else None)
        if why is None:
            try:
                old = ws.load(name, old_info.id, trust=trust, safe=safe)
                if new_info is not None:
                    new = ws.load(name, new_info.id, trust=trust, safe=safe)
                elif carried is not None and name not in namespace:  # type: ignore[operator]
                    new = ws.load(name, carried, trust=trust, safe=safe)
                else:
                    new = namespace[name]  # type: ignore[index]
                ch.diff = compare_values(old, new)
            except (TxgitError, ImportError, AttributeError) as e:
                ch.note = f"values not compared: {e}"
        else:
            ch.note = why
        changes.append(ch)
    if keep is not None:
        unknown = keep - {c.name for c in changes} - set(ws.state(old_info.id).variables)
        if new_info is not None:
            unknown -= set(ws.state(new_info.id).variables)
        elif namespace is not None:
            unknown -= set(namespace)
        if unknown:
            raise TxgitError(f"no variable {sorted(unknown)[0]!r} in either state")
        changes = [c for c in changes if c.name in keep]
    changes.sort(key=lambda c: c.name)
    return SemanticDiff(a, b if b is not None else "(namespace)", old_info.id, new_info.id if new_info else None, changes)
