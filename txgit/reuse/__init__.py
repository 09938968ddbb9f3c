"""Reuse layer: the experiment graph over history, and reuse of recorded results (sessions <- reuse)."""

from txgit.reuse.graph import OperationIndex, RecordedOperation
from txgit.reuse.replay import Reused, Reuser, ReuseStats

__all__ = ["OperationIndex", "RecordedOperation", "Reused", "Reuser", "ReuseStats"]
