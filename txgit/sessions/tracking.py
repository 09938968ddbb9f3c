"""Which names a piece of code may have changed: the hint a commit needs.

Three kinds of evidence, all cheap:

* **static**: the names a cell reads and writes, from its AST;
* **run time**: names added, deleted or rebound (the namespace's keys and the
  ids of their values before and after);
* **reach**: session functions and methods the cell uses may read or mutate
  any global their code names (``co_names``, transitively through nested code
  and the session functions they name in turn).

Mutation through an alias (``b.append`` where ``b is a``) needs nothing here:
the commit expands every name to its co-variable group. When code can touch
names we cannot see (``exec``, ``eval``, ``globals()``, ``vars()``,
``import *``, IPython magics other than a few whose effect is known: see
``NEUTRAL_MAGICS``, ``%time``/``%timeit`` and shell escapes), the answer is "everything" (``None``).
"""

from __future__ import annotations

import ast
import builtins
import re
import types
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from txgit.state.identity import identity

# Calls that read or write the namespace behind the AST's back.
OPAQUE_CALLS = frozenset({"exec", "eval", "globals", "vars", "locals", "get_ipython", "__import__", "execfile",
                          "run_line_magic", "run_cell_magic", "run_cell", "system"})
_BUILTINS = frozenset(dir(builtins))
# IPython magics (as ``get_ipython().run_line_magic(NAME, LINE)``) that bind, rebind or mutate no
# variable: they set the kernel's plotting or display up. What they change in a library's settings
# is committed as such (the session compares library settings before and after).
NEUTRAL_MAGICS = frozenset({"matplotlib", "config", "precision", "who", "whos", "pwd"})
# Shell escapes: `!cmd` is `get_ipython().system(CMD)`, `x = !cmd` is `x = get_ipython().getoutput(CMD)`,
# and the magics `%system`/`%sx` do the same. They bind nothing but the assignment's target (and
# IPython's `_exit_code`, which the run-time evidence sees); IPython expands `$name` and `{expr}`
# in CMD by evaluating them in the namespace, so those are read as code.
SHELL_CALLS = frozenset({"system", "getoutput"})
SHELL_MAGICS = frozenset({"system", "sx"})
# `%timeit` options, as IPython reads them: -n<N> -r<R> -p<P> (value attached or apart), flags -t -c -q -o
_TIMEIT_OPTIONS = re.compile(r"\s*(?:(?:-[nrp]\s*\d+|-[tcqo]+)(?:\s+|$))*")


@dataclass
class CodeNames:
    """What the AST of one piece of code says about the namespace."""

    reads: set[str] = field(default_factory=set)
    writes: set[str] = field(default_factory=set)
    opaque: str | None = None  # why the code may touch any name (None: it cannot)
    # what the experiment graph needs (txgit.sessions.operations), collected in the same pass:
    inputs: set[str] = field(default_factory=set)  # reads that may come before the code binds the name
    attributes: set[str] = field(default_factory=set)  # attribute names used (np.random.seed -> random, seed)
    calls: list[tuple[str | None, str, bool]] = field(default_factory=list)  # (owner, name, has arguments)
    stored_into: set[str] = field(default_factory=set)  # `m` in `m.x = 1`, `m.d['k'] = 1`, `del m.x`
    imported: set[str] = field(default_factory=set)  # names bound by import statements
    magics: list[str] = field(default_factory=list)  # IPython magics it runs that were seen through
    tree: ast.Module | None = field(default=None, repr=False)

    @property
    def touched(self) -> set[str]:
        return self.reads | self.writes


class _Visitor(ast.NodeVisitor):
    """Top-level (module scope) reads and writes; function bodies only count as reads of globals."""

    def __init__(self) -> None:
        self.out = CodeNames()
        self.depth = 0  # > 0: inside a function or lambda body
        self.bound: set[str] = set()  # names certainly bound by the top-level statements before this one

    def visit_Module(self, node: ast.Module) -> None:
        for stmt in node.body:
            self.visit(stmt)
            self.bound |= _definite_writes(stmt)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.out.reads.add(node.id)
            if node.id not in self.bound:
                self.out.inputs.add(node.id)
        elif self.depth == 0:
            self.out.writes.add(node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.out.attributes.add(node.attr)
        self._stored_into(node)
        self.visit(node.value)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        self._stored_into(node)
        self.generic_visit(node)

    def _stored_into(self, node: ast.Attribute | ast.Subscript) -> None:
        if self.depth == 0 and isinstance(node.ctx, (ast.Store, ast.Del)):
            base: ast.AST = node
            while isinstance(base, (ast.Attribute, ast.Subscript)):
                base = base.value
            if isinstance(base, ast.Name):
                self.out.stored_into.add(base.id)

    def visit_Global(self, node: ast.Global) -> None:
        self.out.writes.update(node.names)  # a function that declares it global may rebind it

    visit_Nonlocal = ast.NodeVisitor.generic_visit

    def _scope(self, node: ast.AST, name: str | None) -> None:
        if name is not None and self.depth == 0:
            self.out.writes.add(name)
        for dec in getattr(node, "decorator_list", ()):
            self.visit(dec)
        self.depth += 1
        for child in ast.iter_child_nodes(node):
            if child not in getattr(node, "decorator_list", ()):
                self.visit(child)
        self.depth -= 1

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._scope(node, node.name)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        # Class bodies run now, at module scope: their reads are real reads.
        if self.depth == 0:
            self.out.writes.add(node.name)
        self.generic_visit(node)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._scope(node, None)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if self.depth == 0:
                self.out.writes.add(alias.asname or alias.name.split(".")[0])
                self.out.imported.add(alias.asname or alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "*":
                self.out.opaque = "import *"
            elif self.depth == 0:
                self.out.writes.add(alias.asname or alias.name)
                self.out.imported.add(alias.asname or alias.name)

    def visit_Call(self, node: ast.Call) -> None:
        magic = _magic(node)
        if magic is not None and self._seen_through(*magic):
            return
        command = _shell_escape(node)
        if command is not None:
            self._shell(command)
            return
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if name in OPAQUE_CALLS:
            self.out.opaque = f"{name}()"
        if name is not None:
            # owner: `np` in np.f(), "." for a method of any other expression, None for a plain f()
            owner = (None if not isinstance(func, ast.Attribute) else
                     func.value.id if isinstance(func.value, ast.Name) else ".")
            self.out.calls.append((owner, name, bool(node.args or node.keywords)))
        self.generic_visit(node)

    def _seen_through(self, name: str, line: str, body: str | None) -> bool:
        """Account for what magic ``name`` does with the namespace, if that is known: nothing (a
        neutral magic), or running plain Python (``%time``'s statement at module scope, ``%timeit``'s in
        a function of its own). False: unknown, or its code does not parse (the cell stays opaque)."""
        if name in NEUTRAL_MAGICS and body is None:
            self.out.magics.append(name)
            return True
        if name in SHELL_MAGICS and body is None:
            self._shell(line)
            return True
        if name == "time":
            code, scoped = (line if body is None else body if not line.strip() else None), False
        elif name == "timeit":
            rest = line[_TIMEIT_OPTIONS.match(line).end():]  # type: ignore[union-attr]
            if rest.startswith("-"):
                return False  # an option not known here
            code, scoped = (rest if body is None else rest + "\n" + body), True
        else:
            return False
        try:
            tree = ast.parse(code) if code is not None else None
        except SyntaxError:
            return False
        if tree is None:
            return False
        self.out.magics.append(name)
        self.depth += scoped  # names %timeit assigns are locals of the function it times
        for stmt in tree.body:
            self.visit(stmt)
        self.depth -= scoped
        return True

    def _shell(self, command: str) -> None:
        """A shell command run by IPython: what its expansion evaluates is read (or called) as code."""
        from IPython.utils.text import DollarFormatter  # only IPython runs shell escapes

        self.out.magics.append("!")
        fields: list[str] = []
        try:
            for _, field_name, spec, _ in DollarFormatter().parse(command):
                if field_name is not None:
                    fields.append(field_name + (":" + spec if spec else ""))  # as IPython evaluates it
        except ValueError:
            pass  # a stray brace: IPython evaluates the fields before it, then runs the command unexpanded
        for text in fields:
            try:
                expr = ast.parse(text, mode="eval")
            except SyntaxError:
                continue  # `awk '{print $1}'`: IPython's eval fails and nothing in it runs
            self.visit(expr.body)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.target, ast.Name):
            self.out.reads.add(node.target.id)  # x += 1 reads x before it writes it
            if node.target.id not in self.bound:
                self.out.inputs.add(node.target.id)
        self.generic_visit(node)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.out.writes.add(node.target.id)  # := binds in the enclosing scope, even in comprehensions
        self.visit(node.value)


def _magic(node: ast.Call) -> tuple[str, str, str | None] | None:
    """(name, line, cell body or None) of ``get_ipython().run_line_magic(NAME, LINE)`` or
    ``get_ipython().run_cell_magic(NAME, LINE, BODY)`` with literal arguments (how IPython rewrites
    ``%name line`` and ``%%name``), else None."""
    func = node.func
    if not (isinstance(func, ast.Attribute) and func.attr in ("run_line_magic", "run_cell_magic")
            and isinstance(func.value, ast.Call) and isinstance(func.value.func, ast.Name)
            and func.value.func.id == "get_ipython" and not func.value.args and not node.keywords):
        return None
    args = node.args
    if len(args) != (2 if func.attr == "run_line_magic" else 3) or not all(
            isinstance(a, ast.Constant) and isinstance(a.value, str) for a in args):
        return None
    values = [a.value for a in args]  # type: ignore[attr-defined]
    return values[0], values[1], values[2] if len(values) == 3 else None


def _shell_escape(node: ast.Call) -> str | None:
    """CMD of ``get_ipython().system(CMD)`` or ``get_ipython().getoutput(CMD)`` with a literal CMD (how
    IPython rewrites ``!cmd`` and ``!!cmd``/``x = !cmd``), else None."""
    func = node.func
    if not (isinstance(func, ast.Attribute) and func.attr in SHELL_CALLS
            and isinstance(func.value, ast.Call) and isinstance(func.value.func, ast.Name)
            and func.value.func.id == "get_ipython" and not func.value.args and not node.keywords):
        return None
    if len(node.args) != 1 or not (isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        return None
    return node.args[0].value


def analyze_code(code: str, tree: ast.Module | None = None) -> CodeNames:
    """Names that ``code`` (plain Python) reads and writes at module scope.

    Code that does not parse is opaque: it did not run as written, and
    whatever did run is not visible here. ``tree``: ``ast.parse(code)``, when
    the caller has it already.
    """
    if tree is None:
        try:
            tree = ast.parse(code)
        except SyntaxError as e:
            return CodeNames(opaque=f"syntax error: {e.msg}")
    v = _Visitor()
    v.visit(tree)
    out = v.out
    out.reads -= _BUILTINS - out.writes
    out.inputs &= out.reads
    out.tree = tree
    return out


def _definite_writes(stmt: ast.stmt) -> set[str]:
    """Names a top-level statement certainly binds (later statements read its value, not an input)."""
    targets: list[ast.AST] = []
    if isinstance(stmt, ast.Assign):
        targets = list(stmt.targets)
    elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
        targets = [stmt.target]
    elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name.split(".")[0]) for a in stmt.names if a.name != "*"}
    elif isinstance(stmt, ast.With):
        targets = [i.optional_vars for i in stmt.items if i.optional_vars is not None]
    out = set()
    for t in targets:
        for node in ast.walk(t):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                out.add(node.id)
    return out


def fingerprint(namespace: Mapping[str, Any], names: Collection[str]) -> dict[str, int]:
    """name -> the identity of its value (:data:`txgit.state.identity.identity`, the walk's too), the
    run-time evidence of rebinding; the numbers are compared with each other only. Built in C
    (``map``): a star import's ~950 names are fingerprinted before and after every cell."""
    if isinstance(names, (set, frozenset)) and names <= namespace.keys():
        try:
            return dict(zip(names, map(identity, map(namespace.__getitem__, names))))
        except KeyError:  # deleted meanwhile by another thread
            pass
    return {n: identity(namespace[n]) for n in list(names) if n in namespace}


def changed_bindings(before: Mapping[str, int], after: Mapping[str, int]) -> set[str]:
    """Names added, deleted or bound to another object between two fingerprints."""
    if before == after:  # (in C; most cells rebind a few names at most)
        return set()
    return {n for n, _ in before.items() ^ after.items()}


# -- reach: what session code can touch ---------------------------------------------

def _code_names(code: types.CodeType) -> set[str]:
    out = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            out |= _code_names(const)
    return out


def _session_codes(value: Any, namespace: Mapping[str, Any], depth: int = 0) -> list[types.CodeType]:
    """Code objects of session functions and methods that using ``value`` may run."""
    if isinstance(value, types.MethodType):
        value = value.__func__
    if isinstance(value, types.FunctionType):
        return [value.__code__] if value.__globals__ is namespace else []
    if isinstance(value, (staticmethod, classmethod)):
        return _session_codes(value.__func__, namespace, depth)
    if isinstance(value, property):
        return [c for f in (value.fget, value.fset, value.fdel) if f for c in _session_codes(f, namespace, depth)]
    if isinstance(value, type):
        codes: list[types.CodeType] = []
        for klass in value.__mro__:
            if klass.__module__ != namespace.get("__name__", "__main__"):
                continue
            for attr in vars(klass).values():
                codes.extend(_session_codes(attr, namespace, depth + 1))
        return codes
    if depth == 0 and isinstance(value, (list, tuple, dict)) and len(value) <= 256:
        items = value.values() if isinstance(value, dict) else value
        return [c for x in items for c in _session_codes(x, namespace, depth + 1)]
    klass = type(value)
    if depth == 0 and klass.__module__ == namespace.get("__name__", "__main__") and klass is not type:
        return _session_codes(klass, namespace, depth + 1)
    return []


def reach(names: Iterable[str], namespace: Mapping[str, Any]) -> set[str]:
    """Globals that session code held by ``names`` may read or write, transitively."""
    out: set[str] = set()
    todo = [n for n in names if n in namespace]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for code in _session_codes(namespace[name], namespace):
            for ref in _code_names(code):
                if ref in namespace and ref not in seen:
                    out.add(ref)
                    todo.append(ref)
    return out


@dataclass
class CellChanges:
    """The outcome of tracking one cell: the commit's hint and what the cell declared."""

    reads: set[str]
    writes: set[str]
    hint: set[str] | None  # None: commit everything
    opaque: str | None = None
    rebound: set[str] = field(default_factory=set)  # added, deleted or bound to another object
    unnamed: set[str] = field(default_factory=set)  # changed without being named (see txgit.sessions.detect)


class CellTracker:
    """Before/after bookkeeping for one piece of code run in ``namespace``."""

    def __init__(self, namespace: Mapping[str, Any], code: str, is_variable: Callable[[str], bool],
                 tree: ast.Module | None = None, *, variables: Callable[[], Iterable[str]] | None = None) -> None:
        """``variables``: the namespace's variable names (default: its names that ``is_variable``)."""
        self.namespace = namespace
        self.is_variable = is_variable
        self.variables = variables or (lambda: [n for n in namespace if is_variable(n)])
        self.names = analyze_code(code, tree)
        self.before = fingerprint(namespace, self.variables())
        self.after: dict[str, int] | None = None  # (taken by finish)
        # Session code the cell uses can mutate what it names; collect that before it runs,
        # since the cell may delete or rebind the function itself.
        self.reached = reach(self.names.touched, namespace) if self.names.opaque is None else set()

    def finish(self, variables: set[str] | None = None) -> CellChanges:
        """``variables``: the namespace's variable names now, if the caller has them."""
        after = self.after = fingerprint(self.namespace, self.variables() if variables is None else variables)
        n = self.names
        if n.opaque is not None:
            return CellChanges(n.reads, n.writes, None, n.opaque, changed_bindings(self.before, after))
        rebound = changed_bindings(self.before, after)
        hint = (n.touched | rebound | self.reached | reach(n.writes | rebound, self.namespace))
        hint = {x for x in hint if self.is_variable(x) and (x in after or x in self.before)}
        return CellChanges(n.reads, n.writes, hint, rebound=rebound)
