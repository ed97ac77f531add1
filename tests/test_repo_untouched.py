"""The README's commands never change what ships: run on a copy of the repository's tracked files (the
working tree as it is), with defaults only, `git status --porcelain` stays empty and what they write by
default lands under $LANDMARK_HOME (`src.home`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints" / "transfer_exported.pt"
GIT = shutil.which("git")

pytestmark = [
    pytest.mark.slow,  # a copy of the repository (~70 MB) and seven commands, each a fresh process: a minute or two
    pytest.mark.skipif(GIT is None or not (ROOT / ".git").exists(), reason="needs git and a git checkout to list the tracked files"),
    pytest.mark.skipif(not SHIPPED.exists(), reason="checkpoints/transfer_exported.pt is not in this checkout"),
]


def _git(folder: Path, *args: str) -> str:
    return subprocess.run([GIT, "-C", str(folder), *args], capture_output=True, text=True, check=True).stdout


def _copy_of_the_repository(target: Path) -> Path:
    """Every tracked file as it is in the working tree, committed in a fresh repository of its own."""
    tracked = _git(ROOT, "ls-files", "-z").split("\0")
    for name in filter(None, tracked):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    _git(target, "init", "-q")
    _git(target, "add", "-A")
    _git(target, "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-q", "-m", "copy")
    return target


def _photos(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for k in range(count):
        path = folder / f"photo_{k}.jpg"
        Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_readme_commands_change_no_tracked_file(tmp_path, tiny_data, tiny_model):
    repo = _copy_of_the_repository(tmp_path / "repo")
    home = tmp_path / "home"
    env = {key: value for key, value in os.environ.items() if key not in ("LANDMARK_MODEL", "LANDMARK_RUNTIME")}
    env.update(LANDMARK_HOME=str(home), LANDMARK_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(repo))
    photos = _photos(tmp_path / "photos", 3)
    # Training photos named as two of the shipped model's classes: enough for `gallery references`.
    references_data = tmp_path / "data"
    for name in ("22.Taj_Mahal", "06.Charminar"):
        _photos(references_data / "train" / name, 2)
    commands = [
        ["--help"],
        ["map"],
        ["tag", *map(str, photos), "-o", str(tmp_path / "report.csv"), "--write-gps", "--out-dir", str(tmp_path / "tagged")],
        ["gallery", "list"],
        ["gallery", "references", "--data", str(references_data), "--per-class", "2"],
        ["bench", "--quick", "--no-training", "--data", str(tiny_data), "--models", str(tiny_model)],
    ]
    for command in commands:
        done = subprocess.run([sys.executable, "-m", "src", *command], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"python -m src {' '.join(command)}:\n{done.stderr[-3000:]}"
        assert _git(repo, "status", "--porcelain") == "", f"python -m src {' '.join(command)} changed the repository"
    assert (home / "known_landmarks.png").stat().st_size > 10_000
    assert (home / "references" / "transfer_exported.references.npz").exists()
    assert (home / "bench" / "quick" / "bench.md").exists() and list((home / "bench" / "quick" / "runs").glob("*.json"))
