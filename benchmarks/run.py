"""Run every benchmark: `python benchmarks/run.py [--quick] [NAME ...]`.

Each `benchmarks/bench_*.py` exposes `main(quick: bool) -> dict`; it prints its
own table and returns its results, which land in benchmarks/results/<name>.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's txgit


def load(path: Path) -> ModuleType:
    """The benchmark module at ``path``, registered in sys.modules as dataclasses (and pickle) need."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all), e.g. core remote")
    args = parser.parse_args()
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    files = sorted(HERE.glob("bench_*.py"))
    chosen = [f for f in files if not args.names or f.stem.removeprefix("bench_") in args.names]
    if not chosen:
        print(f"no benchmark matches {args.names}; have: {[f.stem.removeprefix('bench_') for f in files]}")
        return 2
    for f in chosen:
        module = load(f)
        started = time.time()
        result = module.main(quick=args.quick)
        result = {"benchmark": f.stem, "quick": args.quick, "seconds": round(time.time() - started, 2), **result}
        path = out_dir / f"{f.stem.removeprefix('bench_')}.json"
        path.write_text(json.dumps(result, indent=2, default=str))
        print(f"-> {path.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
