"""The canonical text of a cell's code: what makes two cells "the same code" for reuse.

Layout, comments and parentheses do not count (it is built from the syntax
tree), and it reads the same in every Python version that parses the code:
fields that a version leaves empty or adds empty (``type_params`` in 3.12,
empty lists dropped from ``ast.dump`` in 3.13) and empty pieces of
f-strings are left out, so a
collaborator on another Python version finds the same operations. Bytecode,
which txgit used before, differs between minor versions.

Only the standard library is used, so any interpreter can load this file.
"""

from __future__ import annotations

import ast


def canonical_code(tree: ast.AST) -> str:
    """The tree as text: node type, then each non-empty field as ``name=value``, in field order."""
    out: list[str] = []
    _write(tree, out)
    return "".join(out)


def _write(node: object, out: list[str]) -> None:
    if isinstance(node, ast.AST):
        out.append("(" + type(node).__name__)
        for name in node._fields:
            value = getattr(node, name, None)
            if isinstance(node, ast.JoinedStr) and name == "values":
                # 3.12 adds an empty piece to a nested format spec (f"{a:{b}}"); it formats to nothing
                value = [v for v in value if not (isinstance(v, ast.Constant) and v.value == "")]
            if value is None or (isinstance(value, list) and not value):
                continue
            out.append(f" {name}=")
            _write(value, out)
        out.append(")")
    elif isinstance(node, list):
        out.append("[")
        for i, item in enumerate(node):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:  # identifiers and constants: str, bytes, int, float, complex, bool, Ellipsis
        out.append(repr(node))
