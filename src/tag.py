"""`python -m src.tag` (kept for users' scripts): the batch tagger, `src.serving.tagger.cli`."""

from src.serving.tagger.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
