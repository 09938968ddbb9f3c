"""txgit: git for the live state of Python programs.

The Python API is :class:`Workspace`; the CLI (``txgit …``) and the IPython
magics are thin shells over it.
"""

__version__ = "0.1.0"

from txgit.errors import TxgitError  # noqa: E402
from txgit.workspace import CheckoutResult, CommitResult, StateDiff, StatusReport, Workspace  # noqa: E402

__all__ = ["CheckoutResult", "CommitResult", "StateDiff", "StatusReport", "TxgitError", "Workspace", "__version__"]
