"""Abstract interpretation of the IR with the knowledge base: which source columns flow where.

Every data value (frame, series, array, list of column names) is a :class:`Data`:
an ordered map from its current column names to the *source columns* they
derive from, plus, when the full list is not known, a :class:`Rest` ("every
other column of train.csv except Survived, Name"). Models are :class:`Model`
values; a ``fit`` records the Data passed as X and y. Facts the code alone
cannot give (a file's header, the real columns of a committed frame) come in
through :class:`Facts` and turn a Rest into a list.
"""

from __future__ import annotations

import csv
import fnmatch
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from txgit.lineage import ir

KB_PATH = Path(__file__).with_name("kb.json")
# the scikit-learn and pandas surfaces, generated from the installed libraries by gen_kb.py (kb.json wins)
KB_GENERATED_PATHS = (Path(__file__).with_name("kb_sklearn.json"), Path(__file__).with_name("kb_pandas.json"))


# -- values ------------------------------------------------------------------------------

@dataclass(frozen=True, order=True)
class SourceColumn:
    """One column of one source (a file or table the code reads)."""

    source: str
    column: str

    def __str__(self) -> str:
        return f"{self.source}:{self.column}"


@dataclass(frozen=True)
class Rest:
    """The columns of ``sources`` not listed in the value, less ``excluded`` (not known by name)."""

    sources: frozenset[str]
    excluded: frozenset[str]
    # chosen by position from a source whose header is not known: "1..-2" (iloc[:, 1:-1]), "-1", or "?"
    # (a positional choice the code does not state); None: every column not excluded
    positions: str | None = None
    counted_without: bool = False  # the positions count the columns left once ``excluded`` were dropped

    def describe(self, listed: bool = True) -> str:
        """In words; ``listed``: some columns of the value are also named (the rest are the "other" ones)."""
        srcs = ", ".join(sorted(self.sources))
        exc = f" except {', '.join(sorted(self.excluded))}" if self.excluded else ""
        if self.positions == "?":
            return f"some columns of {srcs}, chosen by position" + exc
        if self.positions is not None:
            many = ".." in self.positions or ":" in self.positions
            if self.counted_without and self.excluded:
                return f"column{'s' if many else ''} {self.positions} of {srcs} (counted without " \
                       f"{', '.join(sorted(self.excluded))})"
            return f"column{'s' if many else ''} {self.positions} of {srcs}" + exc
        return f"all {'other ' if listed else ''}columns of {srcs}" + exc


@dataclass
class Data:
    """A frame, series, array or column-name list, as far as lineage cares."""

    kind: str  # frame | series | array | names | groupby
    cols: dict[str, frozenset[SourceColumn]]
    rest: Rest | None = None
    cells: frozenset[str] = frozenset()
    notes: tuple[str, ...] = ()
    dtypes: dict[str, str] = field(default_factory=dict)  # column -> 'number' | 'object' | …, where known

    def prov(self) -> frozenset[SourceColumn]:
        out: set[SourceColumn] = set()
        for p in self.cols.values():
            out |= p
        return frozenset(out)

    def sources(self) -> set[str]:
        out = {s.source for s in self.prov()}
        if self.rest:
            out |= set(self.rest.sources)
        return out

    def with_(self, **kw: Any) -> Data:
        return replace(self, **kw)


@dataclass
class Model:
    """An object with ``fit``: an estimator, pipeline, search or booster."""

    type: str
    X: Data | None = None
    y: Data | None = None
    cells: frozenset[str] = frozenset()
    fit_at: str | None = None
    selector: Data | None = None  # a ColumnTransformer's choice of columns (names), when first in a pipeline
    remainder: bool = True  # columns a ColumnTransformer passes on besides its selection
    transformer: bool = False
    subset: bool = False  # keeps an unknown subset of its input (feature selection)
    notes: tuple[str, ...] = ()
    fit_returns_self: bool = True  # False: fit returns something else (a Keras History), not the model
    kind_known: bool = True  # False: not known to be a model or a transformer (a pipeline ending in an unknown step)


@dataclass
class DatasetV:
    """xgboost.DMatrix / lightgbm.Dataset: features and label bundled."""

    X: Data | None
    y: Data | None
    cells: frozenset[str] = frozenset()


@dataclass
class UserClass:
    """A model or transformer class the analysed code defines."""

    name: str
    transformer: bool
    model: bool  # has fit (or scikit-learn bases); else some other class, whose instances we do not follow


@dataclass
class Handle:
    """An open file (``open(path)``): where a pickle is written to or read from."""

    path: str | None


@dataclass
class Ref:
    """A module, function or class named by its qualified name (from imports)."""

    qualname: str


@dataclass
class Bound:
    """``obj.method`` not yet called."""

    obj: Any
    name: str


@dataclass
class Const:
    value: Any


@dataclass
class SeqV:
    items: list[Any]


@dataclass
class DictV:
    items: dict[Any, Any]


@dataclass
class UserFunction:
    node: ir.FunctionDef | ir.Lambda
    env: Env


@dataclass
class Unknown:
    why: str
    cells: frozenset[str] = frozenset()
    prov: frozenset[SourceColumn] = frozenset()  # what it derives from, if anything is known


Value = Any


class Env(dict):
    """Variable -> value, with the enclosing (module) scope as fallback."""

    def __init__(self, parent: Env | None = None) -> None:
        super().__init__()
        self.parent = parent

    def lookup(self, name: str) -> Value | None:
        env: Env | None = self
        while env is not None:
            if name in env:
                return env[name]
            env = env.parent
        return None


# -- the knowledge base -------------------------------------------------------------------

class KnowledgeBase:
    """API rules (from ``kb.json``): qualified name or ``kind.method`` -> rule dict."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.apis: dict[str, dict[str, Any]] = doc["apis"]
        # old module paths -> today's (sklearn.cross_validation -> sklearn.model_selection), longest first
        self.aliases = sorted(doc.get("aliases", {}).items(), key=lambda kv: -len(kv[0]))
        self.exact = {k: v for k, v in self.apis.items() if "*" not in k}
        # most specific pattern first
        self.patterns = sorted(((k, v) for k, v in self.apis.items() if "*" in k), key=lambda kv: -len(kv[0]))
        self.frame_attributes = set(doc.get("frame_attributes", []))
        self.same_attributes = set(doc.get("same_attributes", []))

    @classmethod
    def load(cls, path: str | Path | None = None, extra: dict[str, dict[str, Any]] | None = None) -> KnowledgeBase:
        doc = _load_json(str(path or KB_PATH))
        if path is None:
            generated: dict[str, dict[str, Any]] = {}
            for gen in KB_GENERATED_PATHS:
                if gen.exists():
                    generated.update(_load_json(str(gen))["apis"])
            doc = {**doc, "apis": {**generated, **doc["apis"]}}
        if extra:
            doc = {**doc, "apis": {**doc["apis"], **extra}}
        return cls(doc)

    def canonical(self, qualname: str) -> str:
        """The current name of an API imported by an old module path."""
        for old, new in self.aliases:
            if qualname == old or qualname.startswith(old + "."):
                return new + qualname[len(old):]
        return qualname

    def rule(self, key: str) -> dict[str, Any] | None:
        r = self.exact.get(key)
        if r is not None:
            return r
        for pat, r in self.patterns:
            if fnmatch.fnmatchcase(key, pat):
                return r
        return None


@lru_cache(maxsize=8)
def _load_json(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


# -- facts from outside the code ------------------------------------------------------------

@dataclass
class Facts:
    """What is known besides the code.

    ``base``: folder to find the files the code reads (their header gives the columns);
    None: static only. ``runtime``: called after each cell with the environment, to
    replace what the analysis inferred by what a commit recorded.
    """

    base: Path | None = None
    headers: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)

    def header(self, path: str, sep: str | None = None, any_text: bool = False
               ) -> tuple[list[str], dict[str, str]] | None:
        """The first row of a delimited text file and a guess of each column's type (from 50 rows).
        ``any_text``: the code reads it with read_csv, so a name like ``adult.data`` is text too."""
        if path in self.headers:
            return self.headers[path]
        if self.base is None or path.endswith(_BINARY_SUFFIXES) or not (
                any_text or path.endswith((".csv", ".tsv", ".txt"))):
            return None
        f = (self.base / path) if not Path(path).is_absolute() else Path(path)
        delimiter = sep if sep is not None and len(sep) == 1 else "\t" if path.endswith(".tsv") else ","
        try:
            with f.open(newline="") as fh:
                rows = list(zip(range(51), csv.reader(fh, delimiter=delimiter, skipinitialspace=True)))
        except (OSError, UnicodeDecodeError, csv.Error):
            return None
        if not rows:
            return None
        names: list[str] = []
        for i, n in enumerate(rows[0][1]):  # pandas' names for empty and repeated header cells
            n = n or f"Unnamed: {i}"
            k, base = 1, n
            while n in names:
                n, k = f"{base}.{k}", k + 1
            names.append(n)
        dtypes: dict[str, str] = {}
        for i, n in enumerate(names):
            vals = [r[i] for _, r in rows[1:] if i < len(r) and r[i] != ""]
            try:
                [float(v) for v in vals]
                dtypes[n] = "number" if vals else "object"
            except ValueError:
                dtypes[n] = "object"
        self.headers[path] = (names, dtypes)
        return self.headers[path]


_BINARY_SUFFIXES = (".gz", ".zip", ".bz2", ".xz", ".parquet", ".feather", ".xlsx", ".xls", ".pkl", ".pickle", ".h5",
                    ".hdf", ".json", ".npy", ".npz")


# -- results ------------------------------------------------------------------------------------

@dataclass
class Fit:
    """One training call: the model, what it was given, where."""

    model: Model
    where: str
    var: str | None = None


def _union(*provs: Iterable[SourceColumn]) -> frozenset[SourceColumn]:
    out: set[SourceColumn] = set()
    for p in provs:
        out |= set(p)
    return frozenset(out)


def value_prov(v: Value) -> frozenset[SourceColumn]:
    if isinstance(v, Bound):  # s.cat.codes, s.dt.year: an attribute of data derives from it
        return value_prov(v.obj)
    if isinstance(v, Data):
        return v.prov()
    if isinstance(v, SeqV):
        return _union(*(value_prov(i) for i in v.items))
    if isinstance(v, DictV):
        return _union(*(value_prov(i) for i in v.items.values()))
    if isinstance(v, Unknown):
        return v.prov
    return frozenset()


def value_cells(v: Value) -> frozenset[str]:
    if isinstance(v, Bound):
        return value_cells(v.obj)
    if isinstance(v, (Data, Model, DatasetV, Unknown)):
        return v.cells
    if isinstance(v, SeqV):
        return frozenset().union(*(value_cells(i) for i in v.items)) if v.items else frozenset()
    if isinstance(v, DictV):
        return frozenset().union(*(value_cells(i) for i in v.items.values())) if v.items else frozenset()
    return frozenset()


def _const_names(v: Value) -> list[str] | None:
    """A column label or list of labels known by value."""
    if isinstance(v, Const) and isinstance(v.value, (str, int)) and not isinstance(v.value, bool):
        return [v.value]
    if isinstance(v, SeqV):
        out: list[str] = []
        for i in v.items:
            n = _const_names(i)
            if n is None:
                return None
            out += n
        return out
    if isinstance(v, Data) and v.kind == "names" and v.rest is None:
        return list(v.cols)
    return None


class Interpreter:
    """Runs IR statements over an environment, recording every fit."""

    MAX_DEPTH = 6
    MAX_UNROLL = 64

    def __init__(self, kb: KnowledgeBase | None = None, facts: Facts | None = None) -> None:
        self.kb = kb or KnowledgeBase.load()
        self.facts = facts or Facts()
        self.env = Env()
        self.fits: list[Fit] = []
        self.unknown: list[str] = []  # unknown APIs and constructs met, "where: what"
        self.cell = "<script>"
        self.line = 0
        self._depth = 0
        self._returns: list[list[Value]] = []
        self.saved: dict[str, Value] = {}  # path -> the value the script wrote there (pickle, to_csv)
        self._control: list[frozenset[SourceColumn]] = []  # what the enclosing if/while tests derive from
        self._star_modules: list[str] = []  # from M import *: where undefined names may come from, latest first

    # -- statements ----------------------------------------------------------------------------
    def run(self, stmts: list[ir.Stmt], cell: str | None = None, *, per_statement: bool = False) -> None:
        """Interpret ``stmts`` as one cell; ``per_statement``: each top-level statement is a cell
        named ``cell:line`` (a script's statements, as ``txgit run`` commits them)."""
        if not per_statement:
            if cell is not None:
                self.cell = cell
            self._block(stmts, self.env)
            return
        for s in stmts:
            self.cell = f"{cell}:{s.line}"
            self._block([s], self.env)

    def where(self) -> str:
        """Where the statement being interpreted is: 'train.py:14' or '[3]:2' (line 2 of cell 3)."""
        if self.cell.endswith(f":{self.line}"):
            return self.cell
        base = self.cell.rsplit(":", 1)[0] if self.cell.rsplit(":", 1)[-1].isdigit() else self.cell
        return f"{base}:{self.line}"

    def _note(self, what: str) -> None:
        item = f"{self.where()}: {what}"
        if item not in self.unknown:
            self.unknown.append(item)

    def _block(self, stmts: list[ir.Stmt], env: Env) -> None:
        for s in stmts:
            self.line = s.line
            try:
                self._stmt(s, env)
            except RecursionError:
                self._note("too deeply nested to follow")
            except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
                # one construct the interpreter trips on must not lose the rest of the script
                self._note(f"statement not followed ({type(exc).__name__}: {exc})")

    def _stmt(self, s: ir.Stmt, env: Env) -> None:
        if isinstance(s, ir.Assign):
            v = self.eval(s.value, env)
            for t in s.targets:
                self.assign(t, v, env)
        elif isinstance(s, ir.ExprStmt):
            self.eval(s.value, env)
        elif isinstance(s, ir.Import):
            for local, qual in s.bindings.items():
                if local.startswith("*"):
                    self._star_modules.insert(0, self.kb.canonical(qual))
                else:
                    env[local] = Ref(self.kb.canonical(qual))
        elif isinstance(s, ir.For):
            it = self.eval(s.iter, env)
            items = self._iter_items(it)
            for item in items[: self.MAX_UNROLL]:
                self.assign(s.target, item, env)
                self._block(s.body, env)
        elif isinstance(s, ir.Branch):
            control = value_prov(self.eval(s.test, env)) if s.test is not None else frozenset()
            if control:
                self._control.append(control)
            try:
                for body in s.bodies:
                    self._block(body, env)
            finally:
                if control:
                    self._control.pop()
        elif isinstance(s, ir.FunctionDef):
            env[s.name] = UserFunction(s, env)
        elif isinstance(s, ir.ClassDef):
            env[s.name] = self._user_class(s, env)
        elif isinstance(s, ir.Return):
            if self._returns:
                self._returns[-1].append(Const(None) if s.value is None else self.eval(s.value, env))
        elif isinstance(s, ir.Delete):
            for t in s.targets:
                if isinstance(t, ir.TName):
                    env.pop(t.id, None)
                elif isinstance(t, ir.TSub):
                    obj = self.eval(t.obj, env)
                    names = _const_names(self.eval(t.index, env))
                    if isinstance(obj, Data) and names:
                        self._rebind(t.obj, self._drop(obj, names), env)

    def _user_class(self, s: ir.ClassDef, env: Env) -> Value:
        """A class the script defines. One with ``fit`` (or built on scikit-learn's bases) makes models or
        transformers; its methods are not followed, so the columns it is given flow through, noted."""
        bases = [b.qualname for b in (self.eval(x, env) for x in s.bases) if isinstance(b, Ref)]
        sklearn_base = any(b.startswith(("sklearn.", "xgboost.", "lightgbm.", "keras.")) for b in bases)
        transformer = ("transform" in s.methods or any(b.endswith("TransformerMixin") for b in bases)) \
            and "predict" not in s.methods
        return UserClass(s.name, transformer, model="fit" in s.methods or sklearn_base)

    def _iter_items(self, it: Value) -> list[Value]:
        if isinstance(it, SeqV):
            return list(it.items)
        if isinstance(it, Data) and it.kind in ("names", "frame") and it.rest is None:
            return [Const(c) for c in it.cols]
        if isinstance(it, DictV):
            return list(it.items.keys())
        return [Unknown("loop item", value_cells(it), value_prov(it))]

    def _under_control(self, v: Value) -> Value:
        """A number chosen by a test on data derives from that data (``if row["quality"] >= 7: val = 1``;
        ``if v <= 4: labels += [0]``): the recoding idiom. Strings (column names) and data values stay as they are."""
        prov = frozenset().union(*self._control)
        if isinstance(v, Const) and isinstance(v.value, (int, float, bool)) and not isinstance(v.value, str):
            return Unknown("a value chosen by a condition on data", frozenset({self.cell}), prov)
        if isinstance(v, SeqV) and any(isinstance(i, Const) and isinstance(i.value, (int, float, bool))
                                       for i in v.items):
            return SeqV([self._under_control(i) if isinstance(i, Const) else i for i in v.items])
        return v

    def assign(self, t: ir.Target, v: Value, env: Env) -> None:
        if self._control and isinstance(v, (Const, SeqV)):
            v = self._under_control(v)
        if isinstance(t, ir.TName):
            env[t.id] = v
        elif isinstance(t, ir.TTuple):
            items = v.items if isinstance(v, SeqV) else None
            for i, sub in enumerate(t.items):
                if items is not None and i < len(items):
                    self.assign(sub, items[i], env)
                elif isinstance(v, Data) and v.kind == "names" and v.rest is None and i < len(v.cols):
                    self.assign(sub, Const(list(v.cols)[i]), env)
                else:
                    self.assign(sub, Unknown("unpacked item", value_cells(v), value_prov(v)), env)
        elif isinstance(t, ir.TSub):
            obj = self.eval(t.obj, env)
            if isinstance(obj, Data):
                self._setitem(t.obj, obj, self.eval(t.index, env), v, env)
            elif isinstance(obj, DictV):
                key = self.eval(t.index, env)
                if isinstance(key, Const):
                    obj.items[key.value] = v
        elif isinstance(t, ir.TAttr):
            obj = self.eval(t.obj, env)
            if isinstance(obj, Data) and obj.kind == "frame" and t.name == "columns":
                self._rebind(t.obj, self._set_columns(obj, v), env)
            elif isinstance(obj, Data) and obj.kind == "frame" and t.name not in self.kb.frame_attributes:
                self._setitem(t.obj, obj, Const(t.name), v, env)

    def _set_columns(self, frame: Data, v: Value) -> Data:
        """``df.columns = [...]``: new names for the same columns, by position."""
        if isinstance(v, Data) and v.kind == "names":  # df.columns.str.lower(): names that keep their origin
            return frame.with_(cols=dict(v.cols), rest=v.rest, cells=frame.cells | v.cells | {self.cell},
                               notes=frame.notes + tuple(n for n in v.notes if n not in frame.notes))
        names = _const_names(v)
        if names is None:
            self._note("columns renamed to names not known statically")
            return frame.with_(cells=frame.cells | {self.cell}, notes=frame.notes + ("columns renamed in code",))
        names = [str(n) for n in names]
        if frame.rest is None and len(names) == len(frame.cols):
            cols = {}
            header_is_data = any(_looks_like_data(old) for old in frame.cols)
            for n, (old, p) in zip(names, frame.cols.items()):
                # a file without a header row: pandas took its first record as names ("5.1"); the code's
                # names are the only names these columns have
                if header_is_data and p == {SourceColumn(s.source, old) for s in p}:
                    p = frozenset(SourceColumn(s.source, n) for s in p)
                cols[n] = p
            return frame.with_(cols=cols, cells=frame.cells | {self.cell},
                               dtypes={n: frame.dtypes[c] for n, c in zip(names, frame.cols) if c in frame.dtypes})
        if frame.rest is not None and not frame.cols and len(frame.rest.sources) == 1 and not frame.rest.excluded:
            # the file's own header is not known: the names the code gives are all we can say
            (src,) = frame.rest.sources
            return Data("frame", {n: frozenset({SourceColumn(src, n)}) for n in names}, None,
                        frame.cells | {self.cell}, frame.notes + (f"column names of {src} as the code sets them",))
        self._note(f"{len(names)} column names set for a frame whose columns are not all known")
        return frame.with_(cells=frame.cells | {self.cell}, notes=frame.notes + ("columns renamed in code",))

    def _rebind(self, e: ir.Expr, v: Value, env: Env) -> None:
        """Write ``v`` back where ``e`` reads from (in-place methods, column assignment)."""
        if isinstance(e, ir.Name):
            target = env
            while target is not None and e.id not in target:
                target = target.parent
            old = (target if target is not None else env).get(e.id)
            (target if target is not None else env)[e.id] = v
            if isinstance(old, (Data, Model)) and old is not v:
                self._alias(old, v, env)
        elif isinstance(e, ir.Attr) and e.name in ("loc", "iloc", "at", "iat", "ix", "values"):
            self._rebind(e.obj, v, env)

    def _alias(self, old: Value, new: Value, env: Env) -> None:
        """An object changed in place is changed under every name and in every list that holds it
        (``for d in [train, test]: d["f"] = ...`` changes train and test; ``for m in models: m.fit(...)``)."""
        def swap(v: Value, depth: int = 0) -> Value:
            if v is old:
                return new
            if depth < 3 and isinstance(v, SeqV):
                v.items[:] = [swap(i, depth + 1) for i in v.items]
            elif depth < 3 and isinstance(v, DictV):
                for k in list(v.items):
                    v.items[k] = swap(v.items[k], depth + 1)
            return v

        scope: Env | None = env
        while scope is not None:
            for name in list(scope):
                scope[name] = swap(scope[name])
            scope = scope.parent

    def _setitem(self, obj_expr: ir.Expr, frame: Data, index: Value, v: Value, env: Env) -> None:
        """``df['c'] = …``, ``df[['a', 'b']] = …``, ``df.loc[mask, 'c'] = …``."""
        if isinstance(obj_expr, ir.Attr) and obj_expr.name in ("loc", "iloc", "at", "iat"):
            base = self.eval(obj_expr.obj, env)
            if not isinstance(base, Data):
                return
            if isinstance(index, SeqV) and len(index.items) == 2:
                rows, col = index.items
                extra = value_prov(rows)
            else:
                col, extra = index, frozenset()
            names = _const_names(col) if obj_expr.name in ("loc", "at") else None
            if names is None:
                self._note(f"assignment through .{obj_expr.name} with columns not known by name")
                return
            frame, obj_expr = base, obj_expr.obj
            prov = _union(value_prov(v), extra)
            new = dict(frame.cols)
            for n in names:
                old = new.get(n)
                if old is None and frame.rest and n not in frame.rest.excluded:
                    old = frozenset(SourceColumn(s, str(n)) for s in frame.rest.sources)
                new[str(n)] = _union(old or (), prov)
            self._rebind(obj_expr, frame.with_(cols=new, cells=frame.cells | value_cells(v) | {self.cell}), env)
            return
        if frame.kind == "array" and isinstance(index, SeqV) and len(index.items) == 2:
            # X[:, 1] = encoder.transform(X[:, 1]): that position keeps its column, plus what the value derives from
            pos = _const_value(index.items[1])
            order = list(frame.cols)
            if isinstance(pos, int) and not isinstance(pos, bool) and frame.rest is None \
                    and -len(order) <= pos < len(order):
                new = dict(frame.cols)
                new[order[pos]] = new[order[pos]] | value_prov(v)
                self._rebind(obj_expr, frame.with_(cols=new, cells=frame.cells | value_cells(v) | {self.cell}), env)
            return
        names = _const_names(index)
        if names is None:
            if isinstance(index, Data) and index.kind in ("series", "array"):
                return  # df[mask] = value: rows only
            self._note("column assignment to a name not known statically")
            return
        new = dict(frame.cols)
        rest = frame.rest
        if isinstance(v, Data) and v.kind in ("frame", "array") and len(names) > 1 and v.rest is None \
                and len(v.cols) == len(names):
            for n, p in zip(names, v.cols.values()):
                new[str(n)] = p
        else:
            prov = value_prov(v)
            for n in names:
                new[str(n)] = prov
        if rest is not None:
            rest = replace(rest, excluded=rest.excluded | {str(n) for n in names})
        # the assigned columns' types are no longer the file's ("<=50K" mapped to 0/1): unknown from here on
        dtypes = {c: t for c, t in frame.dtypes.items() if c not in {str(n) for n in names}}
        self._rebind(obj_expr, frame.with_(cols=new, rest=rest, cells=frame.cells | value_cells(v) | {self.cell},
                                           dtypes=dtypes), env)

    # -- expressions ----------------------------------------------------------------------------
    def eval(self, e: ir.Expr, env: Env) -> Value:
        if isinstance(e, ir.Name):
            v = env.lookup(e.id)
            if v is None:
                if e.id in _BUILTINS:
                    return Ref(f"builtins.{e.id}")
                if e.id in ("get_ipython", "display"):  # notebooks exported as scripts
                    return Ref(f"IPython.{e.id}")
                for mod in self._star_modules:
                    if self.kb.exact.get(self.kb.canonical(f"{mod}.{e.id}")) is not None:
                        return Ref(self.kb.canonical(f"{mod}.{e.id}"))
                return Unknown(f"name {e.id!r} not defined in the analysed code")
            return v
        if isinstance(e, ir.Const):
            return Const(e.value)
        if isinstance(e, ir.Seq):
            return SeqV([self.eval(i, env) for i in e.items])
        if isinstance(e, ir.DictE):
            out: dict[Any, Any] = {}
            for k, val in zip(e.keys, e.values):
                kv = self.eval(k, env) if k is not None else None
                out[kv.value if isinstance(kv, Const) else id(k)] = self.eval(val, env)
            return DictV(out)
        if isinstance(e, ir.Attr):
            return self._attr(self.eval(e.obj, env), e.name)
        if isinstance(e, ir.Sub):
            return self._getitem(self.eval(e.obj, env), e.index, env)
        if isinstance(e, ir.Slice):
            return Const(slice(*(None if x is None else _const_value(self.eval(x, env)) for x in (e.lower, e.upper, e.step))))
        if isinstance(e, ir.Call):
            return self._call(e, env)
        if isinstance(e, ir.Operator):
            return self._operator(e, env)
        if isinstance(e, ir.Lambda):
            return UserFunction(e, env)
        if isinstance(e, ir.Comp):
            return self._comp(e, env)
        if isinstance(e, ir.DictComp):  # {k: i for i, k in enumerate(cats)}: a mapping, as a dict display
            inner = Env(env)
            out: dict[Any, Any] = {}
            for item in self._iter_items(self.eval(e.iter, env))[: self.MAX_UNROLL]:
                self.assign(e.target, item, inner)
                if any(isinstance(c, Const) and c.value is False for c in (self.eval(x, inner) for x in e.conds)):
                    continue
                k = self.eval(e.key, inner)
                out[k.value if isinstance(k, Const) and _hashable(k.value) else id(k)] = self.eval(e.value, inner)
            return DictV(out)
        self._note(f"{e.what} expression")
        return Unknown(e.what)

    def _operator(self, e: ir.Operator, env: Env) -> Value:
        vals = [self.eval(o, env) for o in e.operands]
        if e.op in ("usub", "uadd") and isinstance(vals[0], Const) and isinstance(vals[0].value, (int, float)):
            return Const(-vals[0].value if e.op == "usub" else vals[0].value)
        if e.op == "not" and isinstance(vals[0], Const):
            return Const(not vals[0].value)
        vals = [v.obj if isinstance(v, Bound) and isinstance(v.obj, Data) else v for v in vals]
        if e.op in ("==", "!=") and len(vals) == 2 and isinstance(vals[0], Data) and vals[0].kind == "names" \
                and _const_names(vals[1]) is not None and len(_const_names(vals[1])) == 1:
            # df.columns != "Class": a mask over column names, kept as the names it selects
            picked = _const_names(vals[1])
            if e.op == "!=":
                return self._drop(vals[0], picked)
            return self._select(vals[0], picked)
        if e.op == "+" and all(isinstance(v, SeqV) for v in vals):
            return SeqV(vals[0].items + vals[1].items)
        if e.op == "+" and all(isinstance(v, Const) for v in vals):
            try:
                return Const(vals[0].value + vals[1].value)
            except TypeError:
                return Unknown("+")
        if e.op == "+" and isinstance(vals[0], Data) and vals[0].kind == "names" and _const_names(vals[1]) is not None:
            return self._add_names(vals[0], _const_names(vals[1]))
        if e.op == "-" and isinstance(vals[0], Data) and vals[0].kind == "names" and _const_names(vals[1]) is not None:
            return self._drop(vals[0], _const_names(vals[1]))
        if e.op == "if":
            a, b = vals[0], vals[1]
            if isinstance(a, Data) and isinstance(b, Data) and a.kind == b.kind == "names":
                return a  # a choice between column lists: take the first, note the other
            datas = [v for v in vals if isinstance(v, Data)]
        else:
            datas = [v for v in vals if isinstance(v, Data)]
        if not datas:
            prov = _union(*(value_prov(v) for v in vals))
            return Unknown(f"operator {e.op}", frozenset().union(*(value_cells(v) for v in vals)), prov) if prov else \
                Const(None)
        cells = frozenset({self.cell}).union(*(value_cells(v) for v in vals))
        if len(datas) == 1 and datas[0].kind == "frame" and not any(value_prov(v) for v in vals if v is not datas[0]):
            return datas[0].with_(cells=cells)  # df * 2, df.fillna(0) + 1: same columns
        prov = _union(*(value_prov(v) for v in vals))
        kind = "series" if all(d.kind in ("series", "array") for d in datas) else "frame"
        rests = [d.rest for d in datas if d.rest is not None]
        if rests:  # (X - X.min()) / X.std() on columns not all listed: the same columns, rest included
            return Data("frame" if kind == "frame" else "array", {c: p for d in datas for c, p in d.cols.items()},
                        rests[0], cells, tuple(dict.fromkeys(n for d in datas for n in d.notes)))
        if kind == "series":
            return Data("series", {_derived_name(datas): prov}, None, cells)
        return Data("frame", {c: p for d in datas for c, p in d.cols.items()}, datas[0].rest, cells)

    def _comp(self, e: ir.Comp, env: Env) -> Value:
        it = self.eval(e.iter, env)
        # [c for c in df.columns if c not in [...]] and friends: filter names when we can
        if isinstance(it, Data) and it.kind in ("names", "frame"):
            names = it.with_(kind="names")
            if isinstance(e.target, ir.TName) and isinstance(e.elt, ir.Name) and e.elt.id == e.target.id:
                for cond in e.conds:
                    names = self._filter_names(names, e.target.id, cond, env)
                return names.with_(cells=names.cells | {self.cell})
        inner = Env(env)
        items = self._iter_items(it)
        out = []
        for item in items[: self.MAX_UNROLL]:
            self.assign(e.target, item, inner)
            keep = True
            for cond in e.conds:
                c = self.eval(cond, inner)
                if isinstance(c, Const) and c.value is False:
                    keep = False
            if keep:
                out.append(self.eval(e.elt, inner))
        return SeqV(out)

    def _filter_names(self, names: Data, var: str, cond: ir.Expr, env: Env) -> Data:
        if isinstance(cond, ir.Operator) and len(cond.operands) == 2 and isinstance(cond.operands[0], ir.Name) \
                and cond.operands[0].id == var and cond.op in ("not in", "!=", "in", "=="):
            other = _const_names(self.eval(cond.operands[1], env))
            if other is not None:
                if cond.op in ("not in", "!="):
                    return self._drop(names, other)
                return self._keep(names, other)
        if isinstance(cond, ir.Operator) and cond.op == "and":
            for c in cond.operands:
                names = self._filter_names(names, var, c, env)
            return names
        self._note("a filter on column names that is not a membership test: all names kept")
        return names.with_(notes=names.notes + ("filtered by an unknown condition",))

    def _attr(self, obj: Value, name: str) -> Value:
        if isinstance(obj, Ref):
            return Ref(self.kb.canonical(f"{obj.qualname}.{name}"))
        if isinstance(obj, Data):
            if name == "columns":
                return obj.with_(kind="names")
            if name in self.kb.same_attributes:
                return obj.with_(kind="array" if name in ("values", "array") else obj.kind)
            if name in ("loc", "iloc", "at", "iat", "ix"):  # ix: pandas < 1.0, labels or positions
                return Bound(obj, name)
            if name in ("shape", "index", "dtypes", "size", "empty", "ndim", "name", "axes"):
                return Unknown(f".{name}")
            if obj.kind == "frame" and (name in obj.cols or (obj.rest is not None and
                                                             self.kb.rule(f"frame.{name}") is None)):
                return self._select(obj, [name], single=True)
            return Bound(obj, name)
        if isinstance(obj, Model):
            if name.endswith("_") and not name.startswith("_"):
                if name in ("best_estimator_",):
                    return replace(obj)  # another object than the search (reported under its own name)
                return Unknown(f"fitted attribute {name}", obj.cells)
            return Bound(obj, name)
        if isinstance(obj, (SeqV, DictV, DatasetV, UserFunction, Unknown, Const)):
            return Bound(obj, name)
        return Unknown(f".{name}")

    # -- selection -------------------------------------------------------------------------------
    def _select(self, frame: Data, names: list[Any], *, single: bool = False) -> Data:
        cols: dict[str, frozenset[SourceColumn]] = {}
        notes = list(frame.notes)
        for n in names:
            key = str(n)
            if key in frame.cols:
                cols[key] = frame.cols[key]
            elif frame.rest is not None and key not in frame.rest.excluded:
                cols[key] = frozenset(SourceColumn(s, key) for s in frame.rest.sources)
            elif isinstance(n, int) and frame.rest is None and 0 <= n < len(frame.cols) and key not in frame.cols:
                k = list(frame.cols)[n]  # numpy arrays: columns by position
                cols[k] = frame.cols[k]
            else:
                cols[key] = frozenset()
                notes.append(f"column {key!r} not found where it was selected")
        kind = "series" if single else ("frame" if frame.kind != "array" else "array")
        if frame.kind == "names":
            kind = "names"
        dtypes = {c: frame.dtypes[c] for c in cols if c in frame.dtypes}
        return Data(kind, cols, None, frame.cells | {self.cell}, tuple(notes), dtypes)

    def _keep(self, names: Data, keep: list[Any]) -> Data:
        return self._select(names, keep)

    def _drop(self, frame: Data, names: list[Any]) -> Data:
        drop = {str(n) for n in names}
        cols = {c: p for c, p in frame.cols.items() if c not in drop}
        rest = replace(frame.rest, excluded=frame.rest.excluded | drop) if frame.rest else None
        return frame.with_(cols=cols, rest=rest, cells=frame.cells | {self.cell})

    def _add_names(self, names: Data, add: list[Any]) -> Data:
        cols = dict(names.cols)
        for n in add:
            cols.setdefault(str(n), frozenset())
        return names.with_(cols=cols, cells=names.cells | {self.cell})

    def _positional(self, frame: Data, sel: Value) -> Data | Unknown:
        """``iloc`` columns / ``X[:, 1:]`` on arrays: needs the full, ordered list of columns."""
        if frame.rest is not None:
            return self._positional_rest(frame, sel)
        order = list(frame.cols)
        sv = _const_value(sel)
        if isinstance(sv, slice):
            picked = order[sv]
            return self._select(frame.with_(kind="frame" if frame.kind != "array" else "array"), picked)
        if isinstance(sv, int) and not isinstance(sv, bool):
            try:
                return self._select(frame, [order[sv]], single=True)
            except IndexError:
                return Unknown("position out of range", frame.cells)
        if isinstance(sel, SeqV):
            pos = [_const_value(i) for i in sel.items]
            if all(isinstance(p, int) for p in pos):
                try:
                    return self._select(frame.with_(kind="frame" if frame.kind != "array" else "array"),
                                        [order[p] for p in pos])
                except IndexError:
                    pass
        self._note("positional column selection not known statically")
        return Unknown("positional selection", frame.cells, frame.prov())

    def _positional_rest(self, frame: Data, sel: Value) -> Data:
        """Columns chosen by position from a file whose header is not known: keep the positions as a fact
        ("columns 1..-2 of data.csv"), or, when they cannot be stated, say the choice is positional."""
        sv = _const_value(sel)
        single = isinstance(sv, int) and not isinstance(sv, bool)
        kind = "series" if single and frame.kind != "array" else ("array" if frame.kind == "array" else "frame")
        cells = frame.cells | {self.cell}
        rest = frame.rest
        if not frame.cols and rest.positions is None:
            # after a drop, positions count the columns that are left: say so
            after = bool(rest.excluded)
            if single:
                return Data(kind, {}, replace(rest, positions=str(sv), counted_without=after), cells, frame.notes)
            if isinstance(sv, slice) and all(x is None or isinstance(x, int) for x in (sv.start, sv.stop, sv.step)):
                return Data(kind, {}, replace(rest, positions=_describe_slice(sv), counted_without=after), cells,
                            frame.notes)
        self._note("positional column selection on a frame whose columns are not all known")
        sources = rest.sources | frozenset(c.source for c in frame.prov())
        return Data(kind, {}, Rest(sources, frozenset(), "?"), cells,
                    frame.notes + ("columns chosen by position among columns not all known",))

    def _getitem(self, obj: Value, index_e: ir.Expr, env: Env) -> Value:
        index = self.eval(index_e, env)
        if isinstance(obj, Bound) and isinstance(obj.obj, Data) and obj.name in ("loc", "iloc", "at", "iat", "ix"):
            frame = obj.obj
            if isinstance(index, SeqV) and isinstance(index_e, ir.Seq) and len(index.items) == 2:
                rows, cols = index.items
            else:
                return frame.with_(cells=frame.cells | {self.cell})  # rows only
            if isinstance(cols, Const) and isinstance(cols.value, slice) and cols.value == slice(None):
                return frame.with_(cells=frame.cells | {self.cell})
            if isinstance(cols, Data) and cols.kind == "names":  # iloc[:, df.columns != "y"]: a mask over names
                return self._select_names(frame, cols)
            if obj.name in ("iloc", "iat") or (obj.name == "ix" and _positions_only(cols)):
                return self._positional(frame, cols)
            sv = _const_value(cols)
            if isinstance(sv, slice):  # label slice 'a':'c'
                if frame.rest is not None:
                    if not frame.cols and not frame.rest.excluded and frame.rest.positions is None \
                            and all(x is None or isinstance(x, str) for x in (sv.start, sv.stop)) and sv.step is None:
                        # loc[:, "MSSubClass":"SaleCondition"] without the header: the range is the fact
                        first = sv.start if sv.start is not None else "first"
                        span = f"{first}..{sv.stop if sv.stop is not None else 'last'}"
                        return Data(frame.kind, {}, replace(frame.rest, positions=span), frame.cells | {self.cell},
                                    frame.notes)
                    self._note("label slice of columns on a frame whose columns are not all known")
                    return Unknown("label slice", frame.cells, frame.prov())
                order = list(frame.cols)
                lo = order.index(sv.start) if sv.start in order else 0
                hi = order.index(sv.stop) + 1 if sv.stop in order else len(order)
                return self._select(frame, order[lo:hi])
            names = _const_names(cols)
            if names is not None:
                return self._select(frame, names, single=isinstance(cols, Const))
            if isinstance(cols, Data) and cols.kind == "names":
                return self._select_names(frame, cols)
            if isinstance(cols, Data):  # boolean mask over columns
                self._note("columns chosen by a boolean mask")
                return frame.with_(notes=frame.notes + ("columns chosen by a mask: all kept",))
            self._note("columns chosen by an expression not known statically")
            return Unknown("loc columns", frame.cells, frame.prov())
        if isinstance(obj, Data):
            if obj.kind == "array":
                # X[:, 1:], X[:, 0], X[mask]
                if isinstance(index, SeqV) and len(index.items) == 2 and isinstance(index_e, ir.Seq):
                    cols = index.items[1]
                    if isinstance(cols, Const) and cols.value == slice(None):
                        return obj
                    return self._positional(obj, cols)
                return obj.with_(cells=obj.cells | {self.cell})
            names = _const_names(index)
            if names is not None and obj.kind in ("frame", "groupby", "names"):
                if obj.kind == "names":
                    sv = names
                    if isinstance(index, Const) and isinstance(index.value, int):
                        order = list(obj.cols)
                        return Const(order[index.value]) if obj.rest is None and -len(order) <= index.value < len(order) \
                            else Unknown("column name by position")
                    return self._select(obj, sv)
                out = self._select(obj if obj.kind == "frame" else obj.with_(kind="frame"), names,
                                   single=isinstance(index, Const))
                return out
            if isinstance(index, Data) and index.kind == "names":
                return self._select_names(obj, index)
            if isinstance(index, Const) and isinstance(index.value, slice):
                if obj.kind == "names":
                    return self._positional(obj.with_(kind="names"), index) if obj.rest is None else \
                        Unknown("slice of column names", obj.cells)
                return obj.with_(cells=obj.cells | {self.cell})  # df[10:20]: rows
            if isinstance(index, (Data, Unknown)):
                if obj.kind == "names":  # df.columns[mask]: which names survive is not known statically
                    self._note("column names chosen by a mask not known statically")
                    return obj.with_(cells=obj.cells | value_cells(index) | {self.cell},
                                     notes=obj.notes + ("columns chosen by a mask: all kept",))
                return obj.with_(cells=obj.cells | value_cells(index) | {self.cell})  # a row mask
            return obj
        if isinstance(obj, SeqV):
            iv = _const_value(index)
            if isinstance(iv, int) and -len(obj.items) <= iv < len(obj.items):
                return obj.items[iv]
            if isinstance(iv, slice):
                return SeqV(obj.items[iv])
            return Unknown("item of a sequence")
        if isinstance(obj, DictV):
            iv = _const_value(index)
            if _hashable(iv) and iv in obj.items:
                return obj.items[iv]
            return Unknown("item of a dict")
        if isinstance(obj, Ref):
            if obj.qualname in ("numpy.c_", "numpy.r_"):
                return self._apply_rule(obj.qualname, self.kb.rule(obj.qualname) or {"op": "union"},
                                        None, [index], {}, env)
        return Unknown("subscript", value_cells(obj), value_prov(obj))

    def _select_names(self, frame: Data, names: Data) -> Data:
        """``df[cols]`` where ``cols`` is a names value (possibly with a Rest)."""
        out = self._select(frame, list(names.cols))
        if names.notes:  # e.g. "chosen by a mask": the selection is only an upper bound
            out = out.with_(notes=out.notes + tuple(n for n in names.notes if n not in out.notes))
        if names.rest is None:
            return out
        if frame.rest is not None:
            excluded = frame.rest.excluded | names.rest.excluded
            out = out.with_(rest=Rest(frame.rest.sources & names.rest.sources or frame.rest.sources, excluded))
        else:
            extra = {c: p for c, p in frame.cols.items() if c not in names.rest.excluded and c not in out.cols}
            out = out.with_(cols={**out.cols, **extra})
        return out

    # -- calls ------------------------------------------------------------------------------------
    def _call(self, e: ir.Call, env: Env) -> Value:
        if isinstance(e.func, ir.Attr):
            obj = self.eval(e.func.obj, env)
            func = self._attr(obj, e.func.name)
            if isinstance(obj, Data) and isinstance(func, Data) and func is not obj:
                func = Bound(obj, e.func.name)  # df.method(...) on a frame of unlisted columns: a call, no column
        else:
            func = self.eval(e.func, env)
        args = [self.eval(a, env) for a in e.args]
        kwargs = {k: self.eval(v, env) for k, v in e.kwargs.items()}
        if e.starred:
            for s in e.starred:
                self.eval(s, env)
        if isinstance(func, UserFunction):
            return self._call_user(func, args, kwargs)
        if isinstance(func, UserClass) and not func.model:
            return self._unknown_call(f"{func.name} (a class of the analysed code)", None, args, kwargs)
        if isinstance(func, UserClass):
            return Model(func.name, cells=frozenset({self.cell}), transformer=func.transformer,
                         notes=(f"{func.name} is defined in the analysed code: its methods are not followed",))
        if isinstance(func, Ref):
            rule = self.kb.rule(func.qualname)
            if rule is None:
                return self._unknown_call(func.qualname, None, args, kwargs)
            return self._apply_rule(func.qualname, rule, None, args, kwargs, env)
        if isinstance(func, Bound):
            obj = func.obj
            if isinstance(obj, Const) and isinstance(obj.value, str) and func.name in _NAME_METHODS \
                    and all(isinstance(a, Const) for a in args) and not kwargs:
                try:  # "Age".lower(): column names computed by string methods
                    return Const(getattr(obj.value, func.name)(*[a.value for a in args]))
                except (TypeError, ValueError):
                    pass
            kind = _kind_of(obj)
            key = f"{kind}.{func.name}"
            rule = self.kb.rule(key)
            if rule is None and isinstance(obj, Model) and func.name == "fit":
                rule = self.kb.rule("model.fit")
            if rule is None:
                if isinstance(obj, (Unknown, Const)) and func.name in ("fit", "partial_fit"):
                    # an object of an API the knowledge base does not know, trained on data: still a model
                    self._note(f"model of an unknown type trained with .{func.name}")
                    model = Model("unknown")
                    self._rebind(e.func.obj if isinstance(e.func, ir.Attr) else e.func, model, env)
                    return self._apply_rule(key, self.kb.rule("model.fit"), model, args, kwargs, env,
                                            recv_expr=e.func.obj if isinstance(e.func, ir.Attr) else None)
                if isinstance(obj, (SeqV, DictV)) and func.name in ("append", "extend", "remove", "items",
                                                                    "keys", "values", "get", "copy", "pop",
                                                                    "iteritems", "iterkeys", "itervalues"):
                    return self._container_method(obj, func.name, args, e, env)
                return self._unknown_call(key, obj, args, kwargs)
            return self._apply_rule(key, rule, obj, args, kwargs, env,
                                    recv_expr=e.func.obj if isinstance(e.func, ir.Attr) else None)
        if isinstance(func, Model):  # a Keras-style callable model
            return Unknown("model call", func.cells)
        return self._unknown_call("call of an unknown value", None, args, kwargs)

    def _container_method(self, obj: Value, name: str, args: list[Value], e: ir.Call, env: Env) -> Value:
        if isinstance(obj, SeqV):
            if name == "append" and args:
                obj.items.append(args[0])
            elif name == "extend" and args and isinstance(args[0], SeqV):
                obj.items.extend(args[0].items)
            elif name == "remove" and args:
                rm = _const_value(args[0])
                obj.items[:] = [i for i in obj.items if _const_value(i) != rm]
            elif name == "copy":
                return SeqV(list(obj.items))
            elif name == "pop":
                return obj.items.pop() if obj.items else Unknown("pop")
            return Const(None)
        if isinstance(obj, DictV):
            if name in ("items", "iteritems"):  # iter*: Python 2
                return SeqV([SeqV([Const(k), v]) for k, v in obj.items.items()])
            if name in ("keys", "iterkeys"):
                return SeqV([Const(k) for k in obj.items])
            if name in ("values", "itervalues"):
                return SeqV(list(obj.items.values()))
            if name == "get" and args:
                k = _const_value(args[0])
                return obj.items.get(k, Unknown("dict get")) if _hashable(k) else Unknown("dict get")
        return Unknown(name)

    def _unknown_call(self, what: str, recv: Value, args: list[Value], kwargs: dict[str, Value]) -> Value:
        """An API the knowledge base does not know: its result derives from its inputs; say so."""
        if not isinstance(recv, (Unknown, Const)):  # a method of an unknown value: that value was reported
            self._note(f"unknown API {what}")
        ins = ([recv] if recv is not None else []) + args + list(kwargs.values())
        prov = _union(*(value_prov(v) for v in ins))
        cells = frozenset({self.cell}).union(*(value_cells(v) for v in ins)) if ins else frozenset({self.cell})
        datas = [v for v in ins if isinstance(v, Data) and v.kind in ("frame", "series", "array")]
        if datas:
            # narrow and honest: the columns that flow in (a file's unlisted rest included), flagged
            cols: dict[str, frozenset[SourceColumn]] = {}
            for d in datas:
                for c, p in d.cols.items():
                    cols[c] = cols.get(c, frozenset()) | p
            for v in ins:  # inputs that are not frames (an Unknown with known origins) still count
                if not isinstance(v, Data):
                    for sc in value_prov(v):
                        cols[sc.column] = cols.get(sc.column, frozenset()) | {sc}
            first = datas[0]
            note = f"partly unknown: through unknown call {what}"
            return Data(first.kind, cols, next((d.rest for d in datas if d.rest), None), cells,
                        tuple(dict.fromkeys([n for d in datas for n in d.notes] + [note])),
                        {k: t for d in datas for k, t in d.dtypes.items()})
        return Unknown(f"result of {what}", cells, prov)

    def _call_user(self, func: UserFunction, args: list[Value], kwargs: dict[str, Value]) -> Value:
        if self._depth >= self.MAX_DEPTH:
            self._note("recursion too deep to follow")
            return Unknown("deep call")
        node = func.node
        local = Env(func.env)
        if isinstance(node, ir.Lambda):
            for p, a in zip(node.params, args):
                local[p] = a
            self._depth += 1
            try:
                return self.eval(node.body, local)
            finally:
                self._depth -= 1
        for p, a in zip(node.params, args):
            local[p] = a
        for p in node.params[len(args):]:
            if p in kwargs:
                local[p] = kwargs[p]
            elif p in node.defaults:
                local[p] = self.eval(node.defaults[p], func.env)
            else:
                local[p] = Unknown(f"parameter {p}")
        self._depth += 1
        self._returns.append([])
        saved_line = self.line
        try:
            self._block(node.body, local)
        finally:
            self._depth -= 1
            rets = self._returns.pop()
            self.line = saved_line
        if not rets:
            return Const(None)
        return rets[-1]

    # -- the rules ----------------------------------------------------------------------------------
    def _arg(self, rule: dict[str, Any], role: str, recv: Value, args: list[Value], kwargs: dict[str, Value],
             default: Any = None) -> Value:
        spec = rule.get(role)
        if spec == "self":
            return recv
        if spec is None:
            return default
        pos, kw = spec
        if kw is not None and kw in kwargs:
            return kwargs[kw]
        if pos is not None and 0 <= pos < len(args):
            return args[pos]
        return default

    def _apply_rule(self, key: str, rule: dict[str, Any], recv: Value, args: list[Value], kwargs: dict[str, Value],
                    env: Env, recv_expr: ir.Expr | None = None) -> Value:
        op = rule["op"]
        cells = frozenset({self.cell}).union(*(value_cells(v) for v in [recv, *args, *kwargs.values()] if v is not None))
        handler: Callable[..., Value] = getattr(self, f"_op_{op}", None)
        if handler is None:
            self._note(f"knowledge base names an unknown operation {op!r} for {key}")
            return Unknown(key, cells)
        out = handler(key, rule, recv, args, kwargs, cells)
        if rule.get("inplace") or (isinstance(kwargs.get("inplace"), Const) and kwargs["inplace"].value is True):
            if recv_expr is not None and isinstance(out, Data):
                self._rebind(recv_expr, out, env)
            return Const(None)
        if op == "pop" and recv_expr is not None and isinstance(out, tuple):
            result, remaining = out
            self._rebind(recv_expr, remaining, env)
            return result
        if op in ("fit", "cv_fit") and recv_expr is not None and isinstance(recv, Model):
            self._rebind(recv_expr, out if isinstance(out, Model) else recv, env)
        if op == "fit" and isinstance(out, Model) and not out.fit_returns_self:
            return Unknown(f"training history of {out.type}", out.cells)  # Keras: fit returns a History
        if isinstance(out, tuple):
            return out[0]
        return out

    def _data_in(self, key: str, v: Value, cells: frozenset[str]) -> Data | None:
        if isinstance(v, Data):
            return v
        if isinstance(v, Unknown) and v.prov:
            by: dict[str, set[SourceColumn]] = {}
            for sc in v.prov:
                by.setdefault(sc.column, set()).add(sc)
            return Data("frame", {c: frozenset(p) for c, p in by.items()}, None, v.cells | cells,
                        (f"partly unknown: {v.why}",))
        return None

    def _op_read(self, key, rule, recv, args, kwargs, cells) -> Value:
        path_v = self._arg(rule, "path", recv, args, kwargs)
        path = _const_value(path_v) if path_v is not None else None
        if not isinstance(path, str):
            self._note(f"{key} of a path not known statically")
            path = "<unknown source>"
        src = path
        wanted = _const_names(self._arg(rule, "columns", recv, args, kwargs)) if rule.get("columns") else None
        sep = _const_value(kwargs.get("sep", kwargs.get("delimiter", Const(None))))
        header = self.facts.header(path, sep if isinstance(sep, str) else None,
                                   any_text=key in ("pandas.read_csv", "pandas.read_table")
                                   or bool(rule.get("no_header"))) \
            if path != "<unknown source>" else None
        given = _const_names(self._arg(rule, "names", recv, args, kwargs)) if "names" in rule else None
        header_v = self._arg(rule, "header", recv, args, kwargs) if "header" in rule else None
        # names= without header= means the file has no header row (pandas' rule)
        no_header_row = (isinstance(header_v, Const) and header_v.value is None) \
            or (given is not None and header_v is None)
        if rule.get("no_header"):  # numpy.loadtxt: numbered columns, unless genfromtxt(names=True)
            no_header_row = not (isinstance(kwargs.get("names"), Const) and kwargs["names"].value is True)
            given = None
        if given is not None:
            file_names = header[0] if header is not None and not no_header_row else None
            origin = file_names if file_names is not None and len(file_names) == len(given) else [str(n) for n in given]
            data = Data("frame", {str(n): frozenset({SourceColumn(src, o)}) for n, o in zip(given, origin)}, None,
                        cells, (), {str(n): header[1][h] for n, h in zip(given, header[0]) if h in header[1]}
                        if header is not None and len(header[0]) == len(given) else {})
        elif header is not None and no_header_row:  # columns are numbered 0..n-1
            n = len(header[0])
            data = Data("frame", {str(i): frozenset({SourceColumn(src, str(i))}) for i in range(n)}, None, cells)
        elif header is not None:
            names, dtypes = header
            cols = {n: frozenset({SourceColumn(src, n)}) for n in names}
            data = Data("frame", cols, None, cells, (), dict(dtypes))
        else:
            data = Data("frame", {}, Rest(frozenset({src}), frozenset()), cells)
        if wanted is not None:
            data = self._select(data, wanted)
        index_v = self._arg(rule, "index_col", recv, args, kwargs) if "index_col" in rule else None
        if index_v is not None:
            data = self._index_col(data, index_v)
        if rule.get("kind"):
            data = data.with_(kind=rule["kind"])
        return data

    def _index_col(self, data: Data, index_v: Value) -> Data:
        """``read_csv(index_col=...)``: that column becomes the index, so it is no feature."""
        iv = _const_value(index_v)
        wanted = iv if isinstance(iv, list) else [iv]
        if any(w is None or w is False for w in wanted):
            return data
        drop = []
        for w in wanted:
            if isinstance(w, int) and not isinstance(w, bool):
                if data.rest is None and -len(data.cols) <= w < len(data.cols):
                    drop.append(list(data.cols)[w])
                else:
                    drop.append(f"column {w}")
            else:
                drop.append(str(w))
        out = self._drop(data, drop)
        return out.with_(cells=data.cells)

    def _op_same(self, key, rule, recv, args, kwargs, cells) -> Value:
        src = recv if recv is not None else self._arg(rule, "data", recv, args, kwargs, args[0] if args else None)
        kind = rule.get("kind")
        if isinstance(src, SeqV) and key.startswith("builtins."):
            return SeqV(list(src.items))
        if isinstance(src, DictV) and key == "pandas.DataFrame":
            cols = {str(k): value_prov(v) for k, v in src.items.items()}
            return Data("frame", cols, None, cells)
        if isinstance(src, Data):
            out = src.with_(cells=src.cells | cells)
            if kind:
                out = out.with_(kind=kind)
            if key.startswith("builtins.") or src.kind == "names":
                return out
            names = _const_names(self._arg(rule, "columns", recv, args, kwargs)) if rule.get("columns") else None
            if names is not None and src.rest is None and len(names) == len(src.cols):
                out = out.with_(cols=dict(zip((str(n) for n in names), src.cols.values())))
            return out
        prov = _union(*(value_prov(v) for v in [recv, *args, *kwargs.values()] if v is not None))
        if prov:
            d = self._data_in(key, Unknown(key, cells, prov), cells)
            return d.with_(kind=kind or ("series" if len(d.cols) == 1 else "frame"))
        if isinstance(src, Model):
            return src
        return Unknown(f"result of {key}", cells)

    def _path_of(self, v: Value) -> str | None:
        if isinstance(v, Handle):
            return v.path
        pv = _const_value(v) if v is not None else None
        return pv if isinstance(pv, str) else None

    def _op_open(self, key, rule, recv, args, kwargs, cells) -> Value:
        return Handle(self._path_of(self._arg(rule, "path", recv, args, kwargs)))

    def _op_save(self, key, rule, recv, args, kwargs, cells) -> Value:
        """``df.to_pickle(p)``, ``pickle.dump(df, f)``: remember what went to ``p``, so that loading it back
        keeps its source."""
        data = self._arg(rule, "data", recv, args, kwargs)
        path = self._path_of(self._arg(rule, "path", recv, args, kwargs))
        if path is not None and data is not None:
            self.saved[path] = data
        return Const(None)

    def _op_load(self, key, rule, recv, args, kwargs, cells) -> Value:
        path = self._path_of(self._arg(rule, "path", recv, args, kwargs))
        v = self.saved.get(path) if path is not None else None
        if v is None:
            self._note(f"{key} of {path or 'a file'} that the analysed code did not write: contents unknown")
            return Unknown(f"result of {key}", cells)
        if isinstance(v, Data):
            return v.with_(cells=v.cells | cells)
        return v

    def _op_append(self, key, rule, recv, args, kwargs, cells) -> Value:
        """``df.append(other)`` (pandas < 2): more rows; the columns of both."""
        other = self._arg(rule, "other", recv, args, kwargs)
        items = [recv] + (other.items if isinstance(other, SeqV) else [other] if other is not None else [])
        return self._op_concat(key, {"items": [0, None], "axis_default": 0}, None, [SeqV(items)], {}, cells)

    def _op_rename_names(self, key, rule, recv, args, kwargs, cells) -> Value:
        """``df.columns.str.lower()`` and friends: each name changed, its origin kept."""
        if not isinstance(recv, Data):
            return Unknown(key, cells)
        how = rule.get("how")
        fn = args[0] if how == "map" and args else None

        def renamed(name: str) -> str | None:
            if how == "map":
                return self._map_name(fn, name)
            try:
                return getattr(name, how)(*[_const_value(a) for a in args])
            except (TypeError, ValueError, AttributeError):
                return None

        cols: dict[str, frozenset[SourceColumn]] = {}
        for c, p in recv.cols.items():
            new = renamed(c)
            if new is None:
                self._note(f"{key}: new column names not known statically")
                return recv.with_(cells=recv.cells | cells, notes=recv.notes + ("columns renamed in code",))
            cols[new] = p
        notes = recv.notes
        if recv.rest is not None:
            notes += (f"columns not listed were renamed by {how}",)
        return recv.with_(cols=cols, cells=recv.cells | cells, notes=notes)

    def _map_name(self, fn: Value, name: str) -> str | None:
        """A column name through a renaming function: ``str.lower``, a lambda, a user function."""
        if isinstance(fn, Ref) and fn.qualname.startswith("builtins.str."):
            try:
                return getattr(name, fn.qualname.rsplit(".", 1)[1])()
            except (TypeError, AttributeError):
                return None
        if isinstance(fn, UserFunction):
            out = self._call_user(fn, [Const(name)], {})
            return out.value if isinstance(out, Const) and isinstance(out.value, str) else None
        if isinstance(fn, DictV):
            return str(_const_value(fn.items.get(name, Const(name))))
        return None

    def _op_apply(self, key, rule, recv, args, kwargs, cells) -> Value:
        """``df.apply(f, axis=1)``: f sees one row; the result derives from what f reads of it (and from the
        tests that choose its value), not from every column. Column-wise or unknown f: the columns, as before."""
        fn = args[0] if args else kwargs.get("func")
        axis = _const_value(kwargs.get("axis", args[1] if len(args) > 1 else Const(0)))
        if isinstance(recv, Data) and recv.kind == "frame" and isinstance(fn, UserFunction) and axis in (1, "columns"):
            out = self._call_user(fn, [recv], {})
            prov = value_prov(out)
            if prov:
                return Data("series", {_derived_name([out]) if isinstance(out, Data) else "apply": prov}, None,
                            recv.cells | value_cells(out) | cells)
        return self._op_same(key, rule, recv, args, kwargs, cells)

    def _op_agg(self, key, rule, recv, args, kwargs, cells) -> Value:
        """``agg(mean_c=("c", "mean"))``: named aggregations make new columns from the named ones."""
        named = {k: v for k, v in kwargs.items() if isinstance(v, SeqV) and len(v.items) == 2
                 and isinstance(v.items[0], Const) and isinstance(v.items[0].value, str)}
        if not isinstance(recv, Data) or not named:
            return self._op_same(key, rule, recv, args, kwargs, cells)
        src = recv.with_(kind="frame")
        cols = {k: self._select(src, [v.items[0].value]).prov() for k, v in named.items()}
        return Data("frame", cols, None, recv.cells | cells)

    def _op_reshape(self, key, rule, recv, args, kwargs, cells) -> Value:
        """pivot, melt, corr, T: the result's columns are not the input's; what flowed in is all we can say."""
        ins = ([recv] if recv is not None else []) + args + list(kwargs.values())
        datas = [v for v in ins if isinstance(v, Data)]
        if not datas:
            return Unknown(f"result of {key}", cells, _union(*(value_prov(v) for v in ins)))
        cols: dict[str, frozenset[SourceColumn]] = {}
        for d in datas:
            for c, p in d.cols.items():
                cols[c] = cols.get(c, frozenset()) | p
        note = f"partly unknown: columns reshaped by {key}"
        return Data("frame", cols, next((d.rest for d in datas if d.rest), None), cells,
                    tuple(dict.fromkeys([n for d in datas for n in d.notes] + [note])))

    def _op_enumerate(self, key, rule, recv, args, kwargs, cells) -> Value:
        """enumerate(x), zip(a, b): pairs, when the items are known (loops over column lists)."""
        seqs = [self._iter_items(a) for a in args]
        if not seqs or any(len(items) == 1 and isinstance(items[0], Unknown) for items in seqs):
            return Unknown(f"result of {key}", cells, _union(*(value_prov(a) for a in args)))
        if key.endswith("enumerate"):
            return SeqV([SeqV([Const(i), item]) for i, item in enumerate(seqs[0])])
        return SeqV([SeqV(list(items)) for items in zip(*seqs)])

    def _op_self(self, key, rule, recv, args, kwargs, cells) -> Value:
        return recv

    def _op_opaque(self, key, rule, recv, args, kwargs, cells) -> Value:
        return Unknown(f"result of {key}", cells)

    def _op_names(self, key, rule, recv, args, kwargs, cells) -> Value:
        return recv.with_(kind="names") if isinstance(recv, Data) else Unknown(key)

    def _op_union(self, key, rule, recv, args, kwargs, cells) -> Value:
        ins = [v for v in ([recv] if recv is not None else []) + args + list(kwargs.values())]
        flat: list[Value] = []
        for v in ins:
            flat.extend(v.items if isinstance(v, SeqV) else [v])
        datas = [v for v in flat if isinstance(v, Data)]
        if len(datas) == 1:
            return datas[0].with_(cells=datas[0].cells | cells,
                                  kind="array" if datas[0].kind == "frame" else datas[0].kind)
        prov = _union(*(value_prov(v) for v in flat))
        if not prov:
            return Unknown(f"result of {key}", cells)
        if datas and all(d.kind in ("series", "array") and len(d.cols) <= 1 for d in datas):
            return Data("series", {_derived_name(datas): prov}, None, cells)
        cols: dict[str, frozenset[SourceColumn]] = {}
        for d in datas:
            cols.update(d.cols)
        rest = next((d.rest for d in datas if d.rest), None)
        return Data("array", cols, rest, cells)

    def _op_drop(self, key, rule, recv, args, kwargs, cells) -> Value:
        if not isinstance(recv, Data):
            return Unknown(key, cells)
        cols_v = self._arg(rule, "columns", recv, args, kwargs) if "columns" in rule else None
        axis = _const_value(self._arg(rule, "axis", recv, args, kwargs, Const(0))) if "axis" in rule else None
        if cols_v is None:
            labels = self._arg(rule, "labels", recv, args, kwargs)
            if recv.kind != "names" and axis not in (1, "columns"):
                return recv.with_(cells=recv.cells | cells)  # rows dropped
            cols_v = labels
        names = _const_names(cols_v)
        if names is None and isinstance(cols_v, Data) and cols_v.kind == "names":
            if cols_v.rest is None:
                names = list(cols_v.cols)
        if names is None:
            self._note(f"{key} of columns not known statically")
            return recv.with_(cells=recv.cells | cells, notes=recv.notes + ("dropped columns not known",))
        out = self._drop(recv, names)
        return out.with_(cells=out.cells | cells)

    def _op_pop(self, key, rule, recv, args, kwargs, cells) -> Value:
        names = _const_names(self._arg(rule, "column", recv, args, kwargs))
        if not isinstance(recv, Data) or names is None:
            return Unknown(key, cells)
        col = self._select(recv, names, single=True)
        return col.with_(cells=col.cells | cells), self._drop(recv, names)

    def _op_rename(self, key, rule, recv, args, kwargs, cells) -> Value:
        mapping = self._arg(rule, "mapper", recv, args, kwargs)
        if not isinstance(recv, Data):
            return Unknown(key, cells)
        if not isinstance(mapping, DictV) and mapping is not None and recv.rest is None:
            new = {c: self._map_name(mapping, c) for c in recv.cols}
            if all(n is not None for n in new.values()):
                mapping = DictV({c: Const(n) for c, n in new.items()})
        if not isinstance(mapping, DictV):
            if mapping is not None:
                self._note(f"{key} with a mapping not known statically")
            return recv.with_(cells=recv.cells | cells)
        m = {str(k): _const_value(v) for k, v in mapping.items.items()}
        cols = {str(m.get(c, c)): p for c, p in recv.cols.items()}
        for old, new in m.items():
            if old not in recv.cols and recv.rest is not None and old not in recv.rest.excluded:
                cols[str(new)] = frozenset(SourceColumn(s, old) for s in recv.rest.sources)
        rest = replace(recv.rest, excluded=recv.rest.excluded | set(m)) if recv.rest else None
        return recv.with_(cols=cols, rest=rest, cells=recv.cells | cells)

    def _op_assign(self, key, rule, recv, args, kwargs, cells) -> Value:
        if not isinstance(recv, Data):
            return Unknown(key, cells)
        cols = dict(recv.cols)
        for name, v in kwargs.items():
            if isinstance(v, UserFunction):
                v = self._call_user(v, [recv], {})
            cols[name] = value_prov(v)
        rest = replace(recv.rest, excluded=recv.rest.excluded | set(kwargs)) if recv.rest else None
        return recv.with_(cols=cols, rest=rest, cells=recv.cells | cells)

    def _op_select(self, key, rule, recv, args, kwargs, cells) -> Value:
        names = _const_names(self._arg(rule, "columns", recv, args, kwargs))
        if not isinstance(recv, Data):
            return Unknown(key, cells)
        if names is None:
            return recv.with_(cells=recv.cells | cells)
        return self._select(recv, names, single=key.endswith(".get") and isinstance(args[0], Const))

    def _op_select_dtypes(self, key, rule, recv, args, kwargs, cells) -> Value:
        if not isinstance(recv, Data):
            return Unknown(key, cells)
        inc = _const_names(self._arg(rule, "include", recv, args, kwargs) or SeqV([]))
        exc = _const_names(self._arg(rule, "exclude", recv, args, kwargs) or SeqV([]))
        untyped = [c for c in recv.cols if c not in recv.dtypes]
        if recv.rest is not None or inc is None or exc is None or len(untyped) == len(recv.cols):
            self._note(f"{key}: column types not known here, all columns kept")
            return recv.with_(cells=recv.cells | cells, notes=recv.notes + ("select_dtypes: types unknown",))

        def numeric(t: str) -> bool:
            return t == "number" or t.startswith(("int", "float", "uint", "bool"))

        def match(t: str, wants: list[Any]) -> bool:
            for w in wants:
                w = str(w)
                if w in ("number", "numeric", "int", "float", "int64", "float64", "int32", "float32") and numeric(t):
                    return True
                if w in ("object", "category", "O", "string", "str") and not numeric(t):
                    return True
                if w == t:
                    return True
            return False

        keep = [c for c in recv.cols if c in untyped or ((not inc or match(recv.dtypes[c], inc))
                                                         and not (exc and match(recv.dtypes[c], exc)))]
        out = self._select(recv, keep).with_(cells=recv.cells | cells)
        if untyped:  # columns the code assigned: their type is not known, so they are kept (an upper bound)
            self._note(f"{key}: types of {', '.join(untyped[:5])} not known here, kept")
            out = out.with_(notes=out.notes + (f"select_dtypes: types of {', '.join(untyped[:5])} unknown",))
        return out

    def _op_merge(self, key, rule, recv, args, kwargs, cells) -> Value:
        left = self._arg(rule, "left", recv, args, kwargs)
        right = self._arg(rule, "right", recv, args, kwargs)
        if not isinstance(left, Data) or not isinstance(right, Data):
            d = left if isinstance(left, Data) else right
            if isinstance(d, Data):
                self._note(f"{key} with an input not known statically")
                return d.with_(cells=d.cells | cells)
            return Unknown(key, cells)
        cols = dict(left.cols)
        for c, p in right.cols.items():
            cols[c] = cols[c] | p if c in cols else p
        rest = None
        if left.rest or right.rest:
            srcs = (left.rest.sources if left.rest else frozenset()) | (right.rest.sources if right.rest else frozenset())
            exc = (left.rest.excluded if left.rest else frozenset()) | (right.rest.excluded if right.rest else frozenset())
            rest = Rest(srcs, frozenset(exc))
        return Data("frame", cols, rest, left.cells | right.cells | cells, left.notes + right.notes,
                    {**right.dtypes, **left.dtypes})

    def _op_concat(self, key, rule, recv, args, kwargs, cells) -> Value:
        items = self._arg(rule, "items", recv, args, kwargs)
        axis = _const_value(self._arg(rule, "axis", recv, args, kwargs, Const(rule.get("axis_default", 0)))) \
            if "axis" in rule else rule.get("axis_default", 0)
        parts = items.items if isinstance(items, SeqV) else [items] if items is not None else []
        datas = [self._data_in(key, p, cells) for p in parts]
        datas = [d for d in datas if d is not None]
        if not datas:
            return Unknown(key, cells)
        if axis in (1, "columns") and all(d.kind in ("series", "array") and len(d.cols) == 1 and d.rest is None
                                          for d in datas) and rule.get("axis_default") == 1:
            pass
        cols: dict[str, frozenset[SourceColumn]] = {}
        for d in datas:
            for c, p in d.cols.items():
                k = c
                if axis in (1, "columns") and k in cols and datas[0].kind == "array":
                    k = f"{c}#{len(cols)}"
                cols[k] = cols.get(k, frozenset()) | p
        rests = [d.rest for d in datas if d.rest]
        positions = {r.positions for r in rests}  # concat of train[:, a..b] and test[:, a..b]: still a..b
        rest = Rest(frozenset().union(*(r.sources for r in rests)), frozenset().union(*(r.excluded for r in rests)),
                    positions.pop() if len(positions) == 1 else "?" if any(positions) else None) if rests else None
        kind = "array" if key.startswith("numpy") else "frame"
        return Data(kind, cols, rest, cells.union(*(d.cells for d in datas)),
                    tuple(n for d in datas for n in d.notes), {k: v for d in datas for k, v in d.dtypes.items()})

    def _op_dummies(self, key, rule, recv, args, kwargs, cells) -> Value:
        data = self._arg(rule, "data", recv, args, kwargs)
        if not isinstance(data, Data):
            return Unknown(key, cells)
        cols_v = self._arg(rule, "columns", recv, args, kwargs) if "columns" in rule else None
        names = _const_names(cols_v)
        if isinstance(cols_v, Data) and cols_v.notes:
            # the column list is only an upper bound (select_dtypes with types unknown): renaming all of them
            # to dummies would hide the label; each keeps its name, with the same origin either way
            return data.with_(cells=data.cells | cells, kind="frame",
                              notes=data.notes + ("get_dummies of columns not known exactly",))
        if names is None:
            if data.kind == "series" and len(data.cols) == 1:
                (c, p), = data.cols.items()
                prefix = _const_value(kwargs.get("prefix", Const(c)))
                return Data("frame", {f"{prefix if isinstance(prefix, str) else c}_*": p}, None, data.cells | cells)
            # object columns become dummies whose names we do not know: same provenance
            return data.with_(cells=data.cells | cells, kind="frame")
        cols: dict[str, frozenset[SourceColumn]] = {}
        for c, p in data.cols.items():
            if c in [str(n) for n in names]:
                cols[f"{c}_*"] = p
            else:
                cols[c] = p
        rest = data.rest
        for n in names:
            n = str(n)
            if n not in data.cols and rest is not None:
                cols[f"{n}_*"] = frozenset(SourceColumn(s, n) for s in rest.sources)
        if rest is not None:
            rest = replace(rest, excluded=rest.excluded | {str(n) for n in names})
        return data.with_(cols=cols, rest=rest, cells=data.cells | cells)

    def _op_add_names(self, key, rule, recv, args, kwargs, cells) -> Value:
        items = self._arg(rule, "items", recv, args, kwargs)
        names = _const_names(items)
        if not isinstance(recv, Data) or names is None:
            return Unknown(key, cells)
        return self._add_names(recv, names)

    def _op_keep_names(self, key, rule, recv, args, kwargs, cells) -> Value:
        names = _const_names(self._arg(rule, "items", recv, args, kwargs))
        if not isinstance(recv, Data) or names is None:
            return Unknown(key, cells)
        return self._keep(recv, [n for n in names if str(n) in recv.cols or recv.rest])

    def _op_path_join(self, key, rule, recv, args, kwargs, cells) -> Value:
        """``os.path.join(DATA, "train.csv")`` of known strings: the path the code reads."""
        parts = [_const_value(a) for a in args]
        known: list[str] = []
        for p in reversed(parts):  # the known tail: os.path.join(get_root(), "data", "patients.csv")
            if not isinstance(p, str):
                break
            known.insert(0, p)
        if known:
            if len(known) < len(parts):
                self._note(f"{key}: the start of a path is not known statically; the file is named by its known end")
            head = "/".join(k.rstrip("/") for k in known[:-1] if k)
            return Const(head + ("/" if head else "") + known[-1])
        return Unknown(f"result of {key}", cells)

    def _op_clone(self, key, rule, recv, args, kwargs, cells) -> Value:
        """``clone(est)``: a new, untrained estimator with the same settings."""
        if args and isinstance(args[0], Model):
            return replace(args[0], X=None, y=None, fit_at=None, cells=args[0].cells | cells)
        return Unknown(f"result of {key}", cells)

    def _op_rows(self, key, rule, recv, args, kwargs, cells) -> Value:
        """``shuffle(X, y)``, ``resample(X)``: the same values, rows reordered or drawn; one result per input."""
        out = [a.with_(cells=a.cells | cells) if isinstance(a, Data) else a for a in args]
        return out[0] if len(out) == 1 else SeqV(out)

    def _op_split(self, key, rule, recv, args, kwargs, cells) -> Value:
        out = []
        for a in args:
            d = a.with_(cells=a.cells | cells) if isinstance(a, Data) else a
            out += [d, d]
        return SeqV(out)

    # models
    def _op_estimator(self, key, rule, recv, args, kwargs, cells) -> Value:
        return Model(key.rsplit(".", 1)[-1], cells=frozenset({self.cell}),
                     fit_returns_self=rule.get("fit_returns", "self") == "self")

    def _op_estimator_data(self, key, rule, recv, args, kwargs, cells) -> Value:
        """statsmodels style: ``OLS(y, X)`` is given its data when built; ``.fit()`` takes none."""
        m = Model(key.rsplit(".", 1)[-1], cells=frozenset({self.cell}))
        X, y = self._arg(rule, "X", recv, args, kwargs), self._arg(rule, "y", recv, args, kwargs)
        m.X, m.y = self._data_in(key, X, cells), self._data_in(key, y, cells)
        return m

    def _op_transformer(self, key, rule, recv, args, kwargs, cells) -> Value:
        return Model(key.rsplit(".", 1)[-1], cells=frozenset({self.cell}), transformer=True,
                     subset=bool(rule.get("subset")))

    def _op_wrap_model(self, key, rule, recv, args, kwargs, cells) -> Value:
        inner = self._arg(rule, "inner", recv, args, kwargs)
        if inner is None:  # before scikit-learn 1.2 the inner model was base_estimator=
            inner = kwargs.get("base_estimator")
        m = Model(key.rsplit(".", 1)[-1], cells=frozenset({self.cell}) | value_cells(inner))
        if isinstance(inner, Model):
            m.selector, m.remainder, m.subset = inner.selector, inner.remainder, inner.subset
            m.notes = inner.notes
            m.type = f"{m.type}({inner.type})"
        return m

    def _op_pipeline(self, key, rule, recv, args, kwargs, cells) -> Value:
        steps_v = self._arg(rule, "steps", recv, args, kwargs) if "steps" in rule else SeqV(args)
        steps: list[Value] = []
        for s in (steps_v.items if isinstance(steps_v, SeqV) else []):
            steps.append(s.items[1] if isinstance(s, SeqV) and len(s.items) == 2 else s)
        models = [s for s in steps if isinstance(s, Model)]
        if not models and not steps:
            self._note(f"{key} with steps not known statically")
        last = models[-1] if models else None
        if steps and isinstance(steps[-1], Unknown):  # a last step the knowledge base does not know: a model
            last = Model("unknown", kind_known=False)
        m = Model("Pipeline" + (f"({last.type})" if last else ""),
                  cells=frozenset({self.cell}).union(*(s.cells for s in models)),
                  transformer=bool(last and last.transformer))
        for s in models:  # the first step that chooses columns decides which reach the model
            if s.selector is not None:
                m.selector, m.remainder = s.selector, s.remainder
                break
        m.subset = any(s.subset for s in models)
        m.kind_known = bool(last is None or last.kind_known)
        m.notes = tuple(n for s in models for n in s.notes)
        unknown_steps = [s for s in steps[:-1] if not isinstance(s, (Model, Const))]
        if unknown_steps:  # e.g. a ColumnTransformer imported from another file: its column choice is not seen
            m.notes += (f"{len(unknown_steps)} pipeline step(s) not known: what they do to the columns is not "
                        "followed",)
        return m

    def _op_column_transformer(self, key, rule, recv, args, kwargs, cells) -> Value:
        if "transformers" in rule:
            specs = self._arg(rule, "transformers", recv, args, kwargs)
            triples = [s.items for s in (specs.items if isinstance(specs, SeqV) else []) if isinstance(s, SeqV)]
            triples = [t[1:] for t in triples if len(t) >= 3]
        else:
            triples = [a.items for a in args if isinstance(a, SeqV) and len(a.items) >= 2]
        selected: dict[str, frozenset[SourceColumn]] = {}
        rest: Rest | None = None
        notes: list[str] = []
        for t in triples:
            est, cols = t[0], t[1]
            if isinstance(est, Const) and est.value == "drop":
                continue
            names = _const_names(cols)
            if names is None and isinstance(cols, Data) and cols.kind == "names":
                if cols.rest is None:
                    names = list(cols.cols)
                else:
                    selected.update(cols.cols)
                    rest = cols.rest
                    continue
            if names is None:
                notes.append("a ColumnTransformer selection not known statically")
                self._note("ColumnTransformer columns not known statically: all columns kept")
                return Model("ColumnTransformer", cells=frozenset({self.cell}), transformer=True, notes=tuple(notes))
            for n in names:
                selected[str(n)] = frozenset()
        remainder = self._arg(rule, "remainder", recv, args, kwargs, Const("drop"))
        passthrough = not (isinstance(remainder, Const) and remainder.value == "drop")
        sel = Data("names", selected, rest, cells)
        return Model("ColumnTransformer", cells=cells, transformer=True, selector=sel,
                     remainder=passthrough, notes=tuple(notes))

    def _narrow(self, model: Model, X: Data) -> Data:
        """What of X reaches the model: a ColumnTransformer's selection, unless it passes the rest on."""
        if model.selector is None or model.remainder:
            return X
        return self._select_names(X, model.selector) if X.kind != "array" or X.rest is None else X

    def _op_fit(self, key, rule, recv, args, kwargs, cells) -> Value:
        X = self._arg(rule, "X", recv, args, kwargs)
        y = self._arg(rule, "y", recv, args, kwargs)
        model = recv if isinstance(recv, Model) else Model("unknown")
        if isinstance(X, DatasetV):
            X, y = X.X, X.y
        Xd = self._data_in(key, X, cells)
        yd = self._data_in(key, y, cells) if y is not None and not (isinstance(y, Const) and y.value is None) else None
        if X is not None and Xd is None and not _literal(X):  # le.fit(["F", "M"]) learns no data
            self._note("model trained on data not traced to any source")
        if y is not None and yd is None and not _literal(y):
            self._note("label not traced to any source")
        if X is None and model.X is not None:  # statsmodels: the data came with the constructor
            Xd, yd = model.X, model.y
        fitted = replace(model, X=None if Xd is None else self._narrow(model, Xd), y=yd,
                         cells=model.cells | cells, fit_at=self.where())
        self.fits.append(Fit(fitted, self.where()))
        return fitted

    def _op_cv_fit(self, key, rule, recv, args, kwargs, cells) -> Value:
        model = self._arg(rule, "model", recv, args, kwargs)
        if isinstance(model, Model) and model.fit_at is not None:
            # cross-validation of a model the code already trained fits clones: that model stays as it was
            return Unknown(f"scores of {key}", model.cells | cells)
        if isinstance(model, Model):
            y = self._arg(rule, "y", recv, args, kwargs)
            fitted = self._op_fit(key, {"X": [0, None], "y": [1, None]}, model,
                                  [self._arg(rule, "X", recv, args, kwargs)] + ([y] if y is not None else []), {}, cells)
            for scope in (self.env,):  # the variables that hold this model now hold it trained
                for name, v in list(scope.items()):
                    if v is model:
                        scope[name] = fitted
            return Unknown(f"scores of {key}", fitted.cells)
        return Unknown(key, cells)

    def _op_fit_transform(self, key, rule, recv, args, kwargs, cells) -> Value:
        X = self._arg(rule, "X", recv, args, kwargs)
        if isinstance(recv, Model) and not recv.kind_known:  # used to transform data: a transformer
            recv = replace(recv, transformer=True, kind_known=True)
        if isinstance(recv, Model):
            self._op_fit(key, rule, recv, args, kwargs, cells)  # a fitted transformer is a model too
        return self._op_transform(key, rule, recv, args, kwargs, cells) if X is not None else Unknown(key, cells)

    def _op_fit_resample(self, key, rule, recv, args, kwargs, cells) -> Value:
        """imblearn's ``X_res, y_res = sampler.fit_resample(X, y)``: more or fewer rows, the same columns."""
        X = self._arg(rule, "X", recv, args, kwargs)
        y = self._arg(rule, "y", recv, args, kwargs)
        Xd = self._op_fit_transform(key, rule, recv, args, kwargs, cells)
        yd = self._data_in(key, y, cells)
        return SeqV([Xd, yd.with_(cells=yd.cells | cells) if yd is not None else Unknown(f"labels of {key}", cells)]) \
            if X is not None else Unknown(key, cells)

    def _op_transform(self, key, rule, recv, args, kwargs, cells) -> Value:
        X = self._data_in(key, self._arg(rule, "X", recv, args, kwargs), cells)
        if X is None:
            return Unknown(key, cells)
        if isinstance(recv, Model):
            X = self._narrow(recv, X)
            if recv.subset:
                X = X.with_(notes=X.notes + (f"{recv.type} keeps a subset of these columns",))
            if recv.notes:  # e.g. a transformer class of the analysed code: what it does to columns is not followed
                X = X.with_(notes=X.notes + tuple(n for n in recv.notes if n not in X.notes))
        return X.with_(kind="array", cells=X.cells | cells)

    def _op_predict(self, key, rule, recv, args, kwargs, cells) -> Value:
        if isinstance(recv, Model) and recv.y is not None:
            return recv.y.with_(kind="array", cells=recv.y.cells | cells)
        return Unknown(f"predictions of {key}", cells)

    def _op_dataset(self, key, rule, recv, args, kwargs, cells) -> Value:
        X = self._data_in(key, self._arg(rule, "X", recv, args, kwargs), cells)
        y = self._arg(rule, "y", recv, args, kwargs)
        return DatasetV(X, self._data_in(key, y, cells) if y is not None else None, cells)

    def _op_train(self, key, rule, recv, args, kwargs, cells) -> Value:
        ds = self._arg(rule, "data", recv, args, kwargs)
        model = Model(key.split(".")[0] + ".Booster", cells=frozenset({self.cell}))
        if isinstance(ds, DatasetV):
            fitted = replace(model, X=ds.X, y=ds.y, cells=model.cells | ds.cells | cells, fit_at=self.where())
            self.fits.append(Fit(fitted, self.where()))
            return fitted
        self._note(f"{key} on data not known statically")
        return model

    # -- runtime facts ------------------------------------------------------------------------------
    def sharpen(self, name: str, columns: list[str], dtypes: list[str] | None = None, *, series_name: str | None = None
                ) -> bool:
        """Replace what the analysis inferred for variable ``name`` by the columns a commit recorded.

        Known columns keep their provenance; columns the analysis could only describe as
        "the rest of a source" get that source; others are marked as of unknown origin.
        """
        v = self.env.get(name)
        if not isinstance(v, Data) or v.kind not in ("frame", "series", "array"):
            return False
        if series_name is not None:
            if len(v.cols) == 1 or v.kind != "series":
                return False
            columns = [series_name]
        cols: dict[str, frozenset[SourceColumn]] = {}
        notes = list(v.notes)
        for c in columns:
            if c in v.cols:
                cols[c] = v.cols[c]
            elif v.rest is not None and c not in v.rest.excluded:
                cols[c] = frozenset(SourceColumn(s, c) for s in v.rest.sources)
            else:
                # get_dummies names its columns <column or prefix>_<value>: the longest such prefix wins
                pref = max((k for k in v.cols if (k.endswith("_*") and c.startswith(k[:-1]))
                            or (not k.endswith("_*") and c.startswith(k + "_"))), key=len, default=None)
                if pref is not None:
                    cols[c] = v.cols[pref]
                else:
                    cols[c] = frozenset()
                    notes.append(f"column {c!r}: origin unknown")
        if v.rest is None and set(cols) == set(v.cols):
            return False
        dt = dict(zip(columns, dtypes)) if dtypes and len(dtypes) == len(columns) else v.dtypes
        self.env[name] = v.with_(cols=cols, rest=None, notes=tuple(notes), dtypes=dt)
        return True


_BUILTINS = {"list", "sorted", "set", "tuple", "len", "range", "print", "zip", "enumerate", "dict", "str", "int",
             "float", "abs", "min", "max", "sum", "round", "map", "filter", "isinstance", "open", "bool", "type",
             "input", "xrange", "raw_input", "unicode", "long"}


# string methods computed on known column names ("Age".lower()); others (center, zfill…) could be unbounded
_NAME_METHODS = {"lower", "upper", "strip", "lstrip", "rstrip", "replace", "title", "capitalize", "casefold",
                 "startswith", "endswith", "split", "format", "removeprefix", "removesuffix", "swapcase"}


def _literal(v: Value) -> bool:
    return isinstance(v, Const) or (isinstance(v, SeqV) and all(_literal(i) for i in v.items))


def _positions_only(v: Value) -> bool:
    """``ix[:, 1:5]``, ``ix[:, 3]``, ``ix[:, [0, 2]]``: positions, not labels (frames here have string labels)."""
    sv = _const_value(v)
    if isinstance(sv, slice):
        return all(x is None or (isinstance(x, int) and not isinstance(x, bool)) for x in (sv.start, sv.stop, sv.step))
    if isinstance(sv, list):
        return bool(sv) and all(isinstance(x, int) and not isinstance(x, bool) for x in sv)
    return isinstance(sv, int) and not isinstance(sv, bool)


def _kind_of(v: Value) -> str:
    if isinstance(v, Data):
        return v.kind
    if isinstance(v, Model):
        return "model"
    if isinstance(v, DatasetV):
        return "dataset"
    if isinstance(v, SeqV):
        return "list"
    if isinstance(v, DictV):
        return "dict"
    return "unknown"


def _hashable(v: Any) -> bool:
    try:
        hash(v)
    except TypeError:
        return False
    return True


def _looks_like_data(name: str) -> bool:
    """A header cell that is a value (a number), as when a file without a header is read with one."""
    try:
        float(name)
    except ValueError:
        return False
    return True


def _describe_slice(sv: slice) -> str:
    """slice(1, -1) -> '1..-2' (inclusive, as a reader counts columns); a step keeps Python's a:b:c."""
    if sv.step not in (None, 1):
        return f"{'' if sv.start is None else sv.start}:{'' if sv.stop is None else sv.stop}:{sv.step}"
    start = sv.start or 0
    if sv.stop is None:
        return f"{start}..-1"
    return f"{start}..{sv.stop - 1}" if sv.stop != 0 else f"{start}:0"


def _const_value(v: Value) -> Any:
    if isinstance(v, Const):
        return v.value
    if isinstance(v, SeqV):
        return [_const_value(i) for i in v.items]
    return v


def _derived_name(datas: list[Data]) -> str:
    names = [c for d in datas for c in d.cols]
    return names[0] if len(names) == 1 else "(" + " ".join(names[:3]) + ")"
