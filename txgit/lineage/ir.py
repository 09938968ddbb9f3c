"""Python source -> a small intermediate representation of data flow.

The IR keeps what lineage needs and nothing else: assignments (with tuple
unpacking and subscript/attribute targets), calls with positional and keyword
arguments, attribute and subscript access, literals, operators (whose result
derives from all their operands), comprehensions, loops, branches and the
bodies of user functions. Anything else becomes :class:`Opaque`, which the
interpreter reports as unknown instead of guessing.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any, Union


# -- expressions -------------------------------------------------------------------

@dataclass
class Name:
    id: str


@dataclass
class Const:
    value: Any  # str, int, float, bool, None


@dataclass
class Attr:
    obj: Expr
    name: str


@dataclass
class Sub:
    obj: Expr
    index: Expr


@dataclass
class Slice:
    lower: Expr | None
    upper: Expr | None
    step: Expr | None


@dataclass
class Seq:
    """A list, tuple or set display."""

    items: list[Expr]
    starred: list[bool] = field(default_factory=list)


@dataclass
class DictE:
    keys: list[Expr | None]
    values: list[Expr]


@dataclass
class Call:
    func: Expr
    args: list[Expr]
    kwargs: dict[str, Expr]
    starred: list[Expr] = field(default_factory=list)  # *args / **kwargs: content unknown


@dataclass
class Operator:
    """A binary/unary/boolean operator, comparison or conditional expression: derives from every operand.

    ``op`` names it ('+', '==', 'not in', 'if', …) for the few places that care (masks, name filters).
    """

    op: str
    operands: list[Expr]


@dataclass
class Lambda:
    params: list[str]
    body: Expr


@dataclass
class Comp:
    """``[elt for var in iter if conds]`` (one generator; more are Opaque)."""

    elt: Expr
    target: Target
    iter: Expr
    conds: list[Expr]


@dataclass
class DictComp:
    """``{key: value for var in iter if conds}`` (one generator)."""

    key: Expr
    value: Expr
    target: Target
    iter: Expr
    conds: list[Expr]


@dataclass
class Opaque:
    what: str  # the construct, for the "unknown" report


Expr = Union[Name, Const, Attr, Sub, Slice, Seq, DictE, Call, Operator, Lambda, Comp, DictComp, Opaque]


# -- targets and statements ------------------------------------------------------------

@dataclass
class TName:
    id: str


@dataclass
class TTuple:
    items: list[Target]


@dataclass
class TSub:
    obj: Expr
    index: Expr


@dataclass
class TAttr:
    obj: Expr
    name: str


Target = Union[TName, TTuple, TSub, TAttr]


@dataclass
class Assign:
    targets: list[Target]
    value: Expr
    line: int


@dataclass
class ExprStmt:
    value: Expr
    line: int


@dataclass
class Import:
    bindings: dict[str, str]  # local name -> qualified name
    line: int


@dataclass
class For:
    target: Target
    iter: Expr
    body: list[Stmt]
    line: int


@dataclass
class Branch:
    """if/else, try/except, with: every body may run; the interpreter runs them in order."""

    bodies: list[list[Stmt]]
    line: int
    test: Expr | None = None  # if/while: what the choice depends on (literals assigned under it derive from it)


@dataclass
class FunctionDef:
    name: str
    params: list[str]
    defaults: dict[str, Expr]
    body: list[Stmt]
    line: int


@dataclass
class Return:
    value: Expr | None
    line: int


@dataclass
class Delete:
    targets: list[Target]
    line: int


@dataclass
class ClassDef:
    """A class the script defines: only what kind of object it makes matters (its methods, its bases)."""

    name: str
    methods: list[str]
    bases: list[Expr]
    line: int


Stmt = Union[Assign, ExprStmt, Import, For, Branch, FunctionDef, Return, Delete, ClassDef]

_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**",
           ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>"}
_CMPOPS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.In: "in",
           ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"}


def expr(node: ast.expr | None) -> Expr:
    """One AST expression -> IR."""
    if node is None:
        return Const(None)
    if isinstance(node, ast.Name):
        return Name(node.id)
    if isinstance(node, ast.Constant):
        return Const(node.value)
    if isinstance(node, ast.Attribute):
        return Attr(expr(node.value), node.attr)
    if isinstance(node, ast.Subscript):
        return Sub(expr(node.value), expr(node.slice))
    if isinstance(node, ast.Slice):
        return Slice(*(None if x is None else expr(x) for x in (node.lower, node.upper, node.step)))
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return Seq([expr(e.value if isinstance(e, ast.Starred) else e) for e in node.elts],
                   [isinstance(e, ast.Starred) for e in node.elts])
    if isinstance(node, ast.Dict):
        return DictE([None if k is None else expr(k) for k in node.keys], [expr(v) for v in node.values])
    if isinstance(node, ast.Call):
        args = [expr(a) for a in node.args if not isinstance(a, ast.Starred)]
        starred = [expr(a.value) for a in node.args if isinstance(a, ast.Starred)]
        kwargs = {k.arg: expr(k.value) for k in node.keywords if k.arg is not None}
        starred += [expr(k.value) for k in node.keywords if k.arg is None]
        return Call(expr(node.func), args, kwargs, starred)
    if isinstance(node, ast.BinOp):
        return Operator(_BINOPS.get(type(node.op), "?"), [expr(node.left), expr(node.right)])
    if isinstance(node, ast.UnaryOp):
        return Operator(type(node.op).__name__.lower(), [expr(node.operand)])
    if isinstance(node, ast.BoolOp):
        return Operator("and" if isinstance(node.op, ast.And) else "or", [expr(v) for v in node.values])
    if isinstance(node, ast.Compare):
        op = _CMPOPS.get(type(node.ops[0]), "?") if len(node.ops) == 1 else "cmp"
        return Operator(op, [expr(node.left)] + [expr(c) for c in node.comparators])
    if isinstance(node, ast.IfExp):
        return Operator("if", [expr(node.body), expr(node.orelse), expr(node.test)])
    if isinstance(node, ast.Lambda):
        return Lambda([a.arg for a in node.args.args], expr(node.body))
    if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp)) and len(node.generators) == 1:
        g = node.generators[0]
        return Comp(expr(node.elt), target(g.target), expr(g.iter), [expr(c) for c in g.ifs])
    if isinstance(node, ast.DictComp) and len(node.generators) == 1:
        g = node.generators[0]
        return DictComp(expr(node.key), expr(node.value), target(g.target), expr(g.iter), [expr(c) for c in g.ifs])
    if isinstance(node, ast.JoinedStr):
        return Const(None) if any(isinstance(v, ast.FormattedValue) for v in node.values) else Const("")
    if isinstance(node, ast.Starred):
        return expr(node.value)
    if isinstance(node, ast.NamedExpr):
        return expr(node.value)
    return Opaque(type(node).__name__)


def target(node: ast.expr) -> Target:
    if isinstance(node, ast.Name):
        return TName(node.id)
    if isinstance(node, (ast.Tuple, ast.List)):
        return TTuple([target(e.value if isinstance(e, ast.Starred) else e) for e in node.elts])
    if isinstance(node, ast.Subscript):
        return TSub(expr(node.value), expr(node.slice))
    if isinstance(node, ast.Attribute):
        return TAttr(expr(node.value), node.attr)
    return TName("_")


def _target_expr(t: Target) -> Expr:
    if isinstance(t, TName):
        return Name(t.id)
    if isinstance(t, TSub):
        return Sub(t.obj, t.index)
    if isinstance(t, TAttr):
        return Attr(t.obj, t.name)
    return Opaque("tuple")


def statements(body: list[ast.stmt]) -> list[Stmt]:
    """A block of AST statements -> IR statements."""
    out: list[Stmt] = []
    for node in body:
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Assign):
            out.append(Assign([target(t) for t in node.targets], expr(node.value), line))
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            out.append(Assign([target(node.target)], expr(node.value), line))
        elif isinstance(node, ast.AugAssign):
            t = target(node.target)
            op = _BINOPS.get(type(node.op), "?")
            out.append(Assign([t], Operator(op, [_target_expr(t), expr(node.value)]), line))
        elif isinstance(node, ast.Expr):
            out.append(ExprStmt(expr(node.value), line))
        elif isinstance(node, ast.Import):
            out.append(Import({(a.asname or a.name.split(".")[0]): (a.name if a.asname else a.name.split(".")[0])
                               for a in node.names}, line))
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            bindings = {(a.asname or a.name): f"{mod}.{a.name}" for a in node.names if a.name != "*"}
            if any(a.name == "*" for a in node.names):  # from sklearn.svm import *: names looked up there later
                bindings[f"*{mod}"] = mod
            out.append(Import(bindings, line))
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            out.append(For(target(node.target), expr(node.iter), statements(node.body), line))
            if node.orelse:
                out.append(Branch([statements(node.orelse)], line))
        elif isinstance(node, ast.While):
            out.append(Branch([statements(node.body), statements(node.orelse)], line, expr(node.test)))
        elif isinstance(node, ast.If):
            out.append(Branch([statements(node.body), statements(node.orelse)], line, expr(node.test)))
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if item.optional_vars is not None:
                    out.append(Assign([target(item.optional_vars)], expr(item.context_expr), line))
            out.append(Branch([statements(node.body)], line))
        elif isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
            bodies = [statements(node.body)] + [statements(h.body) for h in node.handlers]
            bodies += [statements(node.orelse), statements(node.finalbody)]
            out.append(Branch(bodies, line))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            params = [a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs]
            pos = node.args.posonlyargs + node.args.args
            defaults = {a.arg: expr(d) for a, d in zip(pos[len(pos) - len(node.args.defaults):], node.args.defaults)}
            defaults.update({a.arg: expr(d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults) if d is not None})
            out.append(FunctionDef(node.name, params, defaults, statements(node.body), line))
        elif isinstance(node, ast.Return):
            out.append(Return(None if node.value is None else expr(node.value), line))
        elif isinstance(node, ast.Delete):
            out.append(Delete([target(t) for t in node.targets], line))
        elif isinstance(node, ast.Match):
            out.append(Branch([statements(c.body) for c in node.cases], line))
        elif isinstance(node, ast.ClassDef):
            methods = [n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
            out.append(ClassDef(node.name, methods, [expr(b) for b in node.bases], line))
        # global, pass, raise, assert: no data flow we follow
    return out


def _strip_magics(source: str) -> str:
    """Blank IPython magics and shell escapes (``%``/``!`` lines), but only where a statement starts:
    a line starting with ``%`` inside open brackets or after a backslash is the modulo operator."""
    out = []
    depth = 0  # open (, [, { across lines
    quote: str | None = None  # an open triple-quoted string
    continued = False
    for line in source.splitlines():
        if quote is None and depth == 0 and not continued and line.lstrip().startswith(("%", "!")):
            out.append("")
            continue
        out.append(line)
        i, n = 0, len(line)
        while i < n:
            ch = line[i]
            if quote is not None:
                if ch == "\\":
                    i += 2
                    continue
                if line.startswith(quote, i):
                    i += len(quote)
                    quote = None
                    continue
                i += 1
                continue
            if ch == "#":
                break
            if ch in "\"'":
                q = line[i:i + 3] if line[i:i + 3] in ('"""', "'''") else ch
                quote = q
                i += len(q)
                if len(q) == 1:  # single-quoted strings end on this line
                    j = i
                    while j < n and line[j] != q:
                        j += 2 if line[j] == "\\" else 1
                    i, quote = j + 1, None
                continue
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth = max(0, depth - 1)
            i += 1
        continued = quote is None and line.rstrip().endswith("\\") and not line.lstrip().startswith("#")
    return "\n".join(out)


@dataclass
class Skipped:
    """A piece of the source the front end could not read: where, and why in words."""

    line: int
    why: str


# Python 2 statements, recognised line by line so such a script is read, not refused
_PY2_PRINT = re.compile(r"^(\s*)print(?:\s+(?!\()(.*?)|\s*>>\s*(.*?))?\s*$")
_PY2_EXCEPT = re.compile(r"^(\s*except\s+[^,:]+?)\s*,\s*([A-Za-z_]\w*)\s*:")
_PY2_EXEC = re.compile(r"^(\s*)exec\s+(?!\()(.+)$")


def _python2_fix(chunk: str) -> tuple[str, list[tuple[int, str]]]:
    """Rewrite the Python 2 statements of ``chunk`` into Python 3 equivalents; say which were found, where
    (as the line's offset in the chunk)."""
    found: list[tuple[int, str]] = []
    out = []
    for offset, line in enumerate(chunk.split("\n")):
        m = _PY2_PRINT.match(line)
        if m and (m.group(2) is not None or m.group(3) is not None) and not re.match(r"^\s*print\s*[=.\[]", line):
            body = m.group(2) if m.group(2) is not None else m.group(3)
            line = f"{m.group(1)}print({body.rstrip(',')})"
            found.append((offset, "print statement"))
        m = _PY2_EXCEPT.match(line)
        if m:
            line = f"{m.group(1)} as {m.group(2)}:" + line[m.end():]
            found.append((offset, "except X, e"))
        m = _PY2_EXEC.match(line)
        if m:
            line = f"{m.group(1)}exec({m.group(2)})"
            found.append((offset, "exec statement"))
        if "`" in line and not line.lstrip().startswith("#"):
            line = re.sub(r"`([^`]*)`", r"repr(\1)", line)
            found.append((offset, "backquotes"))
        line2 = re.sub(r"\b(\d+)[lL]\b", r"\1", line)
        line2 = re.sub(r"(?<![\w.])0(\d+)\b", r"0o\1", line2)
        line2 = re.sub(r"\bur(['\"])", r"u\1", line2)
        if line2 != line:
            found.append((offset, "Python 2 literal"))
            line = line2
        line = line.replace("<>", "!=") if "<>" in line and not re.search(r"['\"].*<>.*['\"]", line) else line
        out.append(line)
    return "\n".join(out), found


def _chunks(lines: list[str]) -> list[tuple[int, int]]:
    """Top-level statements as (first, end) line ranges (0-based, end exclusive): a new chunk starts at a
    line in column 0 that does not continue the previous one (brackets, strings, else/except/decorators)."""
    starts = []
    depth = 0
    quote: str | None = None
    for i, line in enumerate(lines):
        if (quote is None and depth == 0 and line[:1] not in ("", " ", "\t", "#", ")", "]", "}")
                and not re.match(r"(else|elif|except|finally)\b", line)
                and not (starts and lines[starts[-1]].startswith("@") and i - 1 >= starts[-1]
                         and lines[i - 1].startswith("@"))):
            if not (i and lines[i - 1].rstrip().endswith("\\")):
                starts.append(i)
        # bracket and string state, roughly (comments and one-line strings skipped)
        j, n = 0, len(line)
        while j < n:
            ch = line[j]
            if quote is not None:
                if line.startswith(quote, j):
                    j += len(quote)
                    quote = None
                else:
                    j += 2 if ch == "\\" else 1
                continue
            if ch == "#":
                break
            if ch in "\"'":
                q = line[j:j + 3] if line[j:j + 3] in ('"""', "'''") else ch
                if len(q) == 3:
                    quote = q
                    j += 3
                    continue
                k = j + 1
                while k < n and line[k] != q:
                    k += 2 if line[k] == "\\" else 1
                j = k + 1
                continue
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth = max(0, depth - 1)
            j += 1
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    return [(a, b) for a, b in zip(starts, starts[1:] + [len(lines)])]


def parse_tolerant(source: str, filename: str = "<cell>") -> tuple[list[Stmt], list[Skipped]]:
    """Source text -> IR statements, never failing on the whole: magics are dropped, Python 2
    statements rewritten, and a top-level statement that still cannot be read is skipped and named.

    Raises SyntaxError only when not one statement could be read.
    """
    text = _strip_magics(source)
    try:
        return _statements_each(ast.parse(text, filename).body)
    except SyntaxError as first:
        first_error = first
    except ValueError as e:  # null bytes
        raise SyntaxError(str(e)) from e
    except (RecursionError, MemoryError):  # nested deeper than the parser goes: read it piece by piece
        first_error = SyntaxError("too deeply nested")
    # invisible characters pasted from web pages (zero-width space, BOM, no-break space) are no Python
    lines = text.replace("\u200b", "").replace("\ufeff", "").replace("\xa0", " ").split("\n")
    body: list[ast.stmt] = []
    skipped: list[Skipped] = []
    py2: list[tuple[int, str]] = []
    read_any = False
    for a, b in _chunks(lines):
        chunk = "\n".join(lines[a:b])
        if not chunk.strip():
            continue
        pad = "\n" * a  # keep the line numbers of the whole source
        try:
            body += ast.parse(pad + chunk, filename).body
            read_any = True
            continue
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            pass
        fixed, found = _python2_fix(chunk)
        if "\t" in chunk:  # Python 2 let tabs and spaces mix: a tab goes to the next multiple of 8
            try:
                ast.parse(pad + chunk, filename)
            except TabError:
                fixed = "\n".join(line.expandtabs(8) for line in fixed.split("\n"))
                found.append((0, "tabs mixed with spaces"))
            except SyntaxError:
                pass
        if found:
            try:
                body += ast.parse(pad + fixed, filename).body
                read_any = True
                py2 += [(a + 1 + offset, f) for offset, f in found]
                continue
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                pass
        first_line = lines[a].strip()
        skipped.append(Skipped(a + 1, f"cannot read this statement ({first_line[:60]})"))
    if not read_any:
        raise first_error
    if py2:
        kinds = sorted({f for _, f in py2})
        first = min(line for line, _ in py2)
        skipped.insert(0, Skipped(first, f"Python 2 source: {', '.join(kinds)} (read as Python 3)"))
    stmts, too_deep = _statements_each(body)
    return stmts, skipped + too_deep


def _statements_each(body: list[ast.stmt]) -> tuple[list[Stmt], list[Skipped]]:
    """IR of each top-level statement; one nested too deeply to convert is skipped and named."""
    out: list[Stmt] = []
    skipped: list[Skipped] = []
    for node in body:
        try:
            out += statements([node])
        except RecursionError:
            skipped.append(Skipped(getattr(node, "lineno", 0), "cannot read this statement (nested too deeply)"))
    return out, skipped


def parse(source: str, filename: str = "<cell>") -> list[Stmt]:
    """Source text -> IR statements; IPython magics and shell escapes (``%``, ``!``) are dropped first.
    Raises SyntaxError on the first statement that cannot be read (see :func:`parse_tolerant`)."""
    return statements(ast.parse(_strip_magics(source), filename).body)
