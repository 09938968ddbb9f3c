"""The package's layering: a module may import its own layer and the layers below it, never one above.

Every module under ``txgit/`` is parsed (nothing is imported), and every import is checked, at any
depth: module level, inside functions, under ``if TYPE_CHECKING:``. A new module must be given a
layer in :data:`LAYERS`.

Check another tree (say, a branch before a change): ``python tests/test_layers.py /path/to/checkout``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

# Lowest first. An entry names a module, or a package with everything under it; the longest entry
# that matches wins. ``txgit`` alone is the package's ``__init__`` (it re-exports the Python API,
# so importing it pulls in the facade): it sits on top.
LAYERS: list[tuple[str, list[str]]] = [
    ("base", ["txgit._version", "txgit.collector", "txgit.errors", "txgit.environment", "txgit.packs", "txgit.storage"]),
    ("state", ["txgit.state"]),
    ("history", ["txgit.history", "txgit.gitwriter", "txgit.gitpack", "txgit.merge"]),
    ("engine", ["txgit.repository"]),
    ("features", ["txgit.remote", "txgit.integrity", "txgit.budget", "txgit.trust", "txgit.merging",
                  "txgit.attached"]),
    ("facade", ["txgit.workspace"]),
    ("sessions", ["txgit.sessions"]),
    ("tools", ["txgit.reuse", "txgit.lineage", "txgit.visual", "txgit.jupyter.api"]),
    ("shells", ["txgit.magics", "txgit.cli", "txgit.__main__", "txgit.jupyter", "txgit"]),
]
# Layers whose modules must not import each other in a loop either (the engine and what stands on it).
NO_CYCLES_UP_TO = "facade"

ROOT = Path(__file__).resolve().parent.parent


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package under ``root``."""
    out = {}
    for path in sorted((root / "txgit").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports_of(module: str, path: Path, known: set[str]) -> list[tuple[int, str]]:
    """(line, imported txgit module) for every import in the file, wherever it stands."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                # `from txgit import budget` imports the module txgit.budget; `from txgit import X` the package
                sub = f"{source}.{alias.name}"
                found.append((node.lineno, sub if sub in known else source))
    return sorted({(line, name) for line, name in found if name == "txgit" or name.startswith("txgit.")})


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (length of the entry, layer)
    for rank, (_, entries) in enumerate(LAYERS):
        for entry in entries:
            matches = module == entry or (entry != "txgit" and module.startswith(entry + "."))
            if matches and (best is None or len(entry) > best[0]):
                best = (len(entry), rank)
    return None if best is None else best[1]


def violations(root: Path) -> list[str]:
    """One line per module with no layer, and per import of a layer above the importer's."""
    files = module_files(root)
    known = set(files)
    out = []
    for module, path in files.items():
        mine = layer_of(module)
        if mine is None:
            out.append(f"{module}: in no layer (add it to LAYERS in {Path(__file__).name})")
            continue
        for line, imported in imports_of(module, path, known):
            theirs = layer_of(imported)
            if theirs is not None and theirs > mine:
                out.append(f"{path.relative_to(root)}:{line}: {module} ({LAYERS[mine][0]}) imports {imported} "
                           f"({LAYERS[theirs][0]}), a layer above it")
    return out


def cycles(root: Path) -> list[list[str]]:
    """Import loops among the modules of the layers up to :data:`NO_CYCLES_UP_TO` (each loop once)."""
    files = module_files(root)
    top = [name for name, _ in LAYERS].index(NO_CYCLES_UP_TO)
    checked = {m for m in files if (layer_of(m) or 0) <= top and layer_of(m) is not None}
    graph = {m: sorted({i for _, i in imports_of(m, files[m], set(files)) if i in checked and i != m})
             for m in sorted(checked)}
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()

    def walk(path: list[str]) -> None:
        for nxt in graph[path[-1]]:
            if nxt == path[0]:
                if frozenset(path) not in seen:
                    seen.add(frozenset(path))
                    found.append(path + [nxt])
            elif nxt not in path and nxt > path[0]:  # each loop is found from its smallest module
                walk(path + [nxt])

    for start in sorted(graph):
        walk([start])
    return found


def test_every_module_has_a_layer_and_imports_only_its_own_or_lower_layers() -> None:
    problems = violations(ROOT)
    assert not problems, "layering broken:\n" + "\n".join(problems)


def test_the_engine_features_and_facade_import_each_other_in_no_loop() -> None:
    loops = cycles(ROOT)
    assert not loops, "import loops:\n" + "\n".join(" -> ".join(loop) for loop in loops)


def test_the_layer_table_names_modules_that_exist() -> None:
    known = set(module_files(ROOT))
    stale = [e for _, entries in LAYERS for e in entries
             if e not in known and not any(m.startswith(e + ".") for m in known)]
    assert not stale, f"LAYERS names modules that do not exist: {stale}"


if __name__ == "__main__":
    where = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT
    report = violations(where) + [" -> ".join(loop) for loop in cycles(where)]
    print("\n".join(report) or f"{where}: layering holds")
    sys.exit(1 if report else 0)
