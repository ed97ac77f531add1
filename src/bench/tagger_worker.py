"""One tagging run in a fresh process, for the library context's cost (`src.bench.context_cost`):

    python -m src.bench.tagger_worker MODEL FOLDER [--context] [--workers N] [--runtime R] [--precision P]

loads MODEL (no taught landmarks), tags every photo under FOLDER with `tag_paths` (``context=ContextConfig()``
with --context, else ``context=None``; nothing written) and prints one JSON line: the seconds `tag_paths`
took, the photo count, this process's RSS high-water mark before and after tagging, and the rows' statuses
and sources. A fresh process per run: each peak is its own, not the bench's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter

from src.bench.memory_worker import peak_mb


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m src.bench.tagger_worker")
    parser.add_argument("model")
    parser.add_argument("folder")
    parser.add_argument("--context", action="store_true")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--runtime", default=None)
    parser.add_argument("--precision", default=None)
    args = parser.parse_args(argv)
    from src.serving.locate.library import ContextConfig
    from src.serving.recognizer.recognize import Recognizer
    from src.serving.tagger.tag import DEFAULT_WORKERS, tag_paths

    recognizer = Recognizer(args.model, use_gallery=False, runtime=args.runtime, precision=args.precision)
    before = peak_mb()
    start = time.perf_counter()
    rows = tag_paths([args.folder], recognizer, workers=args.workers or DEFAULT_WORKERS, progress=False,
                     context=ContextConfig() if args.context else None)
    seconds = time.perf_counter() - start
    print(json.dumps({
        "seconds": seconds, "photos": len(rows), "peak_before_mb": before, "peak_mb": peak_mb(),
        "statuses": dict(Counter(row.status for row in rows)), "sources": dict(Counter(row.source or "none" for row in rows)),
    }))


if __name__ == "__main__":
    main(sys.argv[1:])
