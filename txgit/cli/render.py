"""The text helpers now live in :mod:`txgit.visual.text`, shared with the notebook and web views."""

from txgit.visual.text import (  # noqa: F401
    DATE_FORMAT,
    added_diff,
    change_summary,
    decorations,
    format_date,
    human_size,
    record_kind,
    truncated_repr,
)
