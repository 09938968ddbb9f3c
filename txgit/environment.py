"""Environment drift: which Python and package versions a state was recorded under.

Each commit's ``meta.json`` records ``python`` (the interpreter's version) and
``packages``: for every top-level module the state's variables come from (the
classes of its values, the modules bound in the namespace), the version of the
distribution that provides it (``importlib.metadata``), else the module's
``__version__``. Looked up once per module per process, so a commit pays a
few dictionary look-ups.

A checkout compares that record with this process: one line per difference
(``pandas: recorded 2.2.3, here 3.0.0``; a package not installed here; another
Python), returned on :class:`txgit.repository.CheckoutResult` as ``drift`` and
printed by the CLI and the magics; :meth:`Workspace.load` raises them as an
:class:`EnvironmentDrift` warning. A module the state needs that is missing
fails the restore with an error naming it.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import platform
import sys
from collections.abc import Iterable, Mapping
from typing import Any


class EnvironmentDrift(UserWarning):
    """A state loaded under other Python or package versions than it was recorded with."""


@functools.lru_cache(maxsize=1)
def _distributions_by_module() -> Mapping[str, list[str]]:
    # Scans every installed distribution (about a second with many): only for modules whose
    # distribution is not named like them and who carry no __version__.
    return importlib.metadata.packages_distributions()


@functools.lru_cache(maxsize=None)
def module_version(top: str) -> str | None:
    """The installed version of the distribution providing top-level module ``top``; None if none does."""
    mod = sys.modules.get(top)
    try:
        return importlib.metadata.version(top)  # the common case: numpy, pandas, scipy, torch …
    except (importlib.metadata.PackageNotFoundError, ValueError):
        pass
    version = getattr(mod, "__version__", None)
    if isinstance(version, str):
        return version
    try:
        spec = importlib.util.find_spec(top) if mod is None else getattr(mod, "__spec__", None)
    except (ImportError, ValueError):
        spec = None
    origin = str(getattr(spec, "origin", None) or "")
    if "site-packages" not in origin and "dist-packages" not in origin:
        return None  # not installed (or the user's own module beside the script): no distribution
    for dist in _distributions_by_module().get(top, []):  # sklearn -> scikit-learn, yaml -> PyYAML
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ())) | {"builtins", "__main__"}


def package_versions(tops: Iterable[str]) -> dict[str, str]:
    """``{top-level module: version}`` for those of ``tops`` that an installed distribution provides."""
    out = {}
    for top in sorted(set(tops)):
        if not top or top in _STDLIB or top.startswith("_") or top == "txgit":
            continue
        version = module_version(top)
        if version is not None:
            out[top] = version
    return out


def python_version() -> str:
    return platform.python_version()


def drift(meta: Mapping[str, Any]) -> list[str]:
    """One line per difference between a commit's recorded environment and this process."""
    lines = []
    recorded = meta.get("python")
    if isinstance(recorded, str) and recorded != python_version():
        lines.append(f"Python: recorded {recorded}, here {python_version()}")
    packages = meta.get("packages")
    if isinstance(packages, dict):
        for top, version in sorted(packages.items()):
            if not isinstance(top, str) or not isinstance(version, str) or not top.isidentifier():
                continue  # a malformed record says nothing about this environment
            here = module_version(top)
            if here is None:
                lines.append(f"{top}: recorded {version}, not installed here")
            elif here != version:
                lines.append(f"{top}: recorded {version}, here {here}")
    return lines
