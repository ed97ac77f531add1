"""`python -m src.tag` (kept for users' scripts): the batch tagger, `src.serving.tag`."""

from src.serving.tag import main

if __name__ == "__main__":
    raise SystemExit(main())
