"""Real notebooks, nobody here wrote them: txgit's cost and fidelity on what people actually run.

The corpus is a list of pointers, not copies: ``benchmarks/notebooks/corpus.json`` names, per
notebook, a public repository, a commit, the notebook's path, a label of what it exercises, the data
files from the same repository it reads (``data``: path in the run folder -> path in the
repository), and the cells dropped or patched to run offline with the packages of the local index
(``skip_cells`` / ``patches``, each with why; cells count from 0 over code cells only).

Getting the corpus: the benchmark materializes each notebook into a cache folder
(``--corpus-dir``, default ``$TXGIT_BENCH_CORPUS`` or ``~/.cache/txgit-bench/notebooks``):

- from a local git mirror of the repository when there is one: ``--mirrors DIR`` (default
  ``$TXGIT_BENCH_MIRRORS``, else ``/work/.mirror``) holding ``DIR/OWNER+NAME/repo`` (a git
  directory, e.g. ``git clone --bare https://github.com/OWNER/NAME DIR/OWNER+NAME/repo``), read
  with ``git show COMMIT:PATH``;
- else from ``https://raw.githubusercontent.com/OWNER/NAME/COMMIT/PATH`` (needs network once).

Once materialized, runs need no network. Packages: ``pip install -e '.[bench]'`` (numpy, pandas,
scikit-learn, matplotlib, scipy, seaborn; Kishu and dill for the peer).

What is measured, per notebook (cells run one by one in fresh real ipykernels, each kernel in a
fresh folder holding the notebook's data files, the next cell sent as soon as the last is idle as
"Run All" does; the folders are removed when the benchmark ends, see ``_remove_run_folder``):

- ``baseline`` and ``txgit`` (``%load_ext txgit`` first, in the fresh folder, so a new workspace)
  runs, interleaved, ``reps`` times each (default 2); per cell the fastest run counts (noise on a
  shared machine only ever adds time). Wall ratio = sum of txgit's cells + its drain (commits still
  being written after the last cell) / sum of the baseline's cells.
- noise: the first baseline run against the second, as a ratio of their totals (needs reps >= 2);
  the whole-corpus and median noise are printed beside the ratios they qualify.
- floor (unless ``--no-floor``): a third configuration, interleaved with the other two, whose only
  hook pickles the values each cell newly bound (``FLOOR_HOOK``); its ratio over the baseline is a
  lower bound on what saving each cell's state inside the kernel's process costs in that notebook.
- hooks: txgit's own time around each cell, as its session records it (``hook_seconds``).
- commits per cell, and whether every cell that changed a variable made a commit: the last
  baseline run takes a value fingerprint of every variable after each cell (outside the cell's
  timing) and names the cells after which some fingerprint changed; each must have a commit whose
  ``meta.json`` carries its execution count.
- outputs: stdout and displayed data of each cell (text/plain with memory addresses blanked,
  images by hash), txgit's first run against the first baseline run. A cell whose outputs also
  differ between the two baseline runs is nondeterministic (unseeded random data) and is counted
  apart, not as a difference txgit made.
- restore fidelity: after the last txgit run, a fingerprint of every variable is taken in that
  kernel; the kernel is shut down, a fresh kernel in the same folder loads txgit and checks out
  HEAD, and its fingerprints are compared: "variables restored exactly: N / M", with the misses.
  Fingerprints (``FINGERPRINT`` below): modules by name; functions by their code, constants and
  defaults; classes by module and qualified name; numpy arrays by dtype, shape and bytes; pandas
  objects by ``pandas.util.hash_pandas_object`` plus index, columns and dtypes; dicts, lists,
  tuples and sets element by element (sets order-free); anything else by a hash of
  ``pickle.dumps`` where plain pickle takes it, else by ``repr`` with memory addresses blanked.
  Some kinds of value are compared by what they hold rather than by their pickle, whose bytes
  depend on memory layout or on ids (a restored array's dtype is an equal dtype, not always the
  same object, and pickle shares objects by identity): numpy scalars by dtype and bytes; random
  generators by their position; scikit-learn and scipy objects by their attributes (so a
  Fortran-ordered array inside equals its C-ordered copy); matplotlib artists (figures, axes, lines, legends) and the matplotlib objects tied to a figure (colorbars,
  formatters, locators) by the pixels of their figure rendered with Agg; object arrays (a grid of
  axes) element by element; sympy expressions by ``srepr`` (their structure, what sympy's ``==``
  compares: its cache makes two equal symbols one object or two, which pickle tells apart);
  matplotlib's ``rcParams`` without ``backend`` (the kernel's display, which a checkout leaves
  alone: "inline" and "module://matplotlib_inline.backend_inline" are one); matplotlib's backend
  registry by being matplotlib's own (it holds caches of the backends the process looked up).
  Pickles leave matplotlib's callback registries out: pickling one
  advances its id counter, so two pickles of one figure differ (this once made every cell after
  `fig, ax = plt.subplots(2, 3)` look as if it changed `ax`). Misses are told apart: variables the
  checkout itself reported as not restored, and functions bound to the global random generator
  (pylab's `beta`), compared by name and by the generator's position, which a commit records as it
  was when the commit was made (docs/notebooks.md): they differ when a cell drew after the last commit
  and changed no variable (no commit of its own).
- Kishu (``--kishu N``: on N notebooks spread over the corpus, default 6; quick: 1) in one more fresh kernel each,
  as in bench_session.py (``init_kishu()``, nothing patched); its wall ratio over the same
  baseline, or why it could not run the notebook.

    python benchmarks/run.py notebooks [--quick]
    python benchmarks/bench_notebooks.py [--quick] [--reps N] [--kishu N] [--only LABEL ...]
        [--corpus FILE] [--corpus-dir DIR] [--mirrors DIR] [--no-floor] [--out FILE]
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from kernelutil import Kernel

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent))
# The kernels must import this checkout's txgit, not whichever one is installed; a PYTHONPATH given
# to the benchmark still comes first (another checkout's txgit, to measure it with this harness).
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(HERE.parent)]))

CORPUS = HERE / "notebooks" / "corpus.json"
QUICK_COUNT = 3
CELL_TIMEOUT = 300
# The same hash seed in every kernel: printed sets and dicts keyed by strings then compare equal.
KERNEL_ENV = {"PYTHONHASHSEED": "0"}


# -- the corpus ---------------------------------------------------------------------------------------

@dataclass
class Notebook:
    """One corpus entry: where the notebook is and what to drop or patch to run it offline."""

    repo: str
    commit: str
    path: str
    label: str
    data: dict[str, str] = field(default_factory=dict)  # path in the run folder -> path in the repo
    skip_cells: dict[int, str] = field(default_factory=dict)  # code cell index -> why it is dropped
    patches: list[dict] = field(default_factory=list)  # {"cell", "old", "new", "why"}

    @property
    def name(self) -> str:
        return Path(self.path).stem

    @classmethod
    def from_json(cls, d: dict) -> Notebook:
        skips = {int(k): v for k, v in (d.get("skip_cells") or {}).items()}
        return cls(d["repo"], d["commit"], d["path"], d["label"], dict(d.get("data") or {}), skips,
                   list(d.get("patches") or []))


def load_corpus(path: Path = CORPUS) -> list[Notebook]:
    """The corpus's notebooks; its top-level ``patches`` (no "cell") apply to every cell they fit."""
    doc = json.loads(Path(path).read_text())
    notebooks = [Notebook.from_json(d) for d in doc["notebooks"]]
    for nb in notebooks:
        nb.patches = [*nb.patches, *doc.get("patches", [])]
    return notebooks


def default_corpus_dir() -> Path:
    return Path(os.environ.get("TXGIT_BENCH_CORPUS") or Path.home() / ".cache" / "txgit-bench" / "notebooks")


def default_mirrors() -> Path:
    return Path(os.environ.get("TXGIT_BENCH_MIRRORS") or "/work/.mirror")


def _repo_file(repo: str, commit: str, path: str, mirrors: Path) -> bytes:
    """A file of ``repo`` at ``commit``: from a local git mirror when there is one, else from GitHub."""
    git_dir = mirrors / repo.replace("/", "+") / "repo"
    if (git_dir / ".git").is_dir():  # a clone with a work tree rather than a bare mirror
        git_dir = git_dir / ".git"
    if git_dir.is_dir():
        r = subprocess.run(["git", "--git-dir", str(git_dir), "show", f"{commit}:{path}"], capture_output=True)
        if r.returncode == 0:
            return r.stdout
    url = f"https://raw.githubusercontent.com/{repo}/{commit}/{urllib.parse.quote(path)}"  # paths may hold spaces
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def materialize(nb: Notebook, corpus_dir: Path, mirrors: Path) -> Path:
    """The notebook's cache folder (``notebook.ipynb`` and its data files), fetched once."""
    folder = corpus_dir / nb.repo.replace("/", "+") / nb.commit[:12] / nb.name
    done = folder / ".complete"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notebook.ipynb").write_bytes(_repo_file(nb.repo, nb.commit, nb.path, mirrors))
    for target, source in nb.data.items():
        (folder / "files" / target).parent.mkdir(parents=True, exist_ok=True)
        (folder / "files" / target).write_bytes(_repo_file(nb.repo, nb.commit, source, mirrors))
    done.write_text("")
    return folder


def code_cells(nb: Notebook, folder: Path) -> dict[int, str]:
    """The code cells to run, by their index among the notebook's code cells, after the corpus's skips
    and patches; empty cells dropped."""
    doc = json.loads((folder / "notebook.ipynb").read_text())
    cells = [c for c in doc["cells"] if c.get("cell_type") == "code"]
    sources = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells]
    for p in nb.patches:
        if p.get("cell") is None:  # a corpus-wide patch: wherever it fits
            sources = [src.replace(p["old"], p["new"]) for src in sources]
            continue
        if p["old"] not in sources[p["cell"]]:
            raise ValueError(f"{nb.path}: patch for cell {p['cell']} does not apply: {p['old']!r} not in it")
        sources[p["cell"]] = sources[p["cell"]].replace(p["old"], p["new"])
    return {i: s for i, s in enumerate(sources) if i not in nb.skip_cells and s.strip()}


# -- in the kernel -----------------------------------------------------------------------------------

# Defined in each kernel by a silent request (no cell, no hooks, no history); nothing else is left in
# the user's namespace. Returns {name: "kind:digest"} for every user variable.
FINGERPRINT = r'''
def _txgit_bench_fingerprints(ns):
    import hashlib, pickle, re, types, sys
    skip = {"In", "Out", "exit", "quit", "get_ipython", "open"}
    address = re.compile(r" at 0x[0-9a-fA-F]+|0x[0-9a-fA-F]{6,}")
    rendered = {}
    def h(b):
        return hashlib.blake2b(b, digest_size=16).hexdigest()
    def render(fig):
        # a figure's value is what it draws: its pixels, rendered once per call
        if id(fig) not in rendered:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            canvas = FigureCanvasAgg(fig) if not isinstance(fig.canvas, FigureCanvasAgg) else fig.canvas
            canvas.draw()
            rendered[id(fig)] = h(bytes(canvas.buffer_rgba()))
        return rendered[id(fig)]
    def stable_pickle(v):
        # matplotlib's CallbackRegistry pickles the next value of its id counter and takes it: every
        # pickle of a figure (or of anything that reaches one) differs from the last. Left out.
        import copyreg, io
        out = io.BytesIO()
        pickler = pickle.Pickler(out, protocol=5)
        cbook = sys.modules.get("matplotlib.cbook")
        if cbook is not None:
            pickler.dispatch_table = {**copyreg.dispatch_table, cbook.CallbackRegistry: lambda r: (type(r), ())}
        pickler.dump(v)
        return out.getvalue()
    def figure_of(v):
        # the figure a matplotlib object draws in: an artist's, a colorbar's (its axes'), a
        # formatter's or locator's (its axis' axes')
        for path in (("figure",), ("ax", "figure"), ("axis", "axes", "figure")):
            x = v
            for a in path:
                x = getattr(x, a, None)
                if x is None:
                    break
            if x is not None and hasattr(x, "savefig"):
                return getattr(x, "figure", None) or x  # a subfigure draws in its parent
        return None
    def code(c):
        # nested code objects (comprehensions, inner functions) by their contents: their repr names
        # the kernel's temporary file, which differs from kernel to kernel
        consts = [code(x) if isinstance(x, types.CodeType) else repr(x) for x in c.co_consts]
        return h(c.co_code + repr((consts, c.co_names, c.co_varnames)).encode())
    def fp(v, depth=0):
        if isinstance(v, types.ModuleType):
            return "module:" + v.__name__
        if isinstance(v, types.FunctionType):
            return "function:" + h((code(v.__code__) + address.sub("", repr(v.__defaults__))).encode())
        if isinstance(v, type):
            return "class:" + v.__module__ + "." + v.__qualname__
        np = sys.modules.get("numpy")
        pd = sys.modules.get("pandas")
        mpl = sys.modules.get("matplotlib.artist")
        if np is not None and isinstance(v, np.ndarray) and v.dtype != object:
            return "array:" + h(repr((str(v.dtype), v.shape)).encode() + np.ascontiguousarray(v).tobytes())
        if np is not None and isinstance(v, np.ndarray) and v.size <= 10_000 and depth < 6:  # of objects: element by element
            return "objects:" + h((repr(v.shape) + "\n".join(fp(x, depth + 1) for x in v.flat)).encode())
        if np is not None and isinstance(v, (np.random.RandomState, np.random.Generator)):
            # by the generator's position: its pickle shares dtype objects by identity, which a restored
            # array's dtype need not be
            state = v.get_state(legacy=False) if isinstance(v, np.random.RandomState) else v.bit_generator.state
            return "rng:" + fp(state, depth + 1)
        if np is not None and isinstance(v, np.generic):
            return "scalar:" + h(repr(v.dtype).encode() + v.tobytes())
        if pd is not None and isinstance(v, (pd.DataFrame, pd.Series, pd.Index)):
            try:
                values = pd.util.hash_pandas_object(v, index=not isinstance(v, pd.Index)).to_numpy().tobytes()
                cols = list(map(str, v.columns)) if isinstance(v, pd.DataFrame) else getattr(v, "name", None)
                dtypes = [str(t) for t in v.dtypes] if isinstance(v, pd.DataFrame) else str(v.dtype)
                index = None if isinstance(v, pd.Index) else list(map(str, v.index))[:1000]
                return "pandas:" + h(values + repr((type(v).__name__, cols, dtypes, index)).encode())
            except Exception:
                pass
        sympy = sys.modules.get("sympy")
        if sympy is not None and isinstance(v, sympy.Basic):
            # by structure, which is what sympy's == compares: pickle shares subexpressions by identity,
            # and sympy's cache makes equal symbols one object or two depending on what it evicted
            try:
                return "sympy:" + h(sympy.srepr(v).encode())
            except Exception:
                pass
        registry = sys.modules.get("matplotlib.backends.registry")
        if registry is not None and isinstance(v, registry.BackendRegistry):
            # matplotlib's own: what it holds are caches of the backends this process looked up
            return "backends:" + ("matplotlib's" if v is registry.backend_registry else h(stable_pickle(v)))
        mine = mpl is not None and (isinstance(v, mpl.Artist) or type(v).__module__.startswith("matplotlib."))
        figure = figure_of(v) if mine else None
        if figure is not None:
            try:
                return "drawn:" + h((type(v).__qualname__ + render(figure)).encode())
            except Exception:
                pass
        if depth < 6 and isinstance(v, (dict, list, tuple, set, frozenset)):
            if isinstance(v, dict):
                # matplotlib's rcParams without `backend`: the kernel's display ("inline" and
                # "module://matplotlib_inline.backend_inline" are one), which a checkout leaves alone
                rc = type(v).__name__ == "RcParams" and type(v).__module__.startswith("matplotlib")
                parts = [repr(k) + "=" + fp(x, depth + 1) for k, x in dict.items(v) if not (rc and k == "backend")]
            elif isinstance(v, (set, frozenset)):
                parts = sorted(fp(x, depth + 1) for x in v)
            else:
                parts = [fp(x, depth + 1) for x in v]
            return type(v).__name__ + ":" + h("\n".join(parts).encode())
        state = getattr(v, "__dict__", None)
        if depth < 6 and type(v).__module__.split(".")[0] in ("sklearn", "scipy") and isinstance(state, dict):
            return "object:" + type(v).__qualname__ + ":" + fp(dict(state), depth + 1)
        owner = getattr(v, "__self__", None) if isinstance(v, (types.BuiltinMethodType, types.MethodType)) else None
        if owner is not None and (owner is getattr(sys.modules.get("numpy.random.mtrand"), "_rand", None)
                                  or owner is getattr(sys.modules.get("random"), "_inst", None)):
            # a function of the global random generator (pylab's `beta`): the function by name and the
            # generator by its position (as generators above: the pickle's bytes share dtype objects by
            # identity); told apart in the report
            try:
                state = owner.get_state(legacy=False) if hasattr(owner, "get_state") else owner.getstate()
                return "globalrng:" + h((v.__name__ + fp(state, depth + 1)).encode())
            except Exception:
                pass
        try:
            return "pickle:" + h(stable_pickle(v))
        except Exception:
            pass
        try:
            return "repr:" + h(address.sub(" at 0x?", repr(v)).encode())
        except Exception as e:
            return "unreadable:" + type(e).__name__
    out = {}
    for k, v in list(ns.items()):
        if k.startswith("_") or k in skip:
            continue
        out[k] = fp(v)
    return out
'''

FINGERPRINTS = "_txgit_bench_fingerprints(get_ipython().user_ns)"
SESSION = "__import__('txgit.sessions.ipython').sessions.ipython.active()"


# The floor of any per-cell auto-save, as a peer in the same run: after each cell, pickle (protocol 5,
# appended to one file, no fsync, no hashing, no history) the values of the names the cell bound or
# rebound, found by identity. It misses in-place changes and keeps no history, so it does strictly
# less than txgit must (issue 17: unnamed changes saved, every version kept and verified); what it
# costs over the baseline is a lower bound on saving each cell's state inside the kernel's process.
FLOOR_HOOK = """
def _txgit_bench_floor():
    import pickle
    ip = get_ipython()
    seen = {}
    out = open('.floor-saves.pkl', 'ab')
    saves = [0]
    def post_run_cell(result):
        ns, hidden = ip.user_ns, ip.user_ns_hidden
        for name, value in list(ns.items()):
            if name.startswith('_') or name in hidden or seen.get(name) is value:
                continue
            seen[name] = value
            try:
                pickle.dump(value, out, protocol=5)
                saves[0] += 1
            except Exception:
                pass
        out.flush()
    ip.events.register('post_run_cell', post_run_cell)
    return saves
_txgit_bench_floor_saves = _txgit_bench_floor()
del _txgit_bench_floor
"""


def define_fingerprints(k) -> None:
    from kernelutil import silent_exec

    silent_exec(k, FINGERPRINT)


def fingerprints(k) -> dict[str, str]:
    from kernelutil import silent_json

    return silent_json(k, FINGERPRINTS, timeout=CELL_TIMEOUT)


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+|0x[0-9a-fA-F]{6,}")


def shown_digest(shown: list) -> list[str]:
    """What a cell showed, comparable across runs: text with memory addresses blanked, images by hash."""
    out = []
    for item in shown:
        if isinstance(item, str):
            out.append("stdout:" + _ADDRESS.sub(" at 0x?", item))
            continue
        for mime in sorted(item):
            data = item[mime]
            if mime == "text/plain":
                out.append("text:" + _ADDRESS.sub(" at 0x?", data))
            elif mime.startswith("image/"):
                out.append(mime + ":" + hashlib.blake2b(str(data).encode(), digest_size=8).hexdigest())
    return out


# -- one run -----------------------------------------------------------------------------------------

# Run folders are removed when the benchmark ends, not after each run: on a file system that checks its
# recently deleted inodes before reusing one (ext4 without a journal, as on the benchmark machine), removing a
# run's few hundred files made every file created in the next minutes cost ~10x more CPU (0.2-0.9 ms against
# 20-30 us), and txgit's runs create hundreds (git objects, blobs) where the baseline's create almost none.
# TXGIT_BENCH_REMOVE_RUNS=now removes each run's folder as it ends (as before, to compare).
_ran: list[Path] = []


def _remove_run_folder(folder: Path) -> None:
    if os.environ.get("TXGIT_BENCH_REMOVE_RUNS") == "now":
        shutil.rmtree(folder, ignore_errors=True)
        return
    if not _ran:
        atexit.register(lambda: [shutil.rmtree(f, ignore_errors=True) for f in _ran])
    _ran.append(folder)


def _fresh_folder(files: Path) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="txgit-nb-"))
    if files.is_dir():
        shutil.copytree(files, folder, dirs_exist_ok=True)
    return folder


def run_notebook(cells: list[str], files: Path, config: str, *, probe: bool = False, restore: bool = False,
                 after_cell: Callable[[Kernel, Path, int], None] | None = None) -> dict:
    """One run of ``cells`` in a fresh kernel in a fresh folder holding ``files``; ``config`` is
    "baseline", "txgit", "floor" (FLOOR_HOOK) or "kishu". "times": wall seconds per cell; "shown": what each cell showed;
    "load_ext": the seconds `%load_ext txgit` took (txgit; 0 otherwise), not in "times".
    ``probe`` (baseline): after each cell, the names whose fingerprint changed. ``restore`` (txgit):
    the restore check in a fresh kernel. ``after_cell(kernel, folder, i)``: called after the warm-up
    cell (i = -1) and after each cell, outside its timing (bench_storage.py measures the folder
    there, before it is removed). A cell that fails ends the run with "failed"."""
    from kernelutil import Kernel, kishu_commits, kishu_kernel, silent_json, txgit_drain_and_hooks

    folder = _fresh_folder(files)
    env = dict(KERNEL_ENV)
    k = kishu_kernel(folder, cells, folder / ".kishu-hooks.txt", env=env) if config == "kishu" else Kernel(folder, env=env)
    out: dict = {"times": [], "shown": [], "load_ext": 0.0}
    try:
        if config == "txgit":
            started = time.perf_counter()
            k.ok("%load_ext txgit")
            # not in the cells' times (a user loads it once, before Run All), but reported beside them:
            # whatever txgit starts there, and waits for, must show somewhere
            out["load_ext"] = time.perf_counter() - started
        elif config == "floor":
            k.ok(FLOOR_HOOK)
        if probe:
            define_fingerprints(k)
        k.ok("pass")  # warm the kernel
        if after_cell is not None:
            after_cell(k, folder, -1)
        before = fingerprints(k) if probe else {}
        changed, counts = [], []
        for i, code in enumerate(cells):
            started = time.perf_counter()
            # settle=False: the next cell is sent as soon as this one is idle ("Run All"); a commit
            # still being written overlaps the next cell and counts in its wall time
            r = k.run(code, timeout=CELL_TIMEOUT, settle=False)
            out["times"].append(time.perf_counter() - started)
            if r.status != "ok":
                out["failed"] = f"cell {i}: {r.error}"
                return out
            out["shown"].append(shown_digest(r.shown))
            counts.append(r.execution_count)
            if config == "txgit" and any(line.startswith("txgit:") for line in r.stderr.splitlines()):
                out.setdefault("txgit_said", []).append(f"cell {i}: " + r.stderr.strip().splitlines()[-1][:300])
            if after_cell is not None:
                after_cell(k, folder, i)
            if probe:
                now = fingerprints(k)
                changed.append(sorted(n for n in set(now) | set(before) if now.get(n) != before.get(n)))
                before = now
        if probe:
            out["changed"] = changed
        if config == "floor":
            out["saves"] = silent_json(k, "_txgit_bench_floor_saves[0]")
        if config == "txgit":
            out["drain"], out["hooks"] = txgit_drain_and_hooks(k, len(cells))
            out["execution_counts"] = counts
            out.update(commits_of(folder, counts))
            if restore:
                define_fingerprints(k)
                original = fingerprints(k)
                k.shutdown()
                k = None
                out["restore"] = restore_check(folder, original)
        elif config == "kishu":
            commits = kishu_commits(folder)
            if len(commits) != len(cells) + 1:  # one per cell and one for the warm-up cell
                out["failed"] = f"kishu made {len(commits)} commits for {len(cells) + 1} cells"
        return out
    finally:
        if k is not None:
            k.shutdown()
        _remove_run_folder(folder)


def commits_of(folder: Path, counts: list[int]) -> dict:
    """How many commits the run made, and the execution counts of the cells that made one."""
    from txgit import Workspace

    ws = Workspace.open(folder)
    ws.settle()
    committed = []
    for info in ws.log():
        cell = (ws.state(info.id).meta or {}).get("cell") or {}
        if cell.get("execution_count") in counts:
            committed.append(cell["execution_count"])
    return {"commits": len(ws.log()), "committed_counts": sorted(committed)}


def restore_check(folder: Path, original: dict[str, str]) -> dict:
    """Check out HEAD into a fresh kernel in ``folder`` and compare every variable's fingerprint."""
    from kernelutil import Kernel

    from txgit import Workspace

    head = Workspace.open(folder).head()
    k = Kernel(folder, env=dict(KERNEL_ENV))
    try:
        k.ok("%load_ext txgit")
        r = k.run(f"%txgit checkout {head.id}", timeout=CELL_TIMEOUT)
        define_fingerprints(k)
        restored = fingerprints(k)
    finally:
        k.shutdown()
    misses = sorted(n for n in original if restored.get(n) != original[n])
    # what the checkout itself said it could not restore ("  not restored: NAME: why"): counted apart, so
    # that a value txgit knows it lost is told from one it restored differently without knowing
    said = dict(m.groups() for m in re.finditer(r"^\s*not restored: ([^:\s]+): (.*)$", r.stdout, re.M))
    out = {"variables": len(original), "exact": len(original) - len(misses), "names": sorted(original),
           "misses": {n: f"{original[n].split(':')[0]} -> {restored.get(n, 'missing').split(':')[0]}" for n in misses},
           "not_restored": {n: said[n][:200] for n in misses if n in said},
           # the generator's position differs (a cell that drew after the last commit: no commit of its own)
           "global_rng": [n for n in misses if original[n].startswith("globalrng:") and n not in said]}
    if r.status != "ok" or "error" in r.stderr.lower():
        out["checkout_said"] = (r.error or r.stderr.strip())[-500:]
    return out


# -- the benchmark -----------------------------------------------------------------------------------

def measure(nb: Notebook, numbered: dict[int, str], files: Path, reps: int, kishu: bool, floor: bool = True) -> dict:
    """Every run of one notebook, interleaved, and what they show. Cells are reported by their index
    among the notebook's code cells (as the corpus's skip_cells count them)."""
    cells, numbers = list(numbered.values()), list(numbered)

    def renumber(text: str) -> str:  # "cell i: ..." of a run -> the notebook's numbering
        return re.sub(r"^cell (\d+)", lambda m: f"cell {numbers[int(m.group(1))]}", text)

    base_runs, tx_runs, floor_runs = [], [], []
    for rep in range(reps):
        last = rep == reps - 1
        base_runs.append(run_notebook(cells, files, "baseline", probe=last))
        tx_runs.append(run_notebook(cells, files, "txgit", restore=last))
        if floor:
            floor_runs.append(run_notebook(cells, files, "floor"))
        latest = [(base_runs[-1], "baseline"), (tx_runs[-1], "txgit")] + ([(floor_runs[-1], "floor")] if floor else [])
        for run, config in latest:
            if run.get("failed"):
                return {"label": nb.label, "cells": len(cells), "failed": f"{config}: {renumber(run['failed'])}"}

    def fastest(runs: list[dict], key: str = "times") -> list[float]:
        return [min(ts) for ts in zip(*(r[key] for r in runs))]

    base, tx, hooks = fastest(base_runs), fastest(tx_runs), fastest(tx_runs, "hooks")
    drain = min(r["drain"] for r in tx_runs)
    last_tx, probed = tx_runs[-1], base_runs[-1]
    changed_counts = [c for c, names in zip(last_tx["execution_counts"], probed["changed"]) if names]
    # cell index -> the names it changed, for cells that changed some and made no commit
    uncommitted = {numbers[i]: names for i, (c, names) in enumerate(zip(last_tx["execution_counts"], probed["changed"]))
                   if names and c not in last_tx["committed_counts"]}
    nondeterministic = ({numbers[i] for i, (a, b) in enumerate(zip(base_runs[0]["shown"], base_runs[1]["shown"])) if a != b}
                        if reps > 1 else set())
    differ = [numbers[i] for i, (a, b) in enumerate(zip(base_runs[0]["shown"], tx_runs[0]["shown"]))
              if a != b and numbers[i] not in nondeterministic]
    row = {
        "label": nb.label, "repo": nb.repo, "path": nb.path, "cells": len(cells),
        "baseline_s": round(sum(base), 3), "txgit_s": round(sum(tx) + drain, 3),
        "ratio": round((sum(tx) + drain) / sum(base), 3),
        "noise": round(sum(base_runs[1]["times"]) / sum(base_runs[0]["times"]), 3) if reps > 1 else None,
        "drain_s": round(drain, 4),
        "load_ext_s": round(min(r["load_ext"] for r in tx_runs), 4),  # not in the ratio: reported beside it
        "hook_s": [round(x, 5) for x in hooks], "cell_numbers": numbers,
        "baseline_cell_s": [round(x, 4) for x in base], "txgit_cell_s": [round(x, 4) for x in tx],
        "commits": last_tx["commits"], "cells_that_changed": len(changed_counts),
        "changed_without_commit": uncommitted,
        "outputs_differ": differ, "outputs_nondeterministic": sorted(nondeterministic),
        "restore": last_tx["restore"],
    }
    if floor_runs:
        row["floor_s"] = round(sum(fastest(floor_runs)), 3)
        row["floor_ratio"] = round(row["floor_s"] / sum(base), 3)
        row["floor_saves"] = floor_runs[-1]["saves"]
    if last_tx.get("txgit_said"):
        row["txgit_said"] = [renumber(x) for x in last_tx["txgit_said"]]
    if kishu:
        k = run_notebook(cells, files, "kishu")
        row["kishu"] = ({"failed": renumber(k["failed"])} if k.get("failed") else
                        {"s": round(sum(k["times"]), 3), "ratio": round(sum(k["times"]) / sum(base), 3)})
    return row


def spread(count: int, n: int) -> set[int]:
    """Indexes of ``n`` of ``count`` notebooks spread over the corpus (it is ordered by topic): the
    ones Kishu runs on."""
    return {round(j * count / n) for j in range(n)} if n else set()


def _pctl(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def summarize(rows: dict[str, dict]) -> dict:
    ok = {n: r for n, r in rows.items() if not r.get("failed")}
    if not ok:
        return {"notebooks": 0, "failed": len(rows)}
    hooks = [h for r in ok.values() for h in r["hook_s"]]
    worst = max(ok, key=lambda n: ok[n]["ratio"])
    noises = [r["noise"] for r in ok.values() if r["noise"] is not None]
    out = {
        "notebooks": len(ok), "failed": len(rows) - len(ok), "cells": sum(r["cells"] for r in ok.values()),
        "ratio_corpus": round(sum(r["txgit_s"] for r in ok.values()) / sum(r["baseline_s"] for r in ok.values()), 3),
        "ratio_median": round(statistics.median(r["ratio"] for r in ok.values()), 3),
        "worst": {"notebook": worst, "ratio": ok[worst]["ratio"]},
        "load_ext_ms": {"median": round(statistics.median(r["load_ext_s"] for r in ok.values()) * 1000, 1),
                        "max": round(max(r["load_ext_s"] for r in ok.values()) * 1000, 1)},
        "hook_ms": {"median": round(statistics.median(hooks) * 1000, 2), "p90": round(_pctl(hooks, 0.9) * 1000, 2),
                    "max": round(max(hooks) * 1000, 1)},
        # the tail: where the slowest hooks are (cells numbered as the corpus counts code cells)
        "slowest_hooks": sorted(({"notebook": n, "cell": r["cell_numbers"][i], "ms": round(h * 1000, 1)}
                                 for n, r in ok.items() for i, h in enumerate(r["hook_s"])),
                                key=lambda x: -x["ms"])[:10],
        "commits": sum(r["commits"] for r in ok.values()),
        "cells_that_changed": sum(r["cells_that_changed"] for r in ok.values()),
        "changed_without_commit": sum(len(r["changed_without_commit"]) for r in ok.values()),
        "outputs_differ": sum(len(r["outputs_differ"]) for r in ok.values()),
        "outputs_nondeterministic": sum(len(r["outputs_nondeterministic"]) for r in ok.values()),
        "restored_exactly": sum(r["restore"]["exact"] for r in ok.values()),
        "not_restored_said": sum(len(r["restore"].get("not_restored", {})) for r in ok.values()),
        "global_rng": sum(len(r["restore"].get("global_rng", [])) for r in ok.values()),
        "variables": sum(r["restore"]["variables"] for r in ok.values()),
    }
    floored = [r for r in ok.values() if "floor_s" in r]
    if floored:
        out["floor_corpus"] = round(sum(r["floor_s"] for r in floored) / sum(r["baseline_s"] for r in floored), 3)
        out["floor_median"] = round(statistics.median(r["floor_ratio"] for r in floored), 3)
    if noises:
        base = [r["baseline_s"] for r in ok.values() if r["noise"] is not None]
        out["noise_corpus"] = round(sum(b * x for b, x in zip(base, noises)) / sum(base), 3)
        out["noise_median"] = round(statistics.median(noises), 3)
        out["noise_worst"] = round(max(noises, key=lambda x: abs(x - 1)), 3)
    return out


def print_table(rows: dict[str, dict], summary: dict) -> None:
    print("ratio = wall time with txgit (+ drain) / without, per cell the fastest of the repeats; noise = baseline"
          " run 2 / run 1; hook = txgit's hooks per cell; restored = variables equal by fingerprint after a"
          " checkout of HEAD in a fresh kernel; floor = the same with a hook that only pickles each cell's newly bound"
          " values (FLOOR_HOOK), over the baseline")
    print(f"{'notebook':<44} {'label':<22} {'cells':>5} {'base s':>7} {'ratio':>6} {'noise':>6} {'floor':>6} {'hook med ms':>11}"
          f" {'hook max ms':>11} {'commits':>7} {'changed':>7} {'restored':>9} {'out diff':>8} {'kishu':>7}")
    for name, r in rows.items():
        if r.get("failed"):
            print(f"{name:<44} {r['label']:<22} {r['cells']:>5} failed: {r['failed'][:120]}")
            continue
        kishu = r.get("kishu")
        kishu_text = "" if kishu is None else ("failed" if kishu.get("failed") else f"{kishu['ratio']:.2f}")
        restore = f"{r['restore']['exact']}/{r['restore']['variables']}"
        print(f"{name[:44]:<44} {r['label'][:22]:<22} {r['cells']:>5} {r['baseline_s']:>7.2f} {r['ratio']:>6.2f}"
              f" {r['noise'] if r['noise'] is not None else '-':>6} {r.get('floor_ratio', '-'):>6} {statistics.median(r['hook_s']) * 1000:>11.1f}"
              f" {max(r['hook_s']) * 1000:>11.1f} {r['commits']:>7} {r['cells_that_changed']:>7} {restore:>9}"
              f" {len(r['outputs_differ']):>8} {kishu_text:>7}")
    print()
    s = summary
    if not s.get("notebooks"):
        print("no notebook ran")
        return
    noise = (f"; noise (baseline vs baseline): corpus {s['noise_corpus']:.3f}x, median {s['noise_median']:.3f}x,"
             f" furthest from 1 {s['noise_worst']:.3f}x" if "noise_corpus" in s else "")
    print(f"{s['notebooks']} notebooks ({s['failed']} failed), {s['cells']} cells: whole corpus {s['ratio_corpus']:.3f}x,"
          f" median notebook {s['ratio_median']:.3f}x, worst {s['worst']['notebook']} {s['worst']['ratio']:.2f}x{noise}")
    if "floor_corpus" in s:
        print(f"floor (a hook that only pickles what each cell newly bound, no history): whole corpus "
              f"{s['floor_corpus']:.3f}x, median notebook {s['floor_median']:.3f}x")
    print(f"hooks per cell: median {s['hook_ms']['median']} ms, p90 {s['hook_ms']['p90']} ms, max {s['hook_ms']['max']} ms")
    print(f"%load_ext txgit: median {s['load_ext_ms']['median']} ms, max {s['load_ext_ms']['max']} ms per notebook"
          " (before the cells, not in the ratios)")
    print("slowest hooks: " + ", ".join(f"{h['notebook'].split('/')[-1]} cell {h['cell']} {h['ms']:.0f} ms"
                                        for h in s["slowest_hooks"]))
    print(f"commits {s['commits']} for {s['cells']} cells; cells that changed a variable {s['cells_that_changed']},"
          f" of them without a commit: {s['changed_without_commit']}")
    print(f"outputs that differ with txgit: {s['outputs_differ']} cells (nondeterministic without txgit too:"
          f" {s['outputs_nondeterministic']})")
    print(f"variables restored exactly: {s['restored_exactly']} / {s['variables']}; of the others, reported by the"
          f" checkout as not restored: {s['not_restored_said']}; functions of the global random generator at"
          f" another position: {s['global_rng']}")
    for name, r in rows.items():
        if not r.get("failed"):
            misses = r["restore"]["misses"]
            if misses:
                shown = dict(list(misses.items())[:10])
                more = f" and {len(misses) - 10} more" if len(misses) > 10 else ""
                print(f"  {name}: not restored exactly ({len(misses)}): {shown}{more}")
                for n, why in list(r["restore"].get("not_restored", {}).items())[:5]:
                    print(f"  {name}: checkout said not restored: {n}: {why[:150]}")
            for line in r.get("txgit_said", [])[:3]:
                print(f"  {name}: txgit said: {line[:200]}")
            if r["restore"].get("checkout_said"):
                print(f"  {name}: checkout said: {r['restore']['checkout_said'][:300]}")
            if r["changed_without_commit"]:
                print(f"  {name}: cells that changed a variable and made no commit: {r['changed_without_commit']}")
            if r["outputs_differ"]:
                print(f"  {name}: cells whose outputs differ with txgit: {r['outputs_differ']}")
            if (r.get("kishu") or {}).get("failed"):
                print(f"  {name}: kishu could not run it: {r['kishu']['failed'][:200]}")


def main(quick: bool = False, *, reps: int | None = None, kishu: int | None = None, only: list[str] | None = None,
         corpus: Path = CORPUS, corpus_dir: Path | None = None, mirrors: Path | None = None, floor: bool = True) -> dict:
    reps = reps or (1 if quick else 2)
    notebooks = load_corpus(corpus)
    if only:
        notebooks = [nb for nb in notebooks if any(o in nb.label or o in nb.path for o in only)]
    if quick:
        notebooks = notebooks[:QUICK_COUNT]
    kishu = (1 if quick else 6) if kishu is None else kishu
    try:
        import kishu as _  # noqa: F401
    except ImportError:
        kishu = 0
    corpus_dir, mirrors = corpus_dir or default_corpus_dir(), mirrors or default_mirrors()
    with_kishu = spread(len(notebooks), kishu)
    rows: dict[str, dict] = {}
    for i, nb in enumerate(notebooks):
        name = f"{nb.repo.split('/')[-1]}/{nb.name}"
        folder = materialize(nb, corpus_dir, mirrors)
        cells = code_cells(nb, folder)
        started = time.perf_counter()
        rows[name] = measure(nb, cells, folder / "files", reps, kishu=i in with_kishu, floor=floor)
        print(f"[{i + 1}/{len(notebooks)}] {name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    summary = summarize(rows)
    print_table(rows, summary)
    return {"reps": reps, "corpus": str(corpus), "summary": summary, "notebooks": rows}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"the first {QUICK_COUNT} notebooks, 1 rep")
    parser.add_argument("--reps", type=int, help="runs of each configuration (default 2; quick 1)")
    parser.add_argument("--kishu", type=int, help="run Kishu on N notebooks spread over the corpus (default 6; quick 1)")
    parser.add_argument("--only", nargs="*", help="notebooks whose label or path contains one of these")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--corpus-dir", type=Path)
    parser.add_argument("--mirrors", type=Path)
    parser.add_argument("--no-floor", action="store_true", help="skip the floor peer (FLOOR_HOOK) runs")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "notebooks.json", help="where the JSON goes")
    args = parser.parse_args()
    started = time.time()
    result = main(args.quick, reps=args.reps, kishu=args.kishu, only=args.only, corpus=args.corpus,
                  corpus_dir=args.corpus_dir, mirrors=args.mirrors, floor=not args.no_floor)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "bench_notebooks", "quick": args.quick,
                                    "seconds": round(time.time() - started, 2), **result}, indent=2, default=str))
    print(f"-> {args.out}")
