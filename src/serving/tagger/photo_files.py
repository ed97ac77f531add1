"""Which files the tagger works on: photos under the given paths, each real file once.

Rules (each one fixes a way a folder of photos used to hang, crash or mis-tag a run):

* Folders are walked recursively by file name (hidden files and folders skipped); a path named
  explicitly is always tried. Nothing is opened here, so a FIFO or device named ``x.jpg`` cannot
  block the walk; reading it later gives an ``error`` row (`src.data.images.read_photo_file`).
* Symlinks are followed to the real file, which is what gets reported and tagged, once, however
  many aliases point to it (so ``--in-place`` writes the target and the link stays a link). A
  symlink loop or a dangling link is kept as a photo with a ``problem``: one error row, never a
  crash of the whole run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from src.data.images import is_image_file

__all__ = ["Found", "find_images", "relative_destination"]


class Found(NamedTuple):
    photo: Path  # the real file (symlinks resolved) or, with a problem, the path as listed
    root: Path  # the input path it was found under (relative paths of copies are kept from here)
    listed: Path  # the path as found in the walk (an alias, when photo is a symlink's target)
    problem: str = ""  # why it cannot be read at all (symlink loop, dangling link); "" when fine


def _real(path: Path) -> tuple[Path, str]:
    try:
        return Path(os.path.realpath(path, strict=True)), ""
    except (OSError, RuntimeError) as error:  # ELOOP, ENOENT of a dangling link, no permission
        if isinstance(error, RuntimeError) or getattr(error, "errno", None) == 40:
            return Path(os.path.abspath(path)), "a symlink loop (the link points back to itself)"
        if os.path.islink(path):
            return Path(os.path.abspath(path)), f"a broken symlink ({error.strerror or error})"
        return Path(os.path.abspath(path)), f"{error.strerror or error}"


def find_images(paths: Iterable[str | Path], exclude: Path | None = None) -> list[Found]:
    """Photos under ``paths`` in walk order, each real file once (see the module doc).

    exclude: a folder whose contents are skipped (the output folder, when it lies inside an input).
    """
    found: list[Found] = []
    seen: set[Path] = set()
    excluded = Path(os.path.realpath(exclude)) if exclude is not None else None

    def add(listed: Path, root: Path) -> None:
        real, problem = _real(listed)
        if real in seen or (excluded is not None and real.is_relative_to(excluded)):
            return
        seen.add(real)
        found.append(Found(real, root, listed, problem))

    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for folder, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith(".") and is_image_file(name):
                        add(Path(folder) / name, path)
        else:
            add(path, path.parent)
    return found


def relative_destination(item: Found, roots: Sequence[Path]) -> Path:
    """Where a tagged copy goes below the output folder: the path below the common folder of all
    roots, of the real file when it lies there, else of the path it was listed under."""
    common = os.path.commonpath([os.path.realpath(r) for r in roots or [item.root]])
    if item.photo.is_relative_to(common):
        return item.photo.relative_to(common)
    listed_common = os.path.commonpath([os.path.abspath(r) for r in roots or [item.root]])
    return Path(os.path.abspath(item.listed)).relative_to(listed_common)
