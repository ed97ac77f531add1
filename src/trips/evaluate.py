"""`python -m src.trips evaluate`: the tagger (each mode) and the two baselines on simulated libraries, scored.

Each tagger mode is `python -m src tag LIB -o report.csv` with its own arguments, run as a user runs
it (a subprocess, the shipped model); adding a mode is one line in `MODES`. Reports are kept under
`LIB/.reports/` (hidden: the tagger never reads them back as photos).
"""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from src.runs import REPO
from src.trips.baselines import BASELINES, Answer, read_library
from src.trips.library import library_tracks, read_truth
from src.trips.score import Score, TruthPhoto, score_by_situation, truth_photo

__all__ = ["MODES", "TaggerMode", "evaluate_libraries", "read_report", "tagger_has_context"]

REPORTS = ".reports"


@dataclass(frozen=True)
class TaggerMode:
    """One way of running the tagger on a library."""

    name: str
    args: tuple[str, ...] = ()
    with_tracks: bool = False  # pass every GPX of the library with --track
    needs_context: bool = False  # only where the tagger has the library context (`--no-context` exists)


MODES = (
    TaggerMode("tagger photo by photo", ("--no-context",)),
    TaggerMode("tagger with context", with_tracks=True, needs_context=True),
)


def tagger_has_context() -> bool:
    """Whether this checkout's tagger has the library context (it then offers --no-context)."""
    done = subprocess.run([sys.executable, "-m", "src", "tag", "--help"], capture_output=True, text=True, cwd=REPO)
    return "--no-context" in done.stdout


def _mode_arguments(mode: TaggerMode, has_context: bool, library: Path) -> list[str]:
    """A tagger without context is photo by photo already: `--no-context` is then left out."""
    args = [a for a in mode.args if has_context or a != "--no-context"]
    if mode.with_tracks:
        for track in library_tracks(library):
            args += ["--track", str(track)]
    return args


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def read_report(path: Path) -> dict[str, Answer]:
    """The tagger's CSV report as answers keyed by file name (file, placed, latitude, longitude, radius_m, source)."""
    answers = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            name = Path(row["file"]).name
            answers[name] = Answer(name, row.get("placed") == "yes", _number(row.get("latitude")), _number(row.get("longitude")),
                                   _number(row.get("radius_m")), row.get("source") or "")
    return answers


def run_tagger(library: Path, mode: TaggerMode, has_context: bool) -> tuple[dict[str, Answer], float]:
    """Tag one library in one mode; (answers, seconds). A tagger that fails outright stops the evaluation."""
    library = Path(library).resolve()  # the tagger runs in the repository's root
    report = library / REPORTS / f"{mode.name.replace(' ', '_')}.csv"
    report.parent.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "src", "tag", str(library), "-o", str(report), "-q", *_mode_arguments(mode, has_context, library)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)  # this checkout's tagger, wherever we run from
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1) or not report.is_file():  # 1: some files failed, their rows say why
        raise RuntimeError(f"the tagger failed on {library} ({mode.name}, exit {done.returncode}): {done.stderr.strip()[-800:]}")
    return read_report(report), seconds


def _keyed(library: Path, answers: dict[str, Answer]) -> dict[str, Answer]:
    return {f"{library.name}/{name}": answer for name, answer in answers.items()}


def evaluate_libraries(libraries: Sequence[Path], progress=print) -> tuple[dict[str, dict[str, Score]], dict]:
    """Every method on every library: (method -> situation -> Score, details: seconds per method, libraries)."""
    has_context = tagger_has_context()
    modes = [m for m in MODES if has_context or not m.needs_context]
    truths: list[TruthPhoto] = []
    answers: dict[str, dict[str, Answer]] = {m.name: {} for m in modes} | {name: {} for name in BASELINES}
    seconds: dict[str, float] = dict.fromkeys(answers, 0.0)
    for library in map(Path, libraries):
        rows = read_truth(library)
        truths += [truth_photo({**row, "file": f"{library.name}/{row['file']}"}) for row in rows]
        for mode in modes:
            found, took = run_tagger(library, mode, has_context)
            answers[mode.name].update(_keyed(library, found))
            seconds[mode.name] += took
            progress(f"{library.name}: {mode.name}: {len(found)} rows in {took:.1f} s")
        started = time.perf_counter()
        photos = read_library(library)
        read_s = time.perf_counter() - started
        for name, rule in BASELINES.items():
            started = time.perf_counter()
            answers[name].update(_keyed(library, {a.file: a for a in rule(photos)}))
            seconds[name] += read_s + time.perf_counter() - started
    scores = {method: score_by_situation(truths, found) for method, found in answers.items()}
    details = {"seconds": seconds, "has_context": has_context, "modes": {m.name: list(m.args) + (["--track GPX..."] if m.with_tracks else [])
                                                                         for m in modes}}
    return scores, details
