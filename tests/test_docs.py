"""The docs' examples run: every ```python block in docs/*.md, in a fresh folder.

A block is skipped only if it is marked ``<!-- not-run: reason -->`` on the line
before it (for examples that need a cloud account).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"(<!-- not-run:[^>]*-->\s*)?```python\n(.*?)```", re.S)


def _blocks() -> list:
    params = []
    for page in sorted(DOCS.glob("*.md")):
        for i, m in enumerate(BLOCK.finditer(page.read_text())):
            if m.group(1):
                continue
            params.append(pytest.param(m.group(2), id=f"{page.stem}-{i}"))
    return params


@pytest.mark.parametrize("code", _blocks())
def test_doc_example_runs(code, tmp_path):
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"


def test_docs_have_examples():
    assert len(_blocks()) >= 5
