"""`python -m src`: one command line over every stage."""

import subprocess
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
