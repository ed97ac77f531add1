"""One command line over every stage: `python -m src <command> ...`, `--help` on each.

    python -m src train --recipe default --data ROOT [ROOT ...] --no-landmark DIR
    python -m src crossval --recipe accurate --data ROOT --no-landmark DIR
    python -m src evaluate MODEL [MODEL ...] --data TEST_FOLDER --figures DIR
    python -m src tag PHOTOS_OR_FOLDERS ... --report tags.csv
    python -m src serve --port 8000
    python -m src gallery add NAME PHOTOS_OR_FOLDERS ... --lat LAT --lon LON
    python -m src bench

`train` and `crossval` take a named recipe (`src.training.recipes.RECIPES`) and any of its fields as
options (`src.config`); `python -m src train --recipe scratch --help` lists the scratch CNN's. Every
run writes a record to results/runs/ (`src.runs`). `tag`, `serve`, `bench` and `evaluate` are their
modules' own command lines.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable, Optional, Sequence

from src.config import add_dataclass_options, replace_from_options
from src.runs import RUNS_DIR, save_run

# The training stage (torch, timm) is imported by the commands that train, never by `tag` or `serve`.

_RECIPE_FIELDS_ON_THEIR_OWN = {"data_dir", "no_landmark_dir", "export_path"}
GENERATED_EVAL = 240  # generated non-photos every trained model is measured on (8 kinds x 30)


def _recipe_name(argv: Sequence[str], choices: Sequence[str]) -> str:
    """The `--recipe` in `argv` (before the full parser exists: it decides which options there are)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--recipe", choices=list(choices), default="default")
    known, _ = pre.parse_known_args(argv)
    return known.recipe


def recipe_parser(command: str, recipe_name: str, choices: Sequence[str], description: str) -> argparse.ArgumentParser:
    """`--recipe`, the data options and every field of the named recipe's dataclass."""
    from src.training.recipes import RECIPES, ScratchRecipe

    base = RECIPES[recipe_name]
    parser = argparse.ArgumentParser(prog=f"python -m src {command}", description=description)
    parser.add_argument("--recipe", choices=list(choices), default="default", help="named recipe the other options change (default: %(default)s)")
    parser.add_argument("--data", nargs="+", default=None, metavar="ROOT",
                        help="data roots, each with train/ and test/ class folders; several roots' classes are combined "
                        "(default: LANDMARK_DATA, ./landmark_images, or the course data set, downloaded)")
    if not isinstance(base, ScratchRecipe):
        parser.add_argument("--no-landmark", default=None, metavar="DIR", help="photos that show no landmark: learned as a background class")
    add_dataclass_options(parser, type(base), skip=_RECIPE_FIELDS_ON_THEIR_OWN, title=f"recipe options (defaults: the '{recipe_name}' recipe's)", defaults=base)
    return parser


def recipe_from_options(options: argparse.Namespace):
    """The named recipe with the data and every option the user gave."""
    from src.training.recipes import RECIPES

    recipe = replace_from_options(RECIPES[options.recipe], options)
    data = tuple(options.data) if options.data and len(options.data) > 1 else (options.data[0] if options.data else None)
    fields = {"data_dir": data}
    if getattr(options, "no_landmark", None) is not None:
        fields["no_landmark_dir"] = options.no_landmark
    if getattr(options, "export", None):
        fields["export_path"] = options.export
    return replace(recipe, **fields)


def _data_record(recipe) -> dict:
    roots = [recipe.data_dir] if isinstance(recipe.data_dir, str) or recipe.data_dir is None else list(recipe.data_dir)
    return {"roots": roots, "no_landmark": getattr(recipe, "no_landmark_dir", None)}


def train_command(argv: Sequence[str]) -> int:
    from src.training.recipes import RECIPES, ScratchRecipe

    name = _recipe_name(argv, list(RECIPES))
    parser = recipe_parser("train", name, list(RECIPES), "Train a named recipe, export it, then evaluate the exported file on every root's test/ split.")
    parser.add_argument("--export", default=None, metavar="PATH", help=f"exported model (default: the recipe's, {RECIPES[name].export_path})")
    parser.add_argument("--runs", type=Path, default=RUNS_DIR, help="folder of run records (default: %(default)s)")
    parser.add_argument("--no-evaluate", action="store_true", help="skip evaluating the exported file on the test splits")
    parser.add_argument("--no-references", action="store_true",
                        help="skip embedding reference photos beside the export (taught landmarks then compete by probability)")
    parser.add_argument("--generated-eval", type=int, default=GENERATED_EVAL, metavar="N", help="generated non-photos the export is measured on (default: %(default)s)")
    options = parser.parse_args(argv)
    recipe = recipe_from_options(options)
    start = time.perf_counter()
    # under torchrun: DDP for scratch, a shared trunk pass for transfer (src.training.distributed)
    from src.training import distributed

    if isinstance(recipe, ScratchRecipe):
        from src.training.scratch import export_scratch, train_scratch

        model, history, loaders = train_scratch(recipe)
        if distributed.is_main():
            _, training = export_scratch(model, loaders, recipe, history)
    else:
        from src.training.transfer import train_transfer

        training = train_transfer(recipe)
    if not distributed.is_main():
        return 0  # rank 0 exports, evaluates and writes the run record
    training["wall_seconds_total"] = time.perf_counter() - start
    metrics = {"training": training}
    from src.data.location import data_roots

    if not options.no_references:
        from src.serving.gallery.gallery import GalleryError
        from src.serving.gallery.gallery_cli import make_references

        try:
            references, count = make_references(Path(recipe.export_path), data_roots(recipe.data_dir), getattr(recipe, "no_landmark_dir", None))
            print(f"reference photos for taught landmarks: {count} in {references}")
        except (GalleryError, FileNotFoundError) as error:  # the model is exported and fine; only the references are missing
            print(f"warning: no reference photos beside {recipe.export_path}: {error}", file=sys.stderr)
    if not options.no_evaluate:
        from src.evaluation.evaluate import evaluate_export

        folders = [root / "test" for root in data_roots(recipe.data_dir)]
        metrics["evaluation"] = evaluate_export(recipe.export_path, folders, getattr(recipe, "no_landmark_dir", None), generated=options.generated_eval, progress=True)
    path = save_run("train", options.recipe, asdict(recipe), _data_record(recipe), metrics, folder=options.runs)
    print(json.dumps(metrics, indent=2, default=str))
    print(f"exported {recipe.export_path}; run record {path}")
    return 0


def crossval_command(argv: Sequence[str]) -> int:
    from src.training.recipes import TRANSFER_RECIPES

    name = _recipe_name(argv, TRANSFER_RECIPES)
    parser = recipe_parser("crossval", name, TRANSFER_RECIPES,
                           "k-fold cross-validation of a transfer recipe over the training photos (test/ is never read).")
    parser.add_argument("--folds", type=int, default=5, help="number of folds (default: %(default)s)")
    parser.add_argument("--fold-seed", type=int, default=0, help="how the folds are drawn (default: %(default)s)")
    parser.add_argument("--train-fraction", type=float, default=1.0, help="train each fold on this stratified part of its photos (a learning curve)")
    parser.add_argument("--eval-inputs", type=int, nargs="*", default=[], help="also score the fold models on the whole frame at these sizes (pixels)")
    parser.add_argument("--leave-landmarks-out", type=int, default=0, metavar="GROUPS",
                        help="instead: leave whole landmarks out, in this many groups, and measure the 'unknown landmark' rules")
    parser.add_argument("--negative-groups", type=int, default=0, metavar="N",
                        help="with --leave-landmarks-out: train the N groups after each left-out one as background "
                             "(other landmarks as negatives) instead of as landmarks (default: %(default)s)")
    parser.add_argument("--generated-eval", type=int, default=400, metavar="N",
                        help="with --leave-landmarks-out: generated non-photos to measure on (default: %(default)s)")
    parser.add_argument("--other-landmarks", default=None, metavar="ROOT",
                        help="with --leave-landmarks-out: landmarks outside --data (their train/ photos) used in every fold, never scored as unknown")
    parser.add_argument("--other-role", choices=["references", "background"], default="references",
                        help="with --other-landmarks: distractor references (a photo nearest to one is not ours) or trained as background (default: %(default)s)")
    parser.add_argument("--outputs", type=Path, default=None, metavar="NPZ",
                        help="with --leave-landmarks-out: save every fold's per-photo outputs here, for `python -m src.evaluation.placement` "
                             "(default: under $LANDMARK_CACHE, named in the run record)")
    parser.add_argument("--figure", type=Path, default=None, metavar="PNG",
                        help="with --leave-landmarks-out: draw the placement curve here (e.g. static_images/placement_curve.png)")
    parser.add_argument("--runs", type=Path, default=RUNS_DIR, help="folder of run records (default: %(default)s)")
    options = parser.parse_args(argv)
    from src.training.crossval import cross_validate

    recipe = recipe_from_options(options)
    if options.leave_landmarks_out:
        from src.training.openset_cv import default_outputs_path, leave_landmarks_out

        settings = {"leave_landmarks_out": options.leave_landmarks_out, "fold_seed": options.fold_seed, "generated_eval": options.generated_eval,
                    "negative_groups": options.negative_groups, "other_landmarks": options.other_landmarks, "other_role": options.other_role}
        outputs = options.outputs or default_outputs_path({**asdict(recipe), **settings})
        report = leave_landmarks_out(recipe, groups=options.leave_landmarks_out, seed=options.fold_seed, generated_eval=options.generated_eval,
                                     negative_groups=options.negative_groups, other_landmarks=options.other_landmarks,
                                     other_role=options.other_role, outputs_path=outputs)
        path = save_run("crossval", f"openset-{options.recipe}", {**asdict(recipe), **settings}, _data_record(recipe), report, folder=options.runs)
        print(json.dumps({k: v for k, v in report.items() if k not in ("min_confidence_curve", "placement")}, indent=2))
        from src.evaluation.placement import format_report, plot_curves

        print(format_report(report["placement"]))
        if options.figure:
            print(f"figure {plot_curves(report['placement'], options.figure, 'probability')}")
        print(f"run record {path}")
        return 0
    report = cross_validate(recipe, folds=options.folds, seed=options.fold_seed, train_fraction=options.train_fraction, eval_inputs=options.eval_inputs)
    settings = {"folds": options.folds, "fold_seed": options.fold_seed, "train_fraction": options.train_fraction}
    path = save_run("crossval", options.recipe, {**asdict(recipe), **settings}, _data_record(recipe), report, folder=options.runs)
    print(json.dumps({k: v for k, v in report.items() if k != "finetune"}, indent=2))
    print(f"run record {path}")
    return 0


def _delegate(module: str, parser: Optional[str] = None) -> Callable[[Sequence[str]], int]:
    """A command that is its module's own `main(argv)`. `parser` ("module:function"), for modules that load
    torch: a torch-free builder of the same options, so `--help` and a wrong option answer in a fraction of a
    second instead of after seconds of imports."""

    def run(argv: Sequence[str]) -> int:
        import importlib

        if parser is not None:
            parser_module, builder = parser.split(":")
            getattr(importlib.import_module(parser_module), builder)().parse_args(list(argv))  # exits on --help or a usage error
        result = importlib.import_module(module).main(list(argv))
        return result if isinstance(result, int) else 0

    return run


COMMANDS: dict[str, tuple[str, Callable[[Sequence[str]], int]]] = {
    "train": ("train a named recipe (default, accurate, scratch), export it and evaluate the export", train_command),
    "crossval": ("cross-validate a transfer recipe on the training photos", crossval_command),
    "evaluate": ("score exported models on a test folder: accuracy, top-k, per-class F1, calibration, figures", _delegate("src.evaluation.evaluate", "src.evaluation.evaluate_options:evaluate_parser")),
    "tag": ("recognise the landmark in photos and write the place into them (or a report)", _delegate("src.serving.tagger.cli")),
    "serve": ("the HTTP service (FastAPI): POST /v1/predict", _delegate("src.serving.web.service", "src.serving.web.service_options:serve_parser")),
    "gallery": ("teach landmarks from a few photos (add, list, remove, export, import): no retraining", _delegate("src.serving.gallery.gallery_cli")),
    "bench": ("benchmark the exported models: accuracy, latency, throughput, memory", _delegate("src.bench.run", "src.bench.settings:bench_parser")),
    "map": ("draw the landmarks a model knows on a world map (PNG)", _delegate("src.serving.recognizer.maps")),
    "export-openvino": ("convert exported .pt files into OpenVINO models beside them (faster CPU serving)", _delegate("src.export_openvino", "src.export_openvino_options:export_openvino_parser")),
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m src",
        description="Landmark Tagger: recognise the landmark in a photo and tag the photo with its place.",
        epilog="`python -m src COMMAND --help` describes each command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, _) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv)  # prints the overview, or the error for an unknown command
        return 2
    command, rest = argv[0], argv[1:]
    return COMMANDS[command][1](rest)
