"""Replace a file atomically, and clean up what a killed writer left behind.

Every file the tagger writes (a tagged photo, an XMP sidecar, a report) goes to a temp file named
``.NAME.XXXXXXXX.tmp`` in the destination folder and is moved over ``NAME`` with ``os.replace``: a
crash leaves either the old file or the new one, never half of one. A ``kill -9`` between the two
steps leaves the temp file itself behind; `remove_stale_temp_files` deletes those on the next run.

While a temp file is written its writer holds an exclusive ``flock`` on it, so a cleanup running
at the same time (a second tagger on the same folder) skips files that are still being written and
deletes only those whose writer is gone (the kernel drops the lock when a process dies).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, a cleanup cannot tell live writers apart
    fcntl = None  # type: ignore[assignment]

__all__ = ["TEMP_PATTERN", "file_lock", "fsync_folder", "remove_stale_temp_files", "write_atomically"]

# tempfile.mkstemp(prefix=".NAME.", suffix=".tmp") draws 8 characters from this alphabet.
TEMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")


def write_atomically(destination: Path, data: bytes, mode_source: Path | None = None) -> Path:
    """Write ``data`` to ``destination`` via a locked, fsynced temp file and ``os.replace``, then fsync the folder.

    mode_source: copy this file's permission bits (a tagged copy keeps the photo's mode; mkstemp
    would leave 0600). On any failure the destination is unchanged and the temp file removed.
    """
    destination = Path(destination)
    fd, temp_name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # a fresh file: never contended
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())  # contents on disk before the rename makes them visible
            if mode_source is not None:
                os.chmod(temp_name, mode_source.stat().st_mode & 0o7777)
            os.replace(temp_name, destination)  # still locked: a cleanup never sees it unlocked
    except BaseException:
        try:
            os.unlink(temp_name)
        except FileNotFoundError:
            pass
        raise
    fsync_folder(destination.parent)  # the rename itself on disk: a power cut cannot bring the old file back
    return destination


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (and /proc-like ones) refuse fsync on a folder: the rename still happened
    finally:
        os.close(fd)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the regular file ``path`` meanwhile: two writers of the same photo
    (two taggers on one folder) take turns instead of both writing from what they read before.

    The lock is on the file as it is now; a writer that replaces it (``os.replace``) releases the
    old file, and the next one then reads the new file by its path, so it sees the first one's tags.
    Anything that is not a readable regular file is not locked: its writer reports why it failed.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        yield
        return
    try:
        if fcntl is not None and stat.S_ISREG(os.fstat(fd).st_mode):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete ``.NAME.XXXXXXXX.tmp`` files in ``folder`` whose writer is gone; returns what was removed.

    Only names this module creates are considered, and only regular files; anything unreadable
    or still locked by a live writer is left alone. Never raises for a file it cannot handle.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not TEMP_PATTERN.match(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if _is_abandoned(Path(entry.path)):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _is_abandoned(path: Path) -> bool:
    if fcntl is None:
        return True
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # its writer is alive and still writing
    finally:
        os.close(fd)
    return True
