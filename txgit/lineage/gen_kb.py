"""Generate ``kb_sklearn.json`` and ``kb_pandas.json``: the knowledge base's scikit-learn and pandas
parts, derived from the installed libraries.

The analysis never imports scikit-learn (it must work where it is not installed, and stay within
a few milliseconds per script), so the surface is derived here, at development time, into a file
shipped with txgit; ``tests/test_lineage_real_idioms.py`` checks that the file covers the
installed versions (names an older version had are kept). Run after upgrading either::

    python -m txgit.lineage.gen_kb          # rewrite the file
    python -m txgit.lineage.gen_kb --check  # exit 1 if it is not current

Kinds come from the ``sklearn.base`` mixins and signatures: classifiers, regressors, clusterers
and outlier detectors are ``estimator``; other transformers ``transformer`` (feature selectors keep
an unknown ``subset``); an estimator whose first parameter is another estimator is ``wrap_model``.
Public functions: ``(estimator, X, y, ...)`` trains a model (``cv_fit``); a preprocessing function
of ``X`` keeps the columns it is given (``same``); anything else (metrics, datasets, utilities)
is ``opaque``: its result carries no columns. DataFrame methods keep the receiver's columns
(``same``) unless they reshape them (``reshape``: the columns flow in, flagged) or give no data
(``opaque``: output, plots, ``to_*`` conversions other than those kb.json names).
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from pathlib import Path
from typing import Any

GENERATED_PATH = Path(__file__).with_name("kb_sklearn.json")
PANDAS_PATH = Path(__file__).with_name("kb_pandas.json")

# DataFrame methods whose result has other columns than the receiver (reshaping, statistics between columns)
_RESHAPE = {"T", "transpose", "pivot", "pivot_table", "melt", "stack", "unstack", "corr", "cov", "dot", "xs",
            "set_axis", "swapaxes", "droplevel", "reorder_levels", "swaplevel", "compare", "align", "resample",
            "ewm", "from_dummies", "wide_to_long", "lreshape", "crosstab", "json_normalize", "mode", "quantile"}
# methods that give no data a model could train on (output, plots, conversions to other things)
_NO_DATA = {"info", "plot", "hist", "boxplot", "equals", "items", "iterrows", "itertuples", "memory_usage", "keys",
            "first_valid_index", "last_valid_index", "set_flags", "sparse", "insert", "isetitem", "update",
            "eval", "from_arrow", "from_dict", "from_records"}

# modules whose public functions transform the data they are given (their result has its columns)
_DATA_FUNCTION_MODULES = ("sklearn.preprocessing", "sklearn.impute", "sklearn.decomposition",
                          "sklearn.feature_extraction", "sklearn.random_projection", "sklearn.manifold")
# hand rules in kb.json decide these (their arguments need their own operations)
_HAND_WRITTEN = {"Pipeline", "FeatureUnion", "ColumnTransformer", "TransformedTargetRegressor"}


def _public_module(cls_or_fn: Any) -> str:
    """``sklearn.ensemble._forest`` -> ``sklearn.ensemble`` when the name is exported there."""
    parts = cls_or_fn.__module__.split(".")
    for i in range(2, len(parts) + 1):
        mod = ".".join(parts[:i])
        if parts[i - 1].startswith("_"):
            break
        try:
            module = importlib.import_module(mod)
        except ImportError:
            continue
        try:
            if getattr(module, cls_or_fn.__name__, None) is cls_or_fn:
                return mod
        except ImportError:  # exported there behind an experimental enabling import
            return mod
    return cls_or_fn.__module__


def _params(obj: Any) -> list[str]:
    try:
        return [p.name for p in inspect.signature(obj).parameters.values()
                if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "self"]
    except (TypeError, ValueError):
        return []


def _estimator_rule(cls: type) -> dict[str, Any]:
    import sklearn.base as base
    from sklearn.feature_selection import SelectorMixin

    params = _params(cls)
    model_like = any(issubclass(cls, m) for m in (base.ClassifierMixin, base.RegressorMixin, base.ClusterMixin,
                                                   base.OutlierMixin))
    if issubclass(cls, SelectorMixin):  # RFE(estimator), SelectKBest: an unknown subset of the input goes on
        return {"op": "transformer", "subset": True}
    if params and params[0] in ("estimator", "base_estimator") and (model_like or not issubclass(
            cls, base.TransformerMixin)):  # a search or ensemble around a model (not IterativeImputer)
        return {"op": "wrap_model", "inner": [0, params[0]]}
    if issubclass(cls, base.TransformerMixin) and not model_like:
        return {"op": "transformer"}
    if not model_like and hasattr(cls, "fit_transform"):  # TSNE, SpectralEmbedding: an embedding, not a model
        return {"op": "transformer"}
    return {"op": "estimator"}


def _function_rule(module: str, fn: Any) -> dict[str, Any]:
    params = _params(fn)
    if params[:1] == ["estimator"] and "X" in params:
        rule: dict[str, Any] = {"op": "cv_fit", "model": [0, "estimator"], "X": [params.index("X"), "X"]}
        if "y" in params:
            rule["y"] = [params.index("y"), "y"]
        return rule
    if module.startswith(_DATA_FUNCTION_MODULES) and params and params[0] in ("X", "y", "arrays", "data"):
        return {"op": "same", "data": [0, params[0]], "kind": "array"}
    return {"op": "opaque"}


def generate() -> dict[str, Any]:
    """The scikit-learn rules of the installed version, as the JSON document ``kb_sklearn.json`` holds."""
    import sklearn
    from sklearn.utils import all_estimators

    for enabling in ("enable_halving_search_cv", "enable_iterative_imputer"):  # scripts use these too
        try:
            importlib.import_module(f"sklearn.experimental.{enabling}")
        except ImportError:
            pass
    apis: dict[str, dict[str, Any]] = {}
    for name, cls in all_estimators():
        if name in _HAND_WRITTEN:
            continue
        apis[f"{_public_module(cls)}.{name}"] = _estimator_rule(cls)
    for module in sorted(m for m in _public_submodules()):
        mod = importlib.import_module(module)
        for name in getattr(mod, "__all__", []):
            try:
                obj = getattr(mod, name, None)
            except ImportError:  # experimental names need an enabling import: all_estimators lists them
                continue
            if inspect.isfunction(obj) and not name.startswith("_"):
                apis.setdefault(f"{module}.{name}", _function_rule(module, obj))
    return {"_doc": "Generated by python -m txgit.lineage.gen_kb from the installed scikit-learn; do not edit. "
                    "kb.json's hand rules win over these.",
            "sklearn_version": sklearn.__version__,
            "apis": dict(sorted(apis.items()))}


def _public_submodules() -> list[str]:
    import pkgutil

    import sklearn

    out = []
    for info in pkgutil.iter_modules(sklearn.__path__):
        if not info.name.startswith("_") and info.name not in ("tests", "externals", "conftest", "experimental"):
            out.append(f"sklearn.{info.name}")
    return out


def generate_pandas() -> dict[str, Any]:
    """Rules for the DataFrame methods and pandas functions of the installed pandas."""
    import pandas as pd

    apis: dict[str, dict[str, Any]] = {}
    for name in dir(pd.DataFrame):
        if name.startswith("_") or not callable(getattr(pd.DataFrame, name, None)):
            continue
        if name in _RESHAPE:
            apis[f"frame.{name}"] = {"op": "reshape"}
        elif name in _NO_DATA or name.startswith("to_"):
            apis[f"frame.{name}"] = {"op": "opaque"}
        else:  # row operations, element-wise arithmetic, column statistics: the receiver's columns
            apis[f"frame.{name}"] = {"op": "same"}
    for name in dir(pd):
        fn = getattr(pd, name, None)
        if name.startswith("_") or not inspect.isfunction(fn):
            continue
        params = _params(fn)
        if name.startswith("read_") and params:
            apis[f"pandas.{name}"] = {"op": "read", "path": [0, params[0]]}
        elif name in _RESHAPE or name in ("pivot", "pivot_table", "melt"):
            apis[f"pandas.{name}"] = {"op": "reshape"}
        elif name in ("array", "unique", "to_datetime", "to_numeric", "to_timedelta", "cut", "qcut", "factorize",
                      "isna", "isnull", "notna", "notnull") and params:
            apis[f"pandas.{name}"] = {"op": "same", "data": [0, params[0]]}
        else:  # options, ranges, test helpers
            apis[f"pandas.{name}"] = {"op": "opaque"}
    return {"_doc": "Generated by python -m txgit.lineage.gen_kb from the installed pandas; do not edit. "
                    "kb.json's hand rules win over these.",
            "pandas_version": pd.__version__,
            "apis": dict(sorted(apis.items()))}


def load_generated() -> dict[str, Any]:
    return json.loads(GENERATED_PATH.read_text())


def covers_installed() -> list[str]:
    """Rules of the installed scikit-learn and pandas that the shipped files lack or state differently
    (empty: current). Rules of older versions stay: scripts written for them still use those names."""
    out = []
    for path, make in ((GENERATED_PATH, generate), (PANDAS_PATH, generate_pandas)):
        have = json.loads(path.read_text())["apis"]
        out += [f"{k}: {v}" for k, v in make()["apis"].items() if have.get(k) != v]
    return out


def main(argv: list[str]) -> int:
    if "--check" in argv:
        missing = covers_installed()
        if missing:
            print(f"txgit: error: {GENERATED_PATH.name} is not current ({len(missing)} rules differ, e.g. "
                  f"{missing[0]}); run python -m txgit.lineage.gen_kb", file=sys.stderr)
            return 1
        return 0
    for path, make in ((GENERATED_PATH, generate), (PANDAS_PATH, generate_pandas)):
        old = json.loads(path.read_text())["apis"] if path.exists() else {}
        doc = make()
        doc["apis"] = dict(sorted({**old, **doc["apis"]}.items()))  # keep names older versions had
        path.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
