"""Run records: every training, cross-validation, evaluation or benchmark run writes one JSON file,
`results/runs/<recipe>-<short hash>.json`, holding everything needed to read its numbers later: the
full recipe, the data it ran on, the machine, the command and the metrics (a leaf module: every stage
may import it).

The short hash names the settings (recipe, data, machine class), so re-running the same settings on
the same kind of machine replaces its record instead of piling up copies. `docs/experiments.md`
builds its tables from these files (`python -m src.evaluation.experiments`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

from src.machine import machine_info

RUNS_DIR = Path("results") / "runs"
KINDS = ("train", "crossval", "evaluate", "bench", "gallery")
REPO = Path(__file__).resolve().parents[1]


def portable_path(path: str | Path) -> str:
    """`path` as any clone can read it: relative inside the repository (`checkpoints/...`), `../NAME/...`
    beside it (`../shared/indian_monuments`), `$TMPDIR/...` in the temporary folder, `~/...` at home;
    a relative path is left as it is. Records and exported models travel: one machine's paths mean
    nothing on another."""
    text = str(path)
    if not os.path.isabs(text):
        return text
    resolved = Path(os.path.normpath(text))
    for base, shown in ((REPO, None), (REPO.parent, ".."), (Path(tempfile.gettempdir()), "$TMPDIR"), (Path.home(), "~")):
        if len(base.parts) < 2:  # a clone at /repo: its parent, "/", holds every path
            continue
        try:
            inside = resolved.relative_to(base)
        except ValueError:
            continue
        return str(inside) if shown is None else f"{shown}/{inside}" if str(inside) != "." else shown
    return text


def _absolute_paths() -> re.Pattern[str]:
    """Absolute paths under the roots `portable_path` rewrites (other text, e.g. `/v1/predict`, is left alone)."""
    roots = sorted({str(REPO.parent), tempfile.gettempdir(), str(Path.home())} - {"/"}, key=len, reverse=True)
    return re.compile("(?:" + "|".join(map(re.escape, roots)) + r")(?:/[^\s'\"]*)?")


def portable(value: Any) -> Any:
    """A run record or exported model's metadata (JSON-like) with every absolute path in its strings
    made portable (`portable_path`), keys and other values unchanged."""
    if isinstance(value, dict):
        return {key: portable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(portable(item) for item in value)
    if isinstance(value, (str, Path)):
        return _absolute_paths().sub(lambda match: portable_path(match.group(0)), str(value))
    return value


def command_line(argv: Optional[list[str]] = None) -> str:
    """The command as a user types it: `python -m src train ...` rather than the `__main__.py` path
    Python puts in sys.argv[0] under `-m`, with its paths portable."""
    argv = list(sys.argv if argv is None else argv)
    program = Path(argv[0]) if argv else Path("python")
    if program.name == "__main__.py" and program.is_absolute():
        try:
            argv[:1] = ["-m", ".".join(program.parent.resolve().relative_to(REPO).parts)]
        except ValueError:
            pass
    return portable(shlex.join([Path(sys.executable).name, *argv]))


def run_id(recipe_name: str, recipe: dict[str, Any], data: dict[str, Any], machine: dict[str, Any]) -> str:
    """`<recipe>-<8 hex>`: the same settings on the same CPU model and precision give the same id."""
    identity = {"recipe": recipe, "data": data, "cpu": machine.get("cpu_model"), "bf16": machine.get("cpu_bf16_native")}
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{recipe_name}-{digest}"


def write_json_atomically(path: Path, payload: Any) -> Path:
    """Write JSON next to `path` and rename it into place: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_run(
    kind: str,
    recipe_name: str,
    recipe: dict[str, Any],
    data: dict[str, Any],
    metrics: dict[str, Any],
    folder: Optional[Path] = None,
    command: Optional[str] = None,
) -> Path:
    """Write one run record and return its path (`results/runs/<recipe>-<hash>.json` by default)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    machine = machine_info()
    recipe, data = portable(recipe), portable(data)  # the id and the file name the same on every machine
    record = {
        "kind": kind,
        "recipe_name": recipe_name,
        "recipe": recipe,
        "data": data,
        "machine": machine,
        "command": portable(command) if command is not None else command_line(),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "metrics": portable(metrics),
    }
    name = run_id(recipe_name if kind == "train" else f"{kind}-{recipe_name}", recipe, data, machine)
    return write_json_atomically(Path(folder or RUNS_DIR) / f"{name}.json", record)


def load_runs(folder: Optional[Path] = None, kind: Optional[str] = None) -> list[dict[str, Any]]:
    """Every run record in `folder` (optionally of one kind), oldest first, each with its `path`."""
    records = []
    for path in sorted(Path(folder or RUNS_DIR).glob("*.json")):
        record = json.loads(path.read_text())
        if kind is None or record.get("kind") == kind:
            records.append({**record, "path": str(path)})
    return sorted(records, key=lambda record: record.get("date", ""))
