"""`python -m src`: one command line over every stage."""

import os
import subprocess
import time
import sys
from pathlib import Path

import pytest

from src.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_every_subcommand():
    result = subprocess.run([sys.executable, "-m", "src", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for command in ("train", "crossval", "evaluate", "tag", "serve", "bench", "gallery", "map"):
        assert command in COMMANDS and f"    {command}" in result.stdout


@pytest.mark.parametrize("command", ["train", "crossval", "evaluate", "tag", "serve", "map"])
def test_each_subcommand_has_its_own_help(command, capsys):
    try:
        code = main([command, "--help"])  # the tagger returns its exit status; argparse raises it elsewhere
    except SystemExit as done:
        code = done.code
    assert code == 0
    assert f"python -m src {command}" in capsys.readouterr().out


def test_an_unknown_command_or_recipe_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as done:
        main(["fly"])
    assert done.value.code == 2 and "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--recipe", "slowest"])


HELP_SECONDS = 3.0  # measured 0.1-0.2 s (train, crossval, evaluate, bench, export-openvino) to ~0.7 s (serve, map) on a quiet 2-core CPU


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_help_answers_fast_without_torch(command):
    """`python -m src CMD --help` prints its options at once: it must not pay torch's seconds of imports.
    Each command's --help runs in a fresh interpreter, which then reports whether torch was loaded."""
    probe = ("import sys, runpy; sys.argv = ['src', %r, '--help']\n"
             "try:\n    runpy.run_module('src', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "print('TORCH', 'torch' in sys.modules)" % command)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    assert f"python -m src {command}" in result.stdout
    assert "TORCH False" in result.stdout, f"{command} --help imported torch"
    print(f"{command} --help: {seconds:.2f} s")
    if os.getloadavg()[0] < (os.cpu_count() or 1):  # on an oversubscribed machine a wall-clock bound says nothing
        assert seconds < HELP_SECONDS, f"{command} --help took {seconds:.1f} s"


def test_recipe_options_show_the_named_recipe_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--recipe", "default", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--finetune-epochs FINETUNE_EPOCHS passes over the cached activations; the best epoch on validation is kept (default: 4)" in text
    assert "--finetune-batch-size FINETUNE_BATCH_SIZE activation maps per optimiser step (default: 64)" in text
    assert "placement.json" in text  # --min-confidence says it is only the fallback of the placement rule
