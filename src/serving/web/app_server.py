"""What `make app` runs: Voila serving app.ipynb with the project's settings (`voila.json`, which Voila
reads from the working folder: pre-heated kernels, culling, the cap of `app_kernels`) and the app's
template (`share/jupyter/voila/templates/landmark`, found through JUPYTER_PATH: nothing fetched from
outside the machine), started in as little time as it can:

- jsonschema, which jupyter_server's event logger imports, loads `rfc3987_syntax` when it is installed,
  and that module builds an IRI grammar at import: 3 of the 4 s of CPU that importing Voila took on the
  development machine. Voila never validates an IRI, so the import is refused here (jsonschema then
  leaves out that one format check, as it does when the package is absent).
- The notebook is trusted in this process (Voila warns about an untrusted one, though it has no outputs
  to trust): `jupyter trust` would be one more Python start of 2 s.

    python -m src.serving.web.app_server --port=8866 --no-browser     # make app

Other options go to Voila (`--help`).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["ROOT", "NOTEBOOK", "APP_JUPYTER_PATH", "with_app_templates", "trust", "main"]

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[3]
NOTEBOOK = ROOT / "app.ipynb"
APP_JUPYTER_PATH = ROOT / "share" / "jupyter"  # holds voila/templates/landmark
SLOW_UNUSED_IMPORTS = ("rfc3987_syntax",)


def with_app_templates(jupyter_path: str) -> str:
    """JUPYTER_PATH with the app's template folder first and the user's own folders kept after it."""
    kept = [folder for folder in jupyter_path.split(os.pathsep) if folder and folder != str(APP_JUPYTER_PATH)]
    return os.pathsep.join([str(APP_JUPYTER_PATH), *kept])


def trust(notebook: Path) -> None:
    """Sign the notebook in the user's Jupyter signature store, unless it is signed already. A store
    that cannot be written costs only Voila's warning: it is said, and the app starts anyway."""
    import nbformat
    from nbformat.sign import NotebookNotary

    try:
        content = nbformat.read(str(notebook), as_version=4)
        notary = NotebookNotary()
        if not notary.check_signature(content):
            notary.sign(content)
    except Exception as error:  # a read-only home, a locked database: not a reason to stay down
        log.warning("could not trust %s (%s: %s); Voila will say it is not trusted", notebook.name, type(error).__name__, error)


def main(argv: Optional[Sequence[str]] = None) -> int:
    for name in SLOW_UNUSED_IMPORTS:
        sys.modules.setdefault(name, None)  # `import name` now raises ImportError, which jsonschema expects
    os.chdir(ROOT)  # Voila reads voila.json from the working folder
    os.environ["JUPYTER_PATH"] = with_app_templates(os.environ.get("JUPYTER_PATH", ""))
    trust(NOTEBOOK)
    from voila.app import Voila

    Voila.launch_instance(argv=[NOTEBOOK.name, *(sys.argv[1:] if argv is None else argv)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
