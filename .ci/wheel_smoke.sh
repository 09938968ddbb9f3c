#!/usr/bin/env bash
# Installed from a wheel, everything works: build the wheel as a user would (`pip wheel .`), install
# it with its dependencies (and the jupyter extra) in a new virtual environment that sees neither this
# source tree nor the test environment, and run every command from it (.ci/wheel_smoke.py), in a
# folder outside the source tree. The tests' editable install would hide a file the wheel lacks.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
started=$SECONDS
quiet() { "$@" 2>&1 | { grep -v '^WARNING: Location' || true; }; return "${PIPESTATUS[0]}"; }
# Built from a copy of the files git knows (tracked, or new and not ignored), as a clean checkout has
# them: no stale build/ folder or stray file of this tree gets into the wheel.
mkdir "$tmp/src"
if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$src" ls-files -z --cached --others --exclude-standard \
        | (cd "$src" && xargs -0 cp --parents -t "$tmp/src" 2>/dev/null || true)
else
    cp -r "$src/pyproject.toml" "$src/README.md" "$src/txgit" "$tmp/src/"
fi
python3 -m venv "$tmp/venv"
quiet "$tmp/venv/bin/python" -m pip wheel -q --disable-pip-version-check --no-deps -w "$tmp/dist" "$tmp/src"
wheel=$(ls "$tmp"/dist/txgit-*.whl)
quiet "$tmp/venv/bin/python" -m pip install -q --disable-pip-version-check "$wheel[jupyter]"
mkdir "$tmp/work"
cp "$src/.ci/wheel_smoke.py" "$tmp/wheel_smoke.py"
(cd "$tmp/work" && env -u PYTHONPATH PATH="$tmp/venv/bin:$PATH" "$tmp/venv/bin/python" "$tmp/wheel_smoke.py")
echo "wheel smoke test: $(basename "$wheel") built, installed and run in $((SECONDS - started)) s"
