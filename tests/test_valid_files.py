"""Written copies validate as cleanly as their originals (`exiftool -validate`), over every real photo of
../shared/real_metadata/photos (many makes, maker notes, odd and broken metadata)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from src.serving.metadata.exif import UnsupportedFormatError, write_location

REAL_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "real_metadata" / "photos"
EXIFTOOL = shutil.which("exiftool")
pytestmark = [
    pytest.mark.skipif(EXIFTOOL is None, reason="exiftool not installed (Debian: libimage-exiftool-perl; .ci/run installs it)"),
    pytest.mark.skipif(not REAL_PHOTOS.is_dir(), reason="../shared/real_metadata/photos is not present (dev machines and CI only)"),
]
# Warnings that name the same problem before and after: a pointer in a maker note that already pointed past
# the end of the EXIF block lands in the bytes appended after it ("SubDirectory start" -> "directory"), and
# entry numbers of an IFD that gained entries.
SAME_PROBLEM = [(re.compile(r"Bad (\S+) (SubDirectory start|directory)"), r"Bad \1 pointer"),
                (re.compile(r"entry \d+"), "entry N")]


def _validation_warnings(files: list[Path]) -> dict[str, list[str]]:
    """exiftool -validate's warnings per file, every one (-a), normalised (SAME_PROBLEM); one exiftool run."""
    out = subprocess.run([EXIFTOOL, "-a", "-validate", "-warning", "-S", *map(str, files)], capture_output=True, text=True, timeout=600).stdout
    warnings: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        if line.startswith("======== "):
            current = line.removeprefix("======== ")
            warnings[current] = []
        elif line.startswith("Warning: ") and current is not None:
            text = line.removeprefix("Warning: ")
            for pattern, same in SAME_PROBLEM:
                text = pattern.sub(same, text)
            warnings[current].append(text)
    return warnings


def test_written_copies_of_real_photos_validate_as_cleanly_as_their_originals(tmp_path):
    photos = sorted(p for p in REAL_PHOTOS.rglob("*") if p.is_file() and p.suffix.lower() not in (".json", ".md", ".txt"))
    written, skipped = {}, {}
    for photo in photos:
        copy = tmp_path / photo.relative_to(REAL_PHOTOS)
        try:  # overwrite: some carry their own GPS; the copy is what is checked
            written[photo] = write_location(photo, copy, 27.175, 78.0421, "Taj Mahal, Agra", ["TajMahal"], overwrite=True,
                                            city="Agra", region="Uttar Pradesh", country="India", radius_m=1500.0)
        except UnsupportedFormatError as error:  # HEIC/AVIF: the tagger writes a sidecar for these
            skipped[photo.name] = str(error)
    print(f"{len(written)} written, {len(skipped)} skipped: " + "; ".join(f"{name}: {why.split(': ', 1)[-1]}" for name, why in skipped.items()))
    assert len(written) >= 60  # 76 photos: JPEG, WebP, PNG, TIFF and DNG are written
    assert all("cannot" in why or "not supported" in why for why in skipped.values())
    before = _validation_warnings(list(written))
    after = _validation_warnings(list(written.values()))
    worse = {}
    for photo, copy in written.items():
        new = [w for w in after[str(copy)] if w not in before[str(photo)]]
        if new:
            worse[str(photo.relative_to(REAL_PHOTOS))] = new
    assert sum(map(len, before.values())) > 100  # the parse found the originals' own warnings: a real comparison
    assert not worse, f"new exiftool -validate warnings after writing: {worse}"
