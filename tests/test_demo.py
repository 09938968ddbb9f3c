"""The README's demonstration runs as a user runs it, and shows what it says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"


@pytest.mark.timeout(600)
def test_the_readme_demo_runs(tmp_path):
    proc = subprocess.run([sys.executable, str(DEMO)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Demo complete: Bob has exactly Alice's state, and Alice has Bob's change merged with hers." in out
    # Alice's pull merged Bob's change into her live kernel, which loaded only that
    assert "Merged origin/main into main" in out and "loaded reviewed\n" in out
    assert "Out | Bob: churn labels checked against the CRM export | threshold 0.35" in out
    assert "WARNING" not in out and "Traceback" not in out
