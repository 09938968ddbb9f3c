"""Sessions: where states come from and go to (IPython kernels, scripts, library calls).

Stands on :class:`txgit.Workspace`; knows nothing of the CLI.
"""

from txgit.sessions.session import CellOutcome, CellRecord, NamespaceSession, RollbackResult
from txgit.sessions.tracking import CellChanges, CodeNames, analyze_code, reach

__all__ = ["CellChanges", "CellOutcome", "CellRecord", "CodeNames", "NamespaceSession", "RollbackResult",
           "analyze_code", "reach"]
