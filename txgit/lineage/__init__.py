"""Lineage: which source files and columns became each model's features and label (Vamsa-style).

Static analysis of the code (a script, or a workspace's recorded cells) into an
IR (:mod:`txgit.lineage.ir`), interpreted with a knowledge base of library APIs
(``kb.json``, see :mod:`txgit.lineage.analysis`). Facts from outside the code
sharpen it: the header of a data file the code reads, and in a workspace the
real columns of every frame each commit recorded.

    from txgit.lineage import lineage_of_script, lineage_of_workspace
    report = lineage_of_script("train.py")
    report.models["model"].features   # [SourceColumn('titanic.csv', 'Age'), …]
"""

from __future__ import annotations

import json
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from txgit.errors import TxgitError, UnknownVariable
from txgit.lineage import ir
from txgit.lineage.analysis import Facts, Interpreter, KnowledgeBase, Model, SourceColumn

__all__ = ["LineageReport", "ModelLineage", "RuntimeFit", "SourceColumn", "KnowledgeBase", "lineage_of_source",
           "lineage_of_script", "lineage_of_workspace"]


@dataclass
class ModelLineage:
    """One trained model: where its features and label come from."""

    name: str
    type: str
    sources: list[str]
    features: list[SourceColumn]
    label: list[SourceColumn]
    features_rest: list[str] = field(default_factory=list)  # "all other columns of X except …" when not listed
    label_rest: list[str] = field(default_factory=list)
    cells: list[str] = field(default_factory=list)  # the cells / lines that shaped X, y and the model
    fit_at: str | None = None
    unknown: list[str] = field(default_factory=list)  # what the analysis could not follow for this model
    # what the committed, fitted model itself says (workspace only): see RuntimeFit
    runtime: RuntimeFit | None = None

    @property
    def feature_columns(self) -> list[str]:
        return sorted({c.column for c in self.features})

    @property
    def label_columns(self) -> list[str]:
        return sorted({c.column for c in self.label})

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "type": self.type, "sources": self.sources,
            "features": [{"source": c.source, "column": c.column} for c in self.features],
            "label": [{"source": c.source, "column": c.column} for c in self.label],
            "features_rest": self.features_rest, "label_rest": self.label_rest,
            "cells": self.cells, "fit_at": self.fit_at, "unknown": self.unknown,
            "runtime": None if self.runtime is None else self.runtime.to_dict(),
        }


@dataclass
class RuntimeFit:
    """Run-time facts about one model, read from the fitted estimator a workspace commit recorded.

    ``features``: its ``feature_names_in_`` (the exact columns passed to ``fit``; None when it was
    fitted on an array); ``n_features``: its ``n_features_in_``; ``commit``/``cell``: the commit
    that last wrote the variable and, of its cells, the last that names it. ``code_features``: what
    the code analysis alone listed, kept when it disagrees (``agrees`` False). scikit-learn keeps
    no label name: ``label_seen`` are committed Series/arrays named by the code's label column.
    ``notes``: the same, in words.
    """

    commit: str
    cell: str | None
    features: list[str] | None
    n_features: int | None
    agrees: bool | None = None
    code_features: list[str] = field(default_factory=list)
    label_seen: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"commit": self.commit, "cell": self.cell, "features": self.features, "n_features": self.n_features,
                "agrees": self.agrees, "code_features": self.code_features, "label_seen": self.label_seen,
                "notes": self.notes}


@dataclass
class LineageReport:
    """Every model the code trains, by variable name; what could not be followed; how long it took."""

    models: dict[str, ModelLineage]
    unknown: list[str]
    seconds: float
    mode: str  # "static", "static+files" or "workspace"
    rev: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "rev": self.rev, "seconds": round(self.seconds, 6),
                "models": {n: m.to_dict() for n, m in self.models.items()}, "unknown": self.unknown}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)


def _sort_key(c: str) -> tuple[int, str]:
    """Cell labels in run order: '[3]' and 'train.py:12' sort by their number."""
    tail = c.rsplit(":", 1)[-1].strip("[]")
    return (int(tail), c) if tail.isdigit() else (1 << 30, c)


def _model_lineage(name: str, m: Model) -> ModelLineage:
    feats = sorted(m.X.prov()) if m.X is not None else []
    label = sorted(m.y.prov()) if m.y is not None else []
    frest = [m.X.rest.describe(listed=any(c.column != "*" for c in feats))] if m.X is not None and m.X.rest else []
    lrest = [m.y.rest.describe(listed=any(c.column != "*" for c in label))] if m.y is not None and m.y.rest else []
    sources = set()
    for d in (m.X, m.y):
        if d is not None:
            sources |= d.sources()
    unknown = list(m.notes)
    for d in (m.X, m.y):
        if d is not None:
            unknown += [n for n in d.notes if n not in unknown]
    if m.X is None:
        unknown.append("features: not traced to any source")
    for role, d in (("features", m.X), ("label", m.y)):
        if d is not None:
            bad = [c for c, p in d.cols.items() if not p]
            if bad:
                unknown.append(f"{role}: origin unknown for {', '.join(bad[:5])}")
    cells = set(m.cells) | (m.X.cells if m.X else frozenset()) | (m.y.cells if m.y else frozenset())
    return ModelLineage(name, m.type, sorted(s for s in sources if s), [c for c in feats if c.column != "*"],
                        [c for c in label if c.column != "*"], frest, lrest, sorted(cells, key=_sort_key),
                        m.fit_at, unknown)


def _report(interp: Interpreter, mode: str, started: float, rev: str | None = None) -> LineageReport:
    models: dict[str, ModelLineage] = {}
    bound: set[int] = set()
    for name, v in interp.env.items():
        if id(v) in bound:  # fitted = rf.fit(X, y): one model, named by the variable that held it first
            continue
        if isinstance(v, Model) and (v.X is not None or v.y is not None) and not v.transformer:
            models[name] = _model_lineage(name, v)
            bound.add(id(v))
    # fits whose model no variable holds (cross_val_score(RandomForest(), X, y)): named by place
    for fit in interp.fits:
        m = fit.model
        if id(m) not in bound and not m.transformer and not any(
                ml.fit_at == fit.where and ml.type == m.type for ml in models.values()):
            models[f"<{m.type} at {fit.where}>"] = _model_lineage(f"<{m.type} at {fit.where}>", m)
    return LineageReport(models, list(interp.unknown), time.perf_counter() - started, mode, rev)


def lineage_of_source(source: str, *, filename: str = "<script>", data_dir: str | Path | None = None,
                      kb: KnowledgeBase | None = None) -> LineageReport:
    """Lineage of one piece of code. ``data_dir``: where the files it reads are (their headers help)."""
    started = time.perf_counter()
    try:
        stmts, skipped = ir.parse_tolerant(source, filename)
    except SyntaxError as e:  # not one statement could be read
        raise TxgitError(f"{filename}:{e.lineno}: syntax error: {e.msg}") from e
    interp = Interpreter(kb, Facts(None if data_dir is None else Path(data_dir)))
    interp.unknown += [f"{Path(filename).name}:{s.line}: {s.why}" for s in skipped]
    interp.run(stmts, Path(filename).name, per_statement=True)
    return _report(interp, "static" if data_dir is None else "static+files", started)


SCRIPT_SUFFIXES = {".py", ".pyw", ".ipy", ".ipynb", ""}  # "": a script named without one (`train`)


def lineage_of_script(path: str | Path, *, use_files: bool = True, kb: KnowledgeBase | None = None) -> LineageReport:
    """Lineage of a plain script, static only; ``use_files``: read the headers of data files next to it."""
    path = Path(path)
    if path.suffix.lower() not in SCRIPT_SUFFIXES:
        # a data file read as code is mostly tuples of names ("a,b" is Python): "no trained models found"
        raise TxgitError(f"{path} is not a Python script (.py) or notebook (.ipynb): --script takes the code that "
                         "reads it (`txgit lineage --script train.py`)")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise TxgitError(f"cannot read {path}: {e.strerror or e}") from e
    try:
        source = raw.decode("utf-8-sig")
    except UnicodeDecodeError:  # Python 2 scripts are often Latin-1; a wrong guess only garbles non-ASCII text
        source = raw.decode("latin-1")
    data_dir = path.resolve().parent if use_files else None
    if path.suffix == ".ipynb":
        return _lineage_of_notebook(path, source, data_dir, kb)
    return lineage_of_source(source, filename=str(path), data_dir=data_dir, kb=kb)


def _lineage_of_notebook(path: Path, text: str, data_dir: Path | None, kb: KnowledgeBase | None) -> LineageReport:
    """A Jupyter notebook file: its code cells in order, each named ``[n]`` by its execution count
    (``cell i``, its place among the code cells, when it was never run)."""
    started = time.perf_counter()
    try:
        cells = [c for c in json.loads(text).get("cells", []) if c.get("cell_type") == "code"]
    except (ValueError, AttributeError) as e:
        raise TxgitError(f"{path}: not a notebook that can be read ({e})") from e
    interp = Interpreter(kb, Facts(data_dir))
    for i, cell in enumerate(cells, 1):
        code = cell.get("source", "")
        code = "".join(code) if isinstance(code, list) else str(code)
        label = f"[{cell['execution_count']}]" if cell.get("execution_count") else f"cell {i}"
        try:
            stmts, skipped = ir.parse_tolerant(code, label)
        except SyntaxError:
            interp.unknown.append(f"{label}: not Python that can be parsed")
            continue
        interp.unknown += [f"{label}:{s.line}: {s.why}" for s in skipped]
        interp.run(stmts, label)
    return _report(interp, "static" if data_dir is None else "static+files", started)


# fitted models bigger than this are not loaded for their run-time facts (a forest can be gigabytes)
MAX_MODEL_BYTES = 50 * 1024 * 1024
_MODEL_MODULES = ("sklearn.", "xgboost.", "lightgbm.")


def lineage_of_workspace(ws: Any, rev: str = "HEAD", *, use_files: bool = True, kb: KnowledgeBase | None = None,
                         load_models: bool = True, max_model_bytes: int = MAX_MODEL_BYTES) -> LineageReport:
    """Lineage of the models in ``rev`` of a workspace, from the code its history recorded.

    The cells recorded by each commit on the first-parent path from the root to
    ``rev`` are analysed in order; after each commit's cells, every frame the
    commit recorded replaces the analysis's idea of its columns (so
    ``df.drop(columns=[…])`` or ``iloc`` resolve to real column names).

    ``load_models``: each model variable ``rev`` recorded as a scikit-learn (or
    xgboost/lightgbm scikit-learn-style) estimator of at most ``max_model_bytes``
    is loaded (``ws.load``), and its ``feature_names_in_`` — the columns ``fit``
    was actually given — replace the analysis's features (see :class:`RuntimeFit`).
    """
    started = time.perf_counter()
    history = ws.history
    target = history.resolve(rev)
    chain = []
    c = target
    while True:
        chain.append(c)
        if not c.parents:
            break
        c = c.parents[0]
    chain.reverse()
    interp = Interpreter(kb, Facts(Path(ws.root) if use_files else None))
    # name -> (commit that last changed its record, that commit's cells as (label, code))
    written: dict[str, tuple[Any, list[tuple[str, str]]]] = {}
    previous: dict[str, Any] = {}
    for commit in chain:
        raw = history.read_file(commit, "code/cells.json")
        cells = []
        if raw is not None:
            try:
                cells = json.loads(raw)
            except ValueError:
                interp.unknown.append(f"{str(commit.id)[:8]}: unreadable code/cells.json")
                cells = []
        labelled = []
        for cell in cells:
            label = cell.get("label") or (f"[{cell['execution_count']}]" if cell.get("execution_count") is not None
                                          else str(commit.id)[:8])
            labelled.append((label, cell.get("code", "")))
            try:
                stmts, skipped = ir.parse_tolerant(cell.get("code", ""), label)
            except SyntaxError:
                interp.unknown.append(f"{label}: not Python that can be parsed")
                continue
            interp.unknown += [f"{label}: line {s.line}: {s.why}" for s in skipped]
            # a script block's lines count from its own first line
            base_line = int(label.rsplit(":", 1)[1]) - 1 if ":" in label and label.rsplit(":", 1)[1].isdigit() else 0
            if base_line:
                _shift(stmts, base_line)
            if base_line:
                interp.run(stmts, label.rsplit(":", 1)[0], per_statement=True)
            else:
                interp.run(stmts, label)
        state = history.read_state(commit, groups=False)
        for name, rec in state.variables.items():
            if not rec.same_content(previous.get(name)):
                written[name] = (commit, labelled)
            cols = rec.details.get("columns") if rec.details else None
            if cols is not None:
                interp.sharpen(name, [str(c) for c in cols], rec.details.get("dtypes"))
            elif rec.details and rec.details.get("name") is not None and rec.type.endswith("Series"):
                interp.sharpen(name, [], series_name=str(rec.details["name"]))
        previous = state.variables
    report = _report(interp, "workspace", started, str(target.id))
    if load_models:
        _runtime_facts(ws, target, report, interp, written, max_model_bytes)
    report.seconds = time.perf_counter() - started
    return report


def _runtime_facts(ws: Any, target: Any, report: LineageReport, interp: Interpreter,
                   written: dict[str, tuple[Any, list[tuple[str, str]]]], max_bytes: int) -> None:
    """Fill in :class:`RuntimeFit` for each model ``target`` recorded as a fitted estimator.

    No estimator class is patched: the committed model itself says what it was fitted
    on. Only variables the code analysis found as models are read, and only when small.
    """
    state = ws.history.read_state(target, groups=False)
    for name, m in report.models.items():
        rec = state.variables.get(name)
        if rec is None or rec.kind != "value" or not rec.type.startswith(_MODEL_MODULES):
            continue
        commit, cells = written.get(name, (target, []))
        commit_id = str(commit.id)[:8]
        # of the cells that wrote it, the last that names the variable (a script block is one cell)
        naming = [lab for lab, code in cells if re.search(rf"\b{re.escape(name)}\b", code)]
        cell = naming[-1] if naming else (cells[-1][0] if cells else None)
        where = f"{cell} (commit {commit_id})" if cell else f"commit {commit_id}"
        if rec.size > max_bytes:
            m.unknown.append(f"run-time facts not read: the committed model is {rec.size / 2**20:.0f} MB "
                             f"(limit {max_bytes / 2**20:.0f} MB)")
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # version drift and sklearn's unpickle warnings: names still hold
                model = ws.load(name, str(target.id))
        except Exception as e:  # an untrusted commit, a missing library: the static answer stands
            m.unknown.append(f"run-time facts not read: {str(e).splitlines()[0][:200] if str(e) else type(e).__name__}")
            continue
        names = getattr(model, "feature_names_in_", None)
        n = getattr(model, "n_features_in_", None)
        try:
            names = None if names is None else [str(c) for c in names]
            n = None if n is None else int(n)
        except (TypeError, ValueError):
            names, n = None, None
        if names is None and n is None:
            continue  # not fitted (or a kind that keeps neither): nothing to say
        fact = RuntimeFit(commit_id, cell, names, n)
        code_cols = m.feature_columns
        v = interp.env.get(name)
        X = v.X if isinstance(v, Model) else None
        narrowed = (isinstance(v, Model) and v.selector is not None and not v.remainder and names is not None
                    and not m.features_rest and set(code_cols) < set(names))
        if narrowed:
            # a pipeline whose ColumnTransformer drops the rest: fit saw more columns than the model uses
            fact.agrees = True
            fact.notes.append(f"fit at {where} was given {len(names)} columns; its ColumnTransformer uses "
                              f"{len(code_cols)} of them: {', '.join(code_cols)}")
        elif names is not None:
            fact.agrees = sorted(set(names)) == code_cols and not m.features_rest
            if not fact.agrees:
                fact.code_features = code_cols + m.features_rest
                fact.notes.append(f"fit at {where} was given {len(names)} columns: {', '.join(names)}; "
                                  f"the code analysis alone had {', '.join(fact.code_features) or 'none'}")
            feats: set[SourceColumn] = set()
            for c in names:
                if X is not None and c in X.cols and X.cols[c]:
                    feats |= X.cols[c]
                elif X is not None and X.rest is not None and c not in X.rest.excluded:
                    feats |= {SourceColumn(s, c) for s in X.rest.sources}
                else:
                    feats.add(SourceColumn("?", c))
            m.features = sorted(feats)
            m.features_rest = []
            if any(c.source == "?" for c in m.features):
                m.unknown.append("features: the model names columns whose source the code analysis did not find "
                                 "(listed under source '?')")
            m.unknown = [u for u in m.unknown if not u.startswith("features: origin unknown")]
        else:
            listed = len(code_cols) if not m.features_rest else None
            fact.agrees = None if listed is None else listed == n
            if listed != n:
                fact.notes.append(f"fit at {where} was given {n} unnamed columns (an array); the code analysis "
                                  f"lists {'some of ' if listed is None else ''}{len(code_cols)}"
                                  f"{' and ' + '; '.join(m.features_rest) if m.features_rest else ''}")
        # sklearn keeps no label name: say where the code's label is to be seen when the model was written
        at_fit = ws.history.read_state(commit, groups=False)
        for lab in m.label_columns:
            for vname, vrec in at_fit.variables.items():
                is_series = vrec.type.endswith("Series") and str((vrec.details or {}).get("name")) == lab
                if vrec.kind == "value" and (is_series or (vname == lab and vrec.type.endswith("ndarray"))):
                    fact.label_seen.append(vname)
        if fact.label_seen:
            fact.notes.append(f"label column {', '.join(m.label_columns)} is committed as {', '.join(fact.label_seen)} "
                              "(the model itself keeps no label name)")
        m.runtime = fact


def _shift(stmts: list[ir.Stmt], by: int) -> None:
    for s in stmts:
        s.line += by
        for attr in ("body",):
            if hasattr(s, attr):
                _shift(getattr(s, attr), by)
        if isinstance(s, ir.Branch):
            for b in s.bodies:
                _shift(b, by)


def select(report: LineageReport, var: str | None) -> dict[str, ModelLineage]:
    """The models of ``report`` (one, by name, when ``var`` is given)."""
    if var is None:
        return report.models
    if var not in report.models:
        have = ", ".join(sorted(report.models)) or "none"
        raise UnknownVariable(f"no trained model named {var!r} (models: {have})")
    return {var: report.models[var]}
