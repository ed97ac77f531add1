"""Model comparison: how good is an exported model on a test folder, and where does it fail?

`evaluate_model()` runs any exported model file over an ImageFolder test split with the project's own
decoding (`src.data.folders`) and prediction (`src.predictor.predict_dataset`) code and evaluates it.

The metrics are in `src.evaluation.metrics`, the figures in `src.evaluation.plots`.

From the command line, any exported models on any test folder (tables printed, figures and JSON saved):

    python -m src.evaluation.evaluate checkpoints/transfer_exported.pt checkpoints/scratch_exported.pt \
        --data ../shared/indian_monuments/test --figures static_images --report results/evaluation.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from src.data.folders import (
    DecodedImageDataset,
    decode_folder,
    decode_paths,
    scan_image_folder,
    split_no_landmark,
)
from src.data.synthetic import degenerate_tensors
from src.evaluation.metrics import (
    HARDEST_K,
    EvaluationReport,
    compare_reports,
    evaluate_probabilities,
)
from src.evaluation.evaluate_options import evaluate_parser
from src.evaluation.openset import (
    BACKGROUND_CLASS,
    GENERATED_EVAL_SEED,
    is_landmark,
    too_small,
)
from src.evaluation.plots import plot_comparison, save_figures
from src.export import load_exported, predict_dataset
from src.runs import save_run


def _skipped(scan, decoded) -> list[tuple[str, str]]:
    """What this scan left out, plus the photos that failed to decode.

    The decode cache is keyed by the photos only, so a cached result can carry another scan's
    problems (e.g. a copy of the folder without the unknown class): take the folder problems from
    this scan, and only the trailing decode failures from the decoded result.
    """
    failed = len(scan.samples) - len(decoded.images)
    unreadable = decoded.problems[len(decoded.problems) - failed:] if failed > 0 else []
    return [(str(path), str(reason)) for path, reason in list(scan.problems) + list(unreadable)]


def evaluate_model(
    model_path_or_module: str | Path | torch.nn.Module,
    data_dir_or_dataset: str | Path | Any,
    model_name: Optional[str] = None,
    class_names: Optional[list[str]] = None,
    short_side: int = 256,
    progress: bool = False,
    hardest_k: int = HARDEST_K,
) -> EvaluationReport:
    """Run a model over a test split and evaluate it.

    model_path_or_module: an exported file (`src.predictor.export`) or a Predictor / loaded module
    (its `class_names` attribute, or `class_names=`, gives the classes).
    data_dir_or_dataset: a split folder `<root>/<class>/<photo>` (e.g. `landmark_images/test`), or a
    dataset with `raw(i)` and `classes` whose classes are the model's. A folder is scanned with the
    MODEL's class list, so label indices line up with the model's outputs; photos of classes the model
    does not know (and unreadable files) are logged and listed in `report.skipped`. Photos are decoded
    once with the training pipeline's cache (short side `short_side`), then fed raw to the model, whose
    own preprocessing does the rest.
    """
    if isinstance(model_path_or_module, (str, Path)):
        module, metadata = load_exported(model_path_or_module)
        names = list(class_names or metadata["class_names"])
        model_name = model_name or metadata.get("model_name") or Path(model_path_or_module).stem
    else:
        module = model_path_or_module.eval()
        names = list(class_names or getattr(module, "class_names", None) or [])
        if not names:
            raise ValueError("the model has no class_names attribute: pass class_names=")
        model_name = model_name or type(module).__name__

    skipped: list[tuple[str, str]] = []
    if isinstance(data_dir_or_dataset, (str, Path)):
        scan = scan_image_folder(Path(data_dir_or_dataset), classes=names)
        decoded = decode_folder(scan, short_side=short_side)
        dataset = DecodedImageDataset(decoded)  # no transform: the model preprocesses raw photos
        skipped = _skipped(scan, decoded)
    else:
        dataset = data_dir_or_dataset
        dataset_classes = list(getattr(dataset, "classes", names))
        if dataset_classes != names:
            raise ValueError("the dataset's classes are not the model's (indices would not line up): pass the test folder instead")
    if len(dataset) == 0:
        raise ValueError("nothing to evaluate: the test set is empty")

    result = predict_dataset(dataset, module, progress=progress)
    report = evaluate_probabilities(result.truth, result.probabilities, names, model_name=model_name, hardest_k=hardest_k)
    report.skipped = skipped
    return report



def _open_set_rate(module, images: Sequence[torch.Tensor], background: list[int], threshold: float, progress: bool) -> float:
    """Share of `images` (none of them a known landmark) that the model's own rule names."""
    photos = [(image, 0) for image in images]
    probabilities = predict_dataset(_RawImages(photos), module, progress=progress).probabilities
    sizes = [tuple(image.shape[1:]) for image in images]
    named = is_landmark(probabilities, background, threshold) & ~torch.tensor([too_small(size) for size in sizes], dtype=torch.bool)
    return named.float().mean().item()


class _RawImages:
    """(uint8 image, label) pairs with the `raw(i)` interface `predict_dataset` reads."""

    def __init__(self, items: Sequence[tuple[torch.Tensor, int]]):
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def raw(self, index: int) -> tuple[torch.Tensor, int]:
        return self.items[index]


def test_folder(path: str | Path) -> Path:
    """A test split folder (`<class>/<photo>`), given it or a data root that holds `test/`."""
    path = Path(path)
    return path / "test" if (path / "test").is_dir() else path


def evaluate_export(
    model_path: str | Path,
    test_folders: Sequence[str | Path],
    no_landmark_dir: Optional[str | Path] = None,
    generated: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """What a user gets from an exported file, per test folder and over all of them:

    - `test_accuracy` (argmax over every class, as the app answers), top-5, macro-F1, ECE;
    - `test_landmarks_rejected`: test landmark photos the model's own rule ("no landmark" classes and
      threshold in its metadata) answers "unknown";
    - with `no_landmark_dir`: `held_out_no_landmark_named`, photos of the object categories that
      training never saw (`split_no_landmark`'s held-out half) that it names as a landmark;
    - with `generated`: `generated_named`, generated non-photos (blank, gradient, noise, text...)
      it names, drawn with a seed no training run uses.
    Training never scores the test split; this does, on the exported file."""
    if isinstance(test_folders, (str, Path)):
        raise TypeError("test_folders is a list of folders: pass [folder]")
    module, metadata = load_exported(model_path)
    names = list(metadata["class_names"])
    background = [i for i, name in enumerate(names) if name in set(metadata.get("background_classes", []))]
    threshold = float(metadata.get("threshold", 0.5))
    summary: dict[str, Any] = {"model": str(model_path), "threshold": threshold, "per_test_folder": {}}
    all_truth, all_probs = [], []
    for folder in map(test_folder, test_folders):
        dataset = DecodedImageDataset(decode_folder(scan_image_folder(folder, classes=names), short_side=256))
        result = predict_dataset(dataset, module, progress=progress)
        report = evaluate_probabilities(result.truth, result.probabilities, names, model_name=Path(model_path).stem)
        summary["per_test_folder"][str(folder)] = {
            "test_accuracy": report.accuracy, "test_accuracy_ci95": list(report.accuracy_ci95), "test_top5": report.top5,
            "test_images": len(result.truth), "macro_f1": report.macro_f1, "ece": report.ece,
            "test_landmarks_rejected": 1 - is_landmark(result.probabilities, background, threshold).float().mean().item(),
        }
        all_truth += result.truth
        all_probs.append(result.probabilities)
    probs = torch.cat(all_probs)
    overall = evaluate_probabilities(all_truth, probs, names, model_name=Path(model_path).stem)
    summary.update(
        test_accuracy=overall.accuracy, test_accuracy_ci95=list(overall.accuracy_ci95), test_top5=overall.top5,
        test_images=len(all_truth), macro_f1=overall.macro_f1, ece=overall.ece,
        test_landmarks_rejected=1 - is_landmark(probs, background, threshold).float().mean().item(),
    )
    if no_landmark_dir is not None:
        held_out = split_no_landmark(Path(no_landmark_dir))["held_out"]
        images = decode_paths(held_out, Path(no_landmark_dir), BACKGROUND_CLASS)
        summary["held_out_no_landmark_named"] = _open_set_rate(module, images, background, threshold, progress)
        summary["held_out_no_landmark_photos"] = len(images)
    if generated > 0:
        summary["generated_named"] = _open_set_rate(module, degenerate_tensors(generated, seed=GENERATED_EVAL_SEED), background, threshold, progress)
        summary["generated_images"] = generated
    return summary


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = evaluate_parser()
    args = parser.parse_args(argv)
    missing = [str(path) for path in args.models if not path.is_file()]
    if missing:
        parser.error(f"no such model file: {', '.join(missing)}")
    folders = [test_folder(path) for path in args.data]
    absent = [str(folder) for folder in folders if not folder.is_dir()]
    if absent:
        parser.error(f"no such test folder: {', '.join(absent)}")
    reports, open_set = [], {}
    for path in args.models:
        for folder in folders:
            name = path.stem if len(folders) == 1 else f"{path.stem} on {folder.parent.name or folder.name}"
            report = evaluate_model(path, folder, model_name=name, progress=True)
            reports.append(report)
            print(report.to_markdown(), end="\n\n", flush=True)
            if args.figures:
                stem = path.stem if len(folders) == 1 else f"{path.stem}_{folder.parent.name or folder.name}"
                print("figures: " + ", ".join(map(str, save_figures(report, args.figures, stem))), end="\n\n")
        if len(folders) > 1 or args.no_landmark or args.generated:
            open_set[str(path)] = evaluate_export(path, folders, args.no_landmark, args.generated)
            print(json.dumps({k: v for k, v in open_set[str(path)].items() if k != "per_test_folder"}, indent=2), end="\n\n")
    if len(args.models) > 1 and len(folders) == 1:
        print(compare_reports(reports))
        if args.figures:
            plot_comparison(reports).savefig(args.figures / "comparison.png", dpi=100)
    full = {"data": [str(folder) for folder in folders], "models": [report.to_dict() for report in reports], "open_set": open_set}
    if len(folders) == 1:
        full["data"] = str(folders[0])
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(full, indent=2))
    models = [str(path) for path in args.models]
    data = {"test_folders": [str(folder) for folder in folders], "no_landmark": str(args.no_landmark) if args.no_landmark else None, "generated": args.generated}
    record = save_run("evaluate", "-".join(path.stem for path in args.models), {"models": models}, data, full, folder=args.runs)
    print(f"run record {record}")


if __name__ == "__main__":
    main()
