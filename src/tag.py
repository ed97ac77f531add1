"""`python -m src.tag` (kept for users' scripts): the batch tagger, `src.serving.tagger.tag`."""

from src.serving.tagger.tag import main

if __name__ == "__main__":
    raise SystemExit(main())
