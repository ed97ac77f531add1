"""Where a user's own files go: $LANDMARK_HOME, default ~/.local/share/landmark_tagger (a leaf module).

Taught landmarks, and what `map`, `gallery references` and `bench` write when no path is given, live
there, never in the repository: a user's run must not change the files that ship. The Makefile targets
that are meant to update the repository pass their paths explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path


def landmark_home() -> Path:
    """$LANDMARK_HOME, else ~/.local/share/landmark_tagger (read at each call: tests and services may set it)."""
    return Path(os.environ.get("LANDMARK_HOME") or Path.home() / ".local" / "share" / "landmark_tagger")


def user_output(*parts: str) -> Path:
    """A default output path under $LANDMARK_HOME, e.g. user_output("bench", "bench.md")."""
    return landmark_home().joinpath(*parts)
