"""Command-line options derived from configuration dataclasses (a leaf module: every stage may use it).

A recipe's fields are its options: `add_dataclass_options(parser, TransferRecipe)` adds `--train-views`,
`--eval-crop {centre,full}`, `--refit/--no-refit`, ... with the types, choices and help that the
dataclass itself declares (a field's trailing `# comment` is its help), and `replace_from_options`
applies the options a user gave to a recipe. Nothing is typed twice, so a recipe and its command line
cannot drift apart. A nested dataclass field (e.g. `TransferRecipe.finetune`) gets prefixed options
(`--finetune-epochs`).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import types
import typing
from typing import Any, Iterable, Literal, Optional, Union

_COMMENT = re.compile(r"^\s+(\w+)\s*:[^#]*#\s*(.+)$")


def field_comments(cls: type) -> dict[str, str]:
    """`name: type = default  # help` -> {name: help}, read from the dataclass's source."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    return {m.group(1): m.group(2).strip() for m in map(_COMMENT.match, source.splitlines()) if m}


def _unwrap_optional(kind: Any) -> Any:
    if typing.get_origin(kind) in (Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1:
            return args[0]
        # e.g. `str | tuple[str, ...]`: the command line gives one or more values
        if str in args and any(typing.get_origin(a) is tuple for a in args):
            return tuple[str, ...]
    return kind


def _option_kwargs(kind: Any, help_text: str) -> Optional[dict[str, Any]]:
    """argparse keywords for a field type; None for types a command line cannot express."""
    kind = _unwrap_optional(kind)
    origin = typing.get_origin(kind)
    if kind is bool:
        return {"action": argparse.BooleanOptionalAction, "help": help_text}
    if kind in (int, float, str):
        return {"type": kind, "help": help_text}
    if origin is Literal:
        return {"choices": list(typing.get_args(kind)), "help": help_text}
    if origin is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis and args[0] in (int, float, str):
            return {"type": args[0], "nargs": "+", "help": help_text}
    return None


def _shown_default(value: Any) -> str:
    """A default as a user would type it (argparse's %-formatting would choke on a literal '%')."""
    if isinstance(value, (tuple, list)):
        value = " ".join(map(str, value))
    return str(value).replace("%", "%%")


def add_dataclass_options(
    parser: argparse.ArgumentParser, cls: type, skip: Iterable[str] = (), prefix: str = "", title: Optional[str] = None,
    defaults: Any = None,
) -> None:
    """One `--option` per field of `cls` (default None: "the recipe's value"); nested dataclasses get a prefix.
    `defaults`, an instance of `cls` (e.g. the named recipe), puts each field's value in its help."""
    group = parser.add_argument_group(title or f"{cls.__name__} options (default: the named recipe's value)")
    hints, comments, skip = typing.get_type_hints(cls), field_comments(cls), set(skip)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        kind = _unwrap_optional(hints[field.name])
        value = getattr(defaults, field.name, None) if defaults is not None else None
        if dataclasses.is_dataclass(kind):
            add_dataclass_options(parser, kind, prefix=f"{prefix}{field.name}_", title=f"{field.name} options", defaults=value)
            continue
        help_text = comments.get(field.name, "")
        if defaults is not None and not (value is None and "default" in help_text):  # the comment already says what None means
            help_text = f"{help_text} (default: {_shown_default(value)})".lstrip()
        kwargs = _option_kwargs(hints[field.name], help_text)
        if kwargs is None:
            continue
        name = f"{prefix}{field.name}"
        group.add_argument("--" + name.replace("_", "-"), dest=name, default=None, **kwargs)


def replace_from_options(config: Any, options: argparse.Namespace, prefix: str = "") -> Any:
    """`config` with every field the user gave on the command line (options that are not None)."""
    hints, given = typing.get_type_hints(type(config)), {}
    for field in dataclasses.fields(config):
        name = f"{prefix}{field.name}"
        kind = _unwrap_optional(hints[field.name])
        if dataclasses.is_dataclass(kind):
            nested = getattr(config, field.name)
            if nested is not None:
                updated = replace_from_options(nested, options, prefix=f"{name}_")
                if updated is not nested:
                    given[field.name] = updated
            continue
        value = getattr(options, name, None)
        if value is not None:
            given[field.name] = tuple(value) if isinstance(value, list) else value
    return dataclasses.replace(config, **given) if given else config
