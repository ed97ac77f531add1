"""Help and docs that tell the truth (issue 29): every `--help` of `python -m src`, and every command
the README, docs/ and the Makefile show, name only recipes, commands, options, make targets, modules and
files that exist. Commands are read from code blocks and `inline code`; placeholders (ROOT, DIR,
PHOTOS...) are left alone, and paths under ../shared/ are data that only the development machines have.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import re
import shlex
import tempfile
from functools import lru_cache
from pathlib import Path

import pytest

from src.cli import COMMANDS
from src.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OPTION = re.compile(r"^--?[A-Za-z][\w-]*$")
# repository paths a document may name as files (in commands and in `inline code`)
REPO_PATH = re.compile(r"^(?:checkpoints|results|docs|src|scripts|static_images|tests)/[\w./*-]+$")


def _recipes() -> dict:
    from src.training.recipes import RECIPES

    return RECIPES


@lru_cache(maxsize=None)
def help_text(*argv: str) -> str:
    """What `python -m src ARGV... --help` prints (run in this process: seconds, not a process each)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        try:
            cli_main([*argv, "--help"])
        except SystemExit as done:
            assert done.code in (0, None), f"python -m src {' '.join(argv)} --help exited with {done.code}"
    return out.getvalue()


@lru_cache(maxsize=None)
def module_help(module: str) -> str:
    """`python -m MODULE --help` for a module with a `main(argv)`; else its source (options are named there)."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, f"no module {module}"
    main = getattr(importlib.import_module(module), "main", None) if module.startswith("src.") else None
    if main is None:
        return Path(spec.origin).read_text()
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        try:
            main(["--help"])
        except SystemExit:
            pass
    return out.getvalue() or Path(spec.origin).read_text()


def all_helps() -> dict[str, str]:
    """Every help text of the command line: each command, each gallery subcommand, each recipe's train/crossval."""
    from src.training.recipes import TRANSFER_RECIPES

    helps = {"": help_text()}
    for command in COMMANDS:
        helps[command] = help_text(command)
    for sub in ("add", "list", "remove", "export", "import", "references"):
        helps[f"gallery {sub}"] = help_text("gallery", sub)
    for recipe in _recipes():
        helps[f"train --recipe {recipe}"] = help_text("train", "--recipe", recipe)
    for recipe in TRANSFER_RECIPES:
        helps[f"crossval --recipe {recipe}"] = help_text("crossval", "--recipe", recipe)
    return helps


def test_every_help_names_real_recipes_its_own_command_and_no_machine_path():
    recipes = set(_recipes())
    machine_roots = {str(ROOT.parent), tempfile.gettempdir(), str(Path.home())} - {"/"}
    for name, text in all_helps().items():
        assert text.strip(), name
        for listed in re.findall(r"recipe \(([\w ,]+)\)", text.replace("\n", " ")):
            assert set(re.split(r",\s*", listed)) <= recipes, (name, listed)
        command = name.split(" --")[0]
        if command:
            assert text.startswith(f"usage: python -m src {command}"), (name, text[:80])  # not `python -m src.bench`
        for root in machine_roots:  # a default shown as one machine's absolute path
            assert not re.search(rf"(^|[\s(\"']){re.escape(root)}/", text, re.M), (name, root)
        for line in text.splitlines():
            assert not line.strip().startswith("None:"), (name, line)


def test_makefile_lists_only_real_recipes():
    text = (ROOT / "Makefile").read_text()
    for listed in re.findall(r"recipe \(([\w ,]+)\)", text):
        assert set(re.split(r",\s*", listed)) <= set(_recipes()), listed


# ---------------------------------------------------------------------------------------------------
# commands in the README and docs/


def _code(text: str) -> list[str]:
    """Lines of fenced code blocks (continuations joined) and the `inline code` spans of the prose."""
    pieces, fence = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
            continue
        if fence:
            if pieces and pieces[-1].endswith("\\"):
                pieces[-1] = pieces[-1][:-1] + " " + line.strip()
            else:
                pieces.append(line.strip())
        else:
            pieces += re.findall(r"`([^`]+)`", line)
    return [piece.split(" #")[0].strip() for piece in pieces]


def _tokens(command: str) -> list[str]:
    """Words of a documented command; a table's `a\\|b` alternatives and `[optional]` brackets opened up."""
    text = command.replace("\\|", " | ").replace("[", " ").replace("]", " ")
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    return [word.rstrip(",;.)") for word in words if word not in ("|", "...") and not re.fullmatch(r"<\w+>", word)]


def _makefile_code() -> list[str]:
    """The Makefile's own examples: `inline code` in its comments and indented comment lines."""
    comments = [line[1:] for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("#")]
    return [code for line in comments for code in re.findall(r"`([^`]+)`", line)] + [line.strip() for line in comments if line.startswith("   ")]


def documented_commands() -> list[tuple[str, str]]:
    """(document, command) for every `python -m ...`, `python scripts/...` and `make ...` shown."""
    found = []
    sources = [(document.name, _code(document.read_text())) for document in DOCUMENTS] + [("Makefile", _makefile_code())]
    for name, pieces in sources:
        for piece in pieces:
            for part in re.split(r"\s*(?:&&|;|\|\s)\s*", piece):
                if re.search(r"(^|\s|/)(python3?|torchrun)\b.*(-m\s+\w|scripts/)|^(\w+=\S+\s+)*make(\s|$)", part):
                    found.append((name, part))
    return found


COMMANDS_SHOWN = documented_commands()


def _python_part(words: list[str]) -> tuple[str, list[str]]:
    """(module or script, its arguments) from `python -m MODULE ARGS` / `python scripts/x.py ARGS`."""
    if "-m" in words:
        at = words.index("-m")
        return words[at + 1], words[at + 2 :]
    script = next(word for word in words if word.startswith("scripts/"))
    return script, words[words.index(script) + 1 :]


def _check_options(where: str, options: list[str], text: str) -> None:
    for option in options:
        name = option.split("=")[0]
        assert re.search(rf"(^|[\s\[,(\"']){re.escape(name)}([\s,=\]/)\"']|$)", text, re.M), f"{where}: {name} is not an option"


def _check_paths(where: str, words: list[str]) -> None:
    for word in words:
        value = word.split("=", 1)[-1]
        if REPO_PATH.match(value):
            assert list(ROOT.glob(value)), f"{where}: {value} does not exist"


@pytest.mark.parametrize("document, command", COMMANDS_SHOWN, ids=[f"{d}:{c[:60]}" for d, c in COMMANDS_SHOWN])
def test_documented_command_names_what_exists(document: str, command: str):
    words = _tokens(command)
    where = f"{document}: {command}"
    _check_paths(where, words)
    if "make" in words and not any(word.startswith(("python", "torchrun")) or word.endswith("/python") for word in words):
        makefile = (ROOT / "Makefile").read_text()
        target = words[words.index("make") + 1 :]
        targets = [w for w in target if "=" not in w]
        for name in targets[:1]:
            assert re.search(rf"^{re.escape(name)}:", makefile, re.M), f"{where}: no make target {name}"
        for variable in (w.split("=")[0] for w in target if "=" in w):
            assert f"$({variable})" in makefile, f"{where}: the Makefile reads no {variable}"
        return
    module, arguments = _python_part(words)
    options = [word for word in arguments if OPTION.match(word.split("=")[0])]
    if module.startswith("scripts/"):
        assert (ROOT / module).is_file(), f"{where}: no {module}"
        _check_options(where, options, (ROOT / module).read_text())
        return
    if module != "src":
        _check_options(where, options, module_help(module))
        return
    if not arguments or arguments[0] in ("-h", "--help"):
        return  # the overview
    for alternative in arguments[0].split("|"):  # prose: `python -m src tag|gallery|serve`
        assert alternative in COMMANDS, f"{where}: python -m src has no command {alternative!r}"
    command_name, rest = arguments[0].split("|")[0], arguments[1:]
    helps = [help_text(command_name)]
    if command_name == "gallery" and rest and not rest[0].startswith("-"):
        helps.append(help_text("gallery", rest[0]))
    if "--recipe" in rest:
        from src.training.recipes import TRANSFER_RECIPES

        allowed = set(_recipes()) if command_name == "train" else set(TRANSFER_RECIPES)
        after = rest[rest.index("--recipe") + 1 :]
        named = after[: next((i for i, word in enumerate(after) if word.startswith("-")), len(after))]  # a table's a\|b\|c
        for recipe in named:
            assert recipe in allowed, f"{where}: no recipe {recipe!r} for {command_name} (there are {sorted(allowed)})"
            helps.append(help_text(command_name, "--recipe", recipe))
    _check_options(where, options, "\n".join(helps))


def test_the_check_reads_the_commands_it_should():
    """The extraction itself: it finds the README's commands, so a failure above cannot hide as 'nothing read'."""
    shown = [command for document, command in COMMANDS_SHOWN if document == "README.md"]
    assert any(command.startswith("python -m src train --recipe default") for command in shown), shown
    assert any(command.startswith("make app") for command in shown) and len(shown) >= 20


def test_markdown_links_to_files_of_the_repository_exist():
    for document in DOCUMENTS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", document.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (document.parent / target).exists(), f"{document.name}: link to {target}, which does not exist"


def test_the_tagger_s_columns_in_docs_are_the_report_s():
    from src.serving.tagger.tag_report import COLUMNS

    text = (ROOT / "docs" / "serving.md").read_text()
    listed = re.search(r"One report row per photo \(`\.csv` or `\.json`\): ([\w ,\n]+)\.", text)
    assert listed, "docs/serving.md no longer lists the report's columns"
    assert re.split(r",\s*", " ".join(listed.group(1).split())) == list(COLUMNS)


def test_no_document_repeats_a_paragraph():
    """A scripted edit gone wrong (a replace with an empty pattern) once put one paragraph between every
    character of docs/context.md, 11 MB of it: every paragraph of a user's document says its thing once."""
    for document in DOCUMENTS:
        paragraphs = [block.strip() for block in document.read_text().split("\n\n") if len(block.strip()) > 80]
        repeated = {block[:80] for block in paragraphs if paragraphs.count(block) > 1}
        assert not repeated, (document.name, sorted(repeated)[:3])
