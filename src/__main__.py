"""`python -m src`: the project's command line (`src.cli`)."""

from src.cli import main

raise SystemExit(main())
