"""Each cell as an operation of the experiment graph.

A cell run under a session is recorded with what decides its result: its
code (normalized, so whitespace and comments do not count), the *origin* of
every variable it may read, the content of every file it read, and the state
of the global random generators when it consumed them. What it would take
to get the same result another time is then a key:

* ``key``: code + input origins, known before the cell runs (lookup);
* ``full``: ``key`` + file digests + random state, known after it ran.

A variable's *origin* says where its value came from, so equal keys mean
equal results without comparing values:

* ``op:<hash>``: made by an operation (``full`` key + name). Re-running the
  same notebook in a fresh kernel gives every value the same origin again,
  even where pickling the value would not give the same bytes (functions
  carry the kernel's cell file names, for instance);
* ``m:<module>@<version>``: an imported module;
* ``c:<hash>``: a value of unknown making (loaded by a checkout, there
  before tracking started, made by code with effects): its content;
* ``?``: unknown; an operation reading it is never reused.

Effects txgit cannot capture or replay make an operation unreusable and
are recorded with it: files written, network connections, subprocesses,
randomness without a seed (global generators whose state the cell changed
are an input instead: the result is reproducible from the same state), wall
clock and uuid readings in the cell's code.
"""

from __future__ import annotations

import ast
import base64
import functools
import glob
import json
import os
import stat
import sys
import sysconfig
import threading
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3

from txgit.sessions import process, readers
from txgit.sessions.filewatch import FolderWatch
from txgit.sessions.codeform import canonical_code
from txgit.sessions.tracking import CodeNames
from txgit.state import libstate
from txgit.state import MODULE, VALUE, VarRecord
from txgit.storage import hash_file

UNKNOWN = "?"
STDOUT_LIMIT = 64 * 1024  # bytes of printed output kept for replay

# Calls in a cell's own code whose result differs between runs, by how they are called.
_UNSEEDED_IF_NO_ARGS = frozenset({"default_rng", "SeedSequence", "RandomState", "Random", "PCG64", "MT19937",
                                  "Philox", "SFC64", "Generator"})
_NONDETERMINISTIC = frozenset({"urandom", "uuid1", "uuid4", "SystemRandom", "token_bytes", "token_hex",
                               "token_urlsafe", "randbits", "getrandbits"})
_CLOCK = {("time", "time"), ("time", "time_ns")}  # and any .now() / .today() / .utcnow()


def _hash(*parts: str) -> str:
    h = blake3.blake3()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def code_hash(code: str, tree: ast.Module | None) -> str:
    """The code's identity: its canonical syntax (:mod:`txgit.sessions.codeform`), so layout, comments
    and the Python version do not count."""
    if tree is None:
        return _hash("text", code.strip())
    return blake3.blake3(("ast\0" + canonical_code(tree)).encode()).hexdigest()[:32]


def static_effects(calls: Iterable[tuple[str | None, str, bool]]) -> list[str]:
    """Calls (owner, name, has arguments) whose results differ from run to run (an unseeded generator, the clock)."""
    out: set[str] = set()
    for owner, name, has_args in calls:
        if name in _UNSEEDED_IF_NO_ARGS and not has_args:
            out.add(f"unseeded randomness: {name}()")
        elif name in _NONDETERMINISTIC:
            out.add(f"non-reproducible value: {name}()")
        elif name in ("input", "getpass", "raw_input") and owner in (None, "getpass", "builtins"):
            out.add(f"asks the user: {name}()")
        elif (owner, name) in _CLOCK or (name in ("now", "utcnow", "today") and owner is not None):
            out.add(f"reads the clock: {name}()")
    return sorted(out)


def pre_key(code: str, inputs: Mapping[str, str | None]) -> str:
    """The lookup key: what is known before a cell runs."""
    return _hash("op", code, *(f"{n}={inputs[n]}" for n in sorted(inputs)))


def full_key(key: str, files: Mapping[str, str], rng: Mapping[str, str], env: Mapping[str, str] | None = None) -> str:
    env = env or {}  # (absent from records made before it was watched: the same key as then)
    return _hash("full", key, *(f"{p}={files[p]}" for p in sorted(files)), *(f"{g}~{rng[g]}" for g in sorted(rng)),
                 *(f"{e}:{env[e]}" for e in sorted(env)))


def module_version(module: Any) -> str:
    """What a module computes depends on: the digest of its source when it is the user's own code
    (a module or package outside the installation: ``utils.py`` edited, its functions compute
    otherwise), else its ``__version__``."""
    file = getattr(module, "__file__", None)
    if isinstance(file, str) and file.endswith(".py"):
        real = _own_source(file)
        if real is not None:
            if os.path.basename(real) == "__init__.py":  # a package: all its modules
                folder = os.path.dirname(real)
                files = sorted(os.path.join(d, f) for d, subs, names in os.walk(folder)
                               for f in names if f.endswith(".py") and "__pycache__" not in d)
                parts = [f"{os.path.relpath(f, folder)}={file_digest(f)}" for f in files]
                return "src:" + _hash(*parts)[:16]
            return "src:" + file_digest(real)[:16]
    version = getattr(module, "__version__", None)
    return version if isinstance(version, str) else ""


@functools.lru_cache(maxsize=1 << 12)
def _own_source(file: str) -> str | None:
    """The real path of a module's file if it is the user's own code (outside the installation), else
    None. Remembered: a commit asks for every class and function it records (428 times after
    `from pylab import *`), and where a module's file lies does not change while a session runs."""
    real = os.path.realpath(file)
    return None if real.startswith(_IGNORED) else real


def module_origin(module: Any) -> str:
    """A module's origin: its name and version (a value it makes is only as stable as these)."""
    return f"m:{getattr(module, '__name__', '?')}@{module_version(module)}"


def refreshed_module_origin(origin: str) -> str:
    """A module origin as of now: the user's own module may have been edited and reloaded
    (``%autoreload``, ``importlib.reload``) since the origin was taken."""
    if not origin.startswith("m:") or "@src:" not in origin:
        return origin
    module = sys.modules.get(origin[2:origin.index("@")])
    return module_origin(module) if module is not None else origin


def _package_of(value: Any) -> str:
    """``package@version`` of a class or function imported from a module ("" otherwise):
    ``from sklearn.ensemble import RandomForestClassifier`` is code-only, but what the class computes
    changes with the version installed (a collaborator's, or after ``pip install -U``), and
    ``from utils import clean`` with the source of ``utils.py``."""
    if not isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
        return ""
    name = getattr(value, "__module__", None) or ""
    if name in ("", "__main__", "builtins"):
        return ""
    own = module_version(sys.modules.get(name))
    if own.startswith("src:"):
        return f"{name}@{own}"
    top = name.partition(".")[0]
    version = getattr(sys.modules.get(top), "__version__", None)
    return f"{top}@{version}" if isinstance(version, str) else ""


def output_origin(full: str, name: str, value: Any) -> str:
    """The origin of ``name`` as made by the operation ``full``."""
    if isinstance(value, types.ModuleType):
        return module_origin(value)
    package = _package_of(value)
    return "op:" + (_hash(full, name, package) if package else _hash(full, name))


def content_origin(record: VarRecord | None, value: Any = None) -> str:
    """The origin of a value whose making is unknown: its content, when the record names it."""
    if isinstance(value, types.ModuleType):
        return module_origin(value)
    if record is None:
        return UNKNOWN
    if record.kind == VALUE and record.group:
        package = _package_of(value)  # (pickled by reference: the same content in every version)
        return "c:" + (_hash(record.group, package) if package else record.group[:32])
    if record.kind == MODULE and record.module:
        module = sys.modules.get(record.module)
        return module_origin(module) if module is not None else f"m:{record.module}@"
    return UNKNOWN


# -- what a cell does while it runs --------------------------------------------------------

_python_rng_known: tuple[Any, str] | None = None  # (Python's generator's state, its digest) last read


def rng_states() -> dict[str, str]:
    """Digests of the global random generators' states: Python's, and numpy's and torch's when imported."""
    import random

    global _python_rng_known
    out = {}
    state = libstate.python_random_state(random)  # (the same tuple while it does not move)
    if _python_rng_known is None or _python_rng_known[0] is not state:
        _python_rng_known = (state, str(hash(state)))  # ints and tuples hash the same in every process
    out["random"] = _python_rng_known[1]
    # numpy.random is imported lazily (numpy 2): before it is, the global generator does not
    # exist, so nothing drew from it (it is made, freshly seeded, on first use, which
    # rng_dependence treats like a first import); probing it would import it (~8 ms)
    mtrand = sys.modules.get("numpy.random.mtrand")
    if mtrand is not None:
        try:
            out["numpy"] = _numpy_rng_digest(mtrand._rand)
        except Exception:  # an unusual numpy: its state is then not watched
            pass
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            out["torch"] = blake3.blake3(torch.random.get_rng_state().numpy().tobytes()).hexdigest()[:32]
        except Exception:
            pass
    return out


# (numpy's state as libstate.numpy_random_state last gave it, its digest)
_numpy_rng_known: tuple[Any, str] | None = None


def _numpy_rng_digest(rand: Any) -> str:
    """The digest of numpy's legacy global generator's state (its words, position and cached normal).

    ``get_state()`` copies the 624 words into a new array (~60 us, twice per cell); libstate reads
    them and the cached normal in place, and hands out the same copy while none moved, whose digest
    is then the one made last."""
    global _numpy_rng_known
    st = libstate.numpy_random_state(rand)
    known = _numpy_rng_known
    if known is not None and known[0] is st:
        return known[1]
    h = blake3.blake3(st["state"]["key"].tobytes())
    # as the legacy tuple's (pos, has_gauss, cached_gaussian) print, so digests match earlier records
    h.update(repr((st["state"]["pos"], st["has_gauss"], st["gauss"])).encode())
    digest = h.hexdigest()[:32]
    _numpy_rng_known = (st, digest)
    return digest


def rng_snapshot(gens: Iterable[str]) -> dict[str, str]:
    """The full states of the named global generators, as JSON text :func:`rng_setters` puts back.

    Reusing a cell that drew from a generator must leave it where running the
    cell would have, or the next draw differs from a full run's.
    """
    out = {}
    for gen in gens:
        if gen == "random":
            import random

            version, internal, gauss = random.getstate()
            out[gen] = json.dumps([version, list(internal), gauss])
        elif gen == "numpy" and "numpy" in sys.modules:
            name, keys, pos, has_gauss, cached = sys.modules["numpy"].random.get_state(legacy=True)
            out[gen] = json.dumps([name, base64.b64encode(keys.astype("<u4").tobytes()).decode(), int(pos),
                                   int(has_gauss), float(cached)])
        elif gen == "torch" and "torch" in sys.modules:
            state = sys.modules["torch"].random.get_rng_state().numpy().tobytes()
            out[gen] = json.dumps(base64.b64encode(state).decode())
    return out


def rng_setters(states: Mapping[str, str]) -> list[Callable[[], None]]:
    """Functions that put the generators in the states of :func:`rng_snapshot`; ValueError when a
    recorded state cannot be read (a record from another version, or a damaged one)."""
    setters: list[Callable[[], None]] = []
    try:
        for gen, text in states.items():
            data = json.loads(text)
            if gen == "random":
                import random

                version, internal, gauss = data
                state = (int(version), tuple(int(x) for x in internal), None if gauss is None else float(gauss))
                setters.append(lambda st=state: random.setstate(st))
            elif gen == "numpy":
                np = sys.modules.get("numpy") or __import__("numpy")
                name, keys, pos, has_gauss, cached = data
                arr = np.frombuffer(base64.b64decode(keys), dtype="<u4").astype(np.uint32)
                state = (str(name), arr, int(pos), int(has_gauss), float(cached))
                setters.append(lambda st=state: np.random.set_state(st))
            elif gen == "torch":
                torch = sys.modules.get("torch") or __import__("torch")
                blob = torch.frombuffer(bytearray(base64.b64decode(data)), dtype=torch.uint8)
                setters.append(lambda st=blob: torch.random.set_rng_state(st))
            else:
                raise ValueError(f"unknown generator {gen!r}")
    except (ValueError, TypeError, ImportError) as e:
        raise ValueError(f"unreadable random generator state: {e}") from None
    return setters


_SEEDS = frozenset({"seed", "manual_seed"})
_RANDOM_USE = frozenset({"random", "rand", "randn", "randint", "random_sample", "choice", "shuffle", "permutation",
                         "normal", "uniform", "sample", "seed", "manual_seed", "randperm", "binomial", "poisson",
                         "multinomial", "bernoulli", "exponential", "gamma", "beta", "standard_normal"})


def drew_from(names: set[str], *, new: bool, python_random: bool) -> bool:
    """Whether a cell whose code names ``names`` drew from (or seeded) a global generator whose state
    changed while it ran. ``new``: the generator did not exist before the cell (its module was first
    imported by it); ``python_random``: it is Python's ``random``."""
    if new and not names & _RANDOM_USE:
        return False  # only imported: its fresh random state was not drawn from here
    # Python's generator: libraries draw from it when imported (rich's style ids), not to compute
    # results; code that uses it names it. numpy's and torch's global generators are drawn from by
    # library code (an estimator without random_state), so they always count.
    return not python_random or "random" in names or bool(names & _RANDOM_USE)


def rng_dependence(names: set[str], before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, str]:
    """How a cell's result depends on the global generators, as recorded in its key.

    A generator whose state the cell changed was drawn from (or seeded). When the
    cell seeds it (``np.random.seed(0)``), the result depends on the seed, which is
    in the code: the state after is recorded (``seeded:``), the same on every run
    (a cell that draws before it seeds is taken as seeded: a known blind spot).
    Otherwise the result depends on the state before (``before:``): the same run
    in a fresh kernel starts from a random state and is not reused. A generator
    first imported by the cell starts from a random state too.
    """
    seeded = bool(names & _SEEDS)
    out = {}
    for gen, state in after.items():
        old = before.get(gen)
        if old == state or not drew_from(names, new=old is None, python_random=gen == "random"):
            continue
        out[gen] = f"seeded:{state}" if seeded else f"before:{old or 'fresh:' + state}"
    return out


def _ignored_prefixes() -> tuple[str, ...]:
    """Files a cell's libraries read and write on their own (installed code, caches, devices)."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, "/proc", "/sys", "/dev", "/etc", "/usr/share"}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        try:
            paths.add(sysconfig.get_path(key))
        except KeyError:
            pass
    home = Path.home()
    for sub in (".cache", ".config", ".local", ".ipython", ".jupyter", ".matplotlib", ".keras", ".nv"):
        paths.add(str(home / sub))
    for env in ("JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "MPLCONFIGDIR", "XDG_CACHE_HOME"):
        if os.environ.get(env):
            paths.add(os.environ[env])
    out = set()
    for p in paths:
        if p:
            out.add(os.path.realpath(p).rstrip("/") + "/")
    return tuple(sorted(out))


_IGNORED = _ignored_prefixes()
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_current: _Watch | None = None
_hook_installed = False


# Programs that only report the machine's cores, as loky (joblib) runs them to count physical cores the
# first time a kernel fits a scikit-learn estimator that uses OpenMP (HistGradientBoosting, KMeans, ...).
# Exact command lines only: anything else a cell runs is an effect.
_CPU_COUNT_COMMANDS = frozenset({("lscpu", "--parse=core"), ("sysctl", "-n", "hw.physicalcpu"),
                                 ("sysctl", "-n", "kern.smp.cores")})


def _reads_cpu_count(argv: Any) -> bool:
    try:
        if isinstance(argv, (str, bytes)) or argv is None:
            return False
        parts = [os.fsdecode(a) for a in argv]
        return bool(parts) and (os.path.basename(parts[0]), *parts[1:]) in _CPU_COUNT_COMMANDS
    except (TypeError, ValueError):
        return False


def _watching() -> _Watch | None:
    """The watch of the cell running now, when called from its thread (other threads are not the cell's)."""
    w = _current
    return w if w is not None and threading.get_ident() == w.thread else None


# The events :func:`_audit` acts on. It is called for every event of the process, for good: the others
# (``builtins.id``, raised per object ``copy.deepcopy`` copies, as matplotlib's drawing does) return
# after this look-up, without asking which watch runs.
_WATCHED_EVENTS = frozenset({"open", "socket.connect", "os.chdir", "sqlite3.connect", "subprocess.Popen",
                             "os.system", "os.exec", "os.posix_spawn", "os.spawn"})


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event not in _WATCHED_EVENTS:
        return
    w = _watching()
    if w is None:
        return
    try:
        if event == "open":
            w.opened(*args[:3])
        elif event == "socket.connect":
            w.effects.add("opens network connections")
        elif event == "os.chdir":  # the cells after it open files relative to the new folder
            w.effects.add("changes the working directory")
        elif event == "sqlite3.connect":  # the database file is read (and maybe written) in C
            w.effects.add("connects to a database")
        elif event in ("subprocess.Popen", "os.posix_spawn") and _reads_cpu_count(args[1]):
            pass  # libraries counting cores (loky, under scikit-learn's OpenMP estimators): no effect on results
        elif event in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn"):
            w.effects.add("runs other programs")
    except Exception:  # an audit hook must never break the code it watches
        pass


class _Tee:
    """Passes writes to the real stdout and keeps a bounded copy for replay; all else is the real one's."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.kept: list[str] = []
        self.size = 0

    def write(self, text: str) -> int:
        if self.size < STDOUT_LIMIT:
            self.kept.append(text[: STDOUT_LIMIT - self.size])
            self.size += len(self.kept[-1])
        return self.target.write(text)

    def flush(self) -> None:
        self.target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


@dataclass
class _Watch:
    root: str
    skip: tuple[str, ...]
    thread: int = field(default_factory=threading.get_ident)
    read: set[str] = field(default_factory=set)
    written: set[str] = field(default_factory=set)
    effects: set[str] = field(default_factory=set)
    env: dict[str, str] = field(default_factory=dict)  # environment variables read: "$NAME" -> digest
    argv_read: bool = False
    # folder as opened -> (its (st_dev, st_ino) now, its realpath), for this cell's opens
    folders: dict[str, tuple[tuple[int, int], str]] = field(default_factory=dict)

    def opened(self, path: Any, mode: Any, flags: Any) -> None:
        if isinstance(path, int):
            return  # an already open descriptor: its open was seen (or is not the cell's)
        p = os.fsdecode(path)
        if p.endswith(".pyc"):  # an import reading its bytecode: first, as `import numpy` opens hundreds
            return
        full = self._realpath(p if os.path.isabs(p) else os.path.join(os.getcwd(), p))
        if full.startswith(self.skip) or os.path.isdir(full):
            return
        if ".dist-info/" in full or ".egg-info/" in full:  # an installed package's metadata, wherever it is
            return
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & _WRITE_FLAGS)
        (self.written if writes else self.read).add(full)

    def seen_in_folder(self, read: set[str], written: set[str], lost: bool) -> None:
        """What the workspace's folder watch (:mod:`txgit.sessions.filewatch`) saw, native code included."""
        for path in read:
            self.opened(path, "r", 0)
        for path in written:
            if os.path.isdir(path):  # a folder made or removed (a partitioned data set written)
                if not path.startswith(self.skip):
                    self.written.add(path)
            else:
                self.opened(path, "w", 0)
        if lost:
            self.effects.add("touched more files than txgit could follow")

    def _local(self, source: str) -> str | None:
        """The real path a native reader or writer was given (None: one txgit does not watch)."""
        full = os.path.realpath(os.path.expanduser(source.removeprefix("file://")))
        return None if full.startswith(self.skip) else full

    def read_source(self, source: str) -> None:
        """A native reader (:mod:`txgit.sessions.readers`) is about to read ``source``: a file, a folder
        of files (its listing counts too: a new part changes the data set), or a URI."""
        if _is_remote(source):
            self.effects.add(f"reads {source}, which txgit cannot hash")
            return
        full = self._local(source)
        if full is None:
            return
        if os.path.isdir(full):
            files = [os.path.join(folder, name) for folder, _, names in os.walk(full) for name in names]
        elif glob.has_magic(full) and not os.path.exists(full):
            files = [p for p in glob.glob(full, recursive=True) if os.path.isfile(p)]
        else:
            self.opened(full, "r", 0)
            return
        self.read.add(full)  # a folder or pattern: which files it names counts too
        for path in files:
            self.opened(path, "r", 0)

    def write_target(self, target: str) -> None:
        """A native writer (:mod:`txgit.sessions.readers`) is about to write ``target`` (a file, a folder)."""
        if _is_remote(target):
            self.effects.add(f"writes {target}")
            return
        full = self._local(target)
        if full is not None:
            self.written.add(full)

    def _realpath(self, path: str) -> str:
        """``os.path.realpath(path)``, remembering each folder's real path while it stays the same
        folder (same device and inode): an import opens hundreds of files in a few folders, and
        realpath walks every component of every path (~50 us each)."""
        folder, base = os.path.split(path)
        if base in ("", ".", ".."):
            return os.path.realpath(path)
        try:
            st = os.stat(folder)  # follows links: the folder the path names now
        except OSError:
            return os.path.realpath(path)
        got = self.folders.get(folder)
        if got is None or got[0] != (st.st_dev, st.st_ino):
            got = self.folders[folder] = ((st.st_dev, st.st_ino), os.path.realpath(folder))
        full = os.path.join(got[1], base)
        try:
            if stat.S_ISLNK(os.lstat(full).st_mode):
                return os.path.realpath(full)
        except OSError:  # not there (yet): realpath keeps the name as it is too
            pass
        return full


def _is_remote(source: str) -> bool:
    return "://" in source and not source.startswith("file://")


def _native_io(source: str, writes: bool) -> None:
    w = _watching()
    if w is None:
        return
    try:
        if writes:
            w.write_target(source)
        else:
            w.read_source(source)
    except Exception:  # never in the way of the reader
        w.effects.add(f"{'writes' if writes else 'reads'} {source}, which txgit cannot follow")




_digests: dict[tuple[str, int, int, int], str] = {}


ABSENT = process.ABSENT  # the digest of a file that is not there: a cell may depend on a file's absence


def file_digest(path: str) -> str:
    """blake3 of a file's content, remembered while its size and mtime stay; for a folder, of the
    names of the files under it; for a glob pattern, of the files it matches; ``ABSENT`` when there
    is nothing at ``path``."""
    try:
        st = os.stat(path)
    except OSError:
        if glob.has_magic(path):  # a pattern a reader was given: the files it matches
            parts = path.split(os.sep)
            base = os.sep.join(parts[:next(i for i, part in enumerate(parts) if glob.has_magic(part))])
            return _listing_digest("glob:", base, (p for p in glob.glob(path, recursive=True) if os.path.isfile(p)))
        return ABSENT
    if stat.S_ISDIR(st.st_mode):  # a data set's folder: the names of the files in it
        return _listing_digest("dir:", path, (os.path.join(d, f) for d, _, files in os.walk(path) for f in files))
    key = (path, st.st_size, st.st_mtime_ns, st.st_ino)
    got = _digests.get(key)
    if got is None:
        try:
            got = _digests[key] = hash_file(path, 8 << 20)[:32]
        except OSError:
            return "unreadable"
    return got


def _listing_digest(kind: str, base: str, paths: Iterable[str]) -> str:
    """Which files a folder or pattern names, as paths relative to ``base`` (so a clone elsewhere
    matches): ``kind`` then a digest, 32 characters in all."""
    listing = sorted(os.path.relpath(p, base) for p in paths)
    return kind + blake3.blake3("\0".join(listing).encode()).hexdigest()[:32 - len(kind)]


def display_path(root: str, full: str) -> str:
    """A path as an operation records it: relative to the workspace when inside it (so a clone matches)."""
    rel = os.path.relpath(full, root)
    return full if rel.startswith("..") else rel.replace(os.sep, "/")


def resolve_path(root: str, recorded: str) -> str:
    return recorded if os.path.isabs(recorded) else os.path.join(root, recorded)


MAX_DISPLAY_CHARS = 2_000_000  # what one cell may show and still be replayed: it is kept in the history


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def kept_displays(displays: Iterable[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
    """What a cell displayed, as its operation keeps it; with why it cannot be replayed, if it cannot
    (a reused cell that did not show what running it shows would not be the same cell).

    A display the cell updated in place (``display(..., display_id=True)`` then ``.update()``, as
    progress reports do) is kept as it was last shown. Widgets (``tqdm.notebook``'s bar, sliders) are
    live controls whose model lives in the kernel that made them: they are not kept.
    """
    kept: list[dict[str, Any]] = []
    shown: dict[str, dict[str, Any]] = {}  # display id -> its kept item
    for d in displays:
        data, display_id = d.get("data"), d.get("display_id")
        if isinstance(data, dict) and WIDGET_VIEW in data:
            continue
        if d.get("update"):
            if display_id not in shown:  # shown by an earlier cell: replaying would show it here
                return [], "updates a display another cell showed"
            shown[display_id].update(data=data, metadata=d.get("metadata") or {})
            continue
        item = {"data": data, "metadata": d.get("metadata") or {}}
        if isinstance(d.get("at"), int):  # after how much printed text it was shown
            item["at"] = d["at"]
        if isinstance(display_id, str):
            shown[display_id] = item
        kept.append(item)
    try:
        size = len(json.dumps(kept))
    except (TypeError, ValueError):
        return [], "displays data txgit cannot keep"
    if size > MAX_DISPLAY_CHARS:
        return [], f"displays more than txgit keeps ({MAX_DISPLAY_CHARS // 1_000_000} MB)"
    return kept, None


@dataclass
class Operation:
    """One recorded cell run (``op`` in ``code/cells.json``)."""

    key: str
    code: str
    inputs: dict[str, str | None]
    files: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # "$NAME", "sys.argv", "settings:<lib>" -> process.digest
    rng: dict[str, str] = field(default_factory=dict)  # generator -> state it depends on (rng_dependence)
    rng_after: dict[str, str] = field(default_factory=dict)  # generator -> its state after (rng_snapshot)
    full: str = ""
    outputs: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    effects: list[str] = field(default_factory=list)
    seconds: float = 0.0  # what running it cost (kept when the result was reused, not recomputed)
    stdout: str = ""
    result: dict[str, str] | None = None  # the cell's value as display data (mime type -> text)
    # what it passed to display(), in order; "at": after how many characters of ``stdout``
    displays: list[dict[str, Any]] = field(default_factory=list)

    @property
    def reusable(self) -> bool:
        return not self.effects and bool(self.full)

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        return {k: v for k, v in d.items() if v not in (None, "", [], {}) or k in ("key", "inputs")}

    @classmethod
    def from_json(cls, d: Any) -> Operation | None:
        """Parse a recorded operation; None when it is not one (it may come from any repository)."""
        if not isinstance(d, dict) or not isinstance(d.get("key"), str) or not isinstance(d.get("inputs"), dict):
            return None
        try:
            op = cls(key=d["key"], code=str(d.get("code", "")),
                     inputs={str(k): (None if v is None else str(v)) for k, v in d["inputs"].items()},
                     files={str(k): str(v) for k, v in (d.get("files") or {}).items()},
                     env={str(k): str(v) for k, v in (d.get("env") or {}).items()},
                     rng={str(k): str(v) for k, v in (d.get("rng") or {}).items()},
                     rng_after={str(k): str(v) for k, v in (d.get("rng_after") or {}).items()},
                     full=str(d.get("full", "")),
                     outputs=[str(x) for x in d.get("outputs", [])], removed=[str(x) for x in d.get("removed", [])],
                     effects=[str(x) for x in d.get("effects", [])], seconds=float(d.get("seconds", 0.0)),
                     stdout=str(d.get("stdout", "")),
                     result={str(k): str(v) for k, v in d["result"].items()} if isinstance(d.get("result"), dict)
                     else None,
                     displays=[{"data": x["data"], "metadata": x.get("metadata") or {},
                                **({"at": x["at"]} if isinstance(x.get("at"), int) else {})}
                               for x in d.get("displays", []) if isinstance(x.get("data"), dict)])
        except (TypeError, ValueError, AttributeError):
            return None
        return op


class OperationWatch:
    """Watches one cell run: started just before it, stopped just after."""

    def __init__(self, root: str | os.PathLike[str], private: Iterable[str] = ()) -> None:
        self.root = os.path.realpath(root)
        # txgit's own files in the workspace are not the cell's business
        self.skip = _IGNORED + tuple(os.path.realpath(p).rstrip("/") + "/" for p in private)
        self.op: Operation | None = None
        self._watch: _Watch | None = None
        self._tee: _Tee | None = None
        self._rng: dict[str, str] = {}
        self._settings: dict[str, str] = {}
        self._path: list[str] = []
        self._names: set[str] = set()
        self._folder = FolderWatch(self.root, self.skip)  # what native code does to the workspace's files

    def start(self, code: str, names: CodeNames, reached: Iterable[str], origins: Mapping[str, str],
              present: Iterable[str]) -> Operation:
        """``names``: what the code's syntax says (:func:`txgit.sessions.tracking.analyze_code`);
        ``reached``: globals that session functions it calls may read; ``present``: the variables now."""
        global _current, _hook_installed
        live = set(present)
        inputs = {n: (refreshed_module_origin(origins.get(n, UNKNOWN)) if n in live else None)
                  for n in sorted(names.inputs | set(reached))}
        chash = code_hash(code, names.tree)
        self.op = Operation(key=pre_key(chash, inputs), code=chash, inputs=inputs, effects=static_effects(names.calls))
        self._names = names.reads | names.writes | names.attributes
        # A module's state (and what `from m import x` names: it lives in m) is not versioned:
        # loading the cell's results would not change it.
        modules = sorted(n for n in names.stored_into if n in names.imported or origins.get(n, "").startswith("m:"))
        if modules:
            self.op.effects.append(f"changes the state of module {', '.join(modules)}")
        if any(v == UNKNOWN for v in inputs.values()):
            self.op.effects.append("reads a value of unknown origin: " +
                                   ", ".join(n for n, v in inputs.items() if v == UNKNOWN))
        self._rng = rng_states()
        self._settings = process.settings_digests()
        self._path = list(sys.path)
        if not _hook_installed:
            sys.addaudithook(_audit)
            readers.install(_native_io)
            _hook_installed = True
        process.install(_watching)  # (every time: a script runner sets its own sys.argv)
        self._folder.start()
        self._watch = _Watch(self.root, self.skip)
        _current = self._watch
        self._tee = _Tee(sys.stdout)
        sys.stdout = self._tee
        return self.op

    def stop(self, seconds: float, result: dict[str, str] | None = None,
             displays: Iterable[Mapping[str, Any]] | None = None) -> Operation | None:
        """End the watch; the operation as far as it is known before its commit (outputs come later).
        ``result`` and ``displays``: see :meth:`txgit.sessions.session.NamespaceSession.after_cell`."""
        global _current
        watch, tee, op = self._watch, self._tee, self.op
        self._watch = self._tee = self.op = None
        if watch is None or op is None or tee is None:
            return None
        if _current is watch:
            _current = None
        if sys.stdout is tee:
            sys.stdout = tee.target
        watch.seen_in_folder(*self._folder.stop())
        op.rng = rng_dependence(self._names, self._rng, rng_states())
        op.rng_after = rng_snapshot(op.rng)
        effects = set(op.effects) | watch.effects
        for path in sorted(watch.written):
            effects.add(f"writes {display_path(self.root, path)}")
        for path in sorted(watch.read - watch.written):  # tried: a file not there counts as absent
            op.files[display_path(self.root, path)] = file_digest(path)
        # Settings it changed would not be changed by reusing it (the cells after it would compute
        # otherwise); nor would sys.path (their imports would fail).
        effects |= {f"changes {k.removeprefix('settings:')}'s settings" for k, v in process.settings_digests().items()
                    if self._settings.get(k, v) != v}
        if sys.path != self._path:
            effects.add("changes sys.path")
        op.effects = sorted(effects)
        if watch.argv_read:
            watch.env["sys.argv"] = process.digest("sys.argv")
        watch.env.update(self._settings)  # the settings it started with
        op.env = dict(sorted(watch.env.items()))
        op.full = full_key(op.key, op.files, op.rng, op.env)
        op.seconds = round(seconds, 6)
        op.stdout = "".join(tee.kept)
        op.result = result
        op.displays, why_not = kept_displays(displays or ())
        if why_not:
            op.effects = sorted({*op.effects, why_not})
        return op

    def printed(self) -> int:
        """How much the running cell has printed so far (characters kept for replay)."""
        return self._tee.size if self._tee is not None else 0

    def abandon(self) -> None:
        """Stop watching without a record (the cell failed, or did not run)."""
        self.stop(0.0)
