"""Advice worded for where it is read: a terminal types `txgit VERB`, a notebook cell `%txgit VERB`.

Lower layers word their advice for the terminal; what a kernel shows goes through
:func:`notebook_words`, and what a terminal shows of a kernel's answer through
:func:`terminal_words`.
"""

from __future__ import annotations


def terminal_words(text: str) -> str:
    """Advice worded for a notebook (`%txgit merge --abort`), as a terminal types it."""
    return text.replace("`%txgit ", "`txgit ")


def notebook_words(text: str) -> str:
    """Advice worded for a terminal (`txgit merge --abort`), as a notebook cell types it."""
    return text.replace("`txgit ", "`%txgit ")


def worded(text: str, verb: str) -> str:
    """``text``'s advice for where ``verb`` (``txgit`` or ``%txgit``) is typed."""
    return notebook_words(text) if verb.startswith("%") else terminal_words(text)
