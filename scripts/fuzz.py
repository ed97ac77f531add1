"""Long fuzz run of the trust boundaries: the property-based tests of tests/test_fuzz.py with many
more examples and no deadline (the normal suite runs each with 20 examples).

    python -m scripts.fuzz                       # 2000 examples per property (95 s of CPU: 1.6 min on a free core)
    python -m scripts.fuzz --examples 20000 -k archive   # one boundary, longer

Covers the gallery archive and store readers, the upload parser and form/header checks, and the
EXIF/XMP writers (written, read back by exiv2, and by exiftool where installed). A failure prints
the smallest input hypothesis found; nothing is stored (no .hypothesis folder) and every file an
example writes lives in a temporary folder that is removed. Exit status: pytest's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.fuzz", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=2000, help="examples per property (default %(default)s)")
    parser.add_argument("-k", dest="select", default=None, help="only the properties whose name matches (pytest -k)")
    args = parser.parse_args(argv)
    if args.examples < 1:
        parser.error("--examples must be at least 1")
    env = {**os.environ, "LANDMARK_FUZZ_EXAMPLES": str(args.examples), "LANDMARK_FUZZ_NO_DEADLINE": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=0", "tests/test_fuzz.py"]
    if args.select:
        command += ["-k", args.select]
    return subprocess.run(command, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main())
