"""The tables of `docs/experiments.md`, generated from the run records in `results/runs/`:

    python -m src.evaluation.experiments [--runs results/runs] [--out docs/experiments.md] [--check]

Four tables (cross-validation, training runs, evaluations, benchmark), each row one record (or one
model of a record) with a link to its file. They replace what lies between `<!-- tables:begin -->`
and `<!-- tables:end -->` in the output file; the prose around the markers is left as it is (a new
file gets a title and the markers). `--check` writes nothing and exits 1 when the file is out of date.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from src.runs import RUNS_DIR, load_runs

BEGIN = "<!-- tables:begin -->"
END = "<!-- tables:end -->"
DEFAULT_OUT = Path("docs") / "experiments.md"
NAMED = ("default", "fast", "scratch")  # the recipes `python -m src train --recipe` knows, shown first


# --------------------------------------------------------------------------- formatting


def pct(value: Any, digits: int = 1) -> str:
    """0.97821 -> '97.8 %' (or '97.82 %' with digits=2); '' when there is no number."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return ""
    return f"{100 * value:.{digits}f} %"


def count_of(accuracy: Any, n: Any) -> str:
    """'679/699': how many photos an accuracy over n photos is."""
    if not isinstance(accuracy, (int, float)) or not isinstance(n, int) or n <= 0:
        return ""
    return f"{round(accuracy * n)}/{n}"


def minutes(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return ""
    return f"{seconds / 60:.1f} min"


def number(value: Any, spec: str = ".1f") -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return ""
    return f"{value:{spec}}"


def machine_label(machine: dict[str, Any]) -> str:
    """'AMD EPYC (Zen 3), float32': the CPU and whether it computes bfloat16 natively."""
    cpu = machine.get("cpu_model") or "unknown CPU"
    native = machine.get("cpu_bf16_native")
    precision = "bf16" if native else "float32" if native is False else "?"
    return f"{cpu}, {precision}"


def _link(record: dict[str, Any], out_dir: Path) -> str:
    path = Path(record["path"])
    target = os.path.relpath(path.resolve(), out_dir.resolve()) if out_dir else str(path)
    return f"[{path.stem}]({Path(target).as_posix()})"


def _table(header: Sequence[str], align: str, rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _order(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The named recipes first (default, fast, scratch), then the rest oldest first."""
    def key(record: dict[str, Any]) -> tuple[int, str]:
        name = record.get("recipe_name", "")
        return (NAMED.index(name) if name in NAMED else len(NAMED), record.get("date", ""))

    return sorted(records, key=key)


# --------------------------------------------------------------------------- the tables


def _changes(recipe: dict[str, Any]) -> str:
    finetune = recipe.get("finetune") or {}
    parts = []
    if finetune.get("mixup_alpha"):
        parts.append(f"mixup {finetune['mixup_alpha']}")
    if finetune.get("ema_decay"):
        parts.append(f"EMA {finetune['ema_decay']}")
    if finetune.get("class_balance"):
        parts.append(f"class balance {finetune['class_balance']}")
    if finetune.get("cosine_scale"):
        parts.append(f"cosine head x{finetune['cosine_scale']:g}" + (f", CosFace margin {finetune['cosine_margin']:g}" if finetune.get("cosine_margin") else ""))
    if recipe.get("train_fraction") not in (None, 1.0):
        parts.append(f"{pct(recipe['train_fraction'], 0)} of each fold")
    return ", ".join(parts)


def crossval_table(records: list[dict[str, Any]], out_dir: Path) -> str:
    header = ["recipe", "backbone", "views × px", "epochs", "eval", "changes", "CV top-1 (last epoch)",
              "best epoch", "fold spread", "ECE raw → calibrated", "threshold", "machine", "time", "record"]
    rows = []
    for record in _order([r for r in records if "rules" not in r.get("metrics", {})]):
        recipe, metrics = record.get("recipe", {}), record.get("metrics", {})
        finetune = recipe.get("finetune") or {}
        ece = metrics.get("ece_out_of_fold") or {}
        threshold = (metrics.get("threshold_out_of_fold") or {}).get("threshold")
        eval_input = recipe.get("eval_input")
        rows.append([
            record.get("recipe_name", ""),
            str(recipe.get("backbone", "")).replace("tf_efficientnet_", ""),
            f"{recipe.get('train_views', '')} × {recipe.get('train_crop') or 224}",
            str(finetune.get("epochs", "")),
            f"{recipe.get('eval_crop', '')}{f' {eval_input}' if eval_input else ''}",
            _changes(recipe),
            f"**{pct(metrics.get('accuracy_final_epoch'), 2)}**",
            pct(metrics.get("accuracy_best_epoch"), 2),
            pct(metrics.get("fold_spread_final_epoch"), 2),
            f"{pct(ece.get('raw'))} → {pct(ece.get('calibrated'))}" if ece else "",
            number(threshold, ".2f"),
            machine_label(record.get("machine", {})),
            minutes(metrics.get("seconds_total")),
            _link(record, out_dir),
        ])
    return _table(header, ["---"] * 6 + ["---:"] * 5 + ["---", "---:", "---"], rows)


def open_set_table(records: list[dict[str, Any]], out_dir: Path) -> str:
    """Leave-landmarks-out runs (`--leave-landmarks-out`): each rule at its out-of-fold threshold."""
    header = ["recipe", "groups", "changes", "known top-1", "rule", "threshold", "known rejected", "known named wrong",
              "unknown landmarks named", "objects named", "generated named", "temperature", "machine", "time", "record"]
    rows = []
    for record in _order([r for r in records if "rules" in r.get("metrics", {})]):
        metrics = record["metrics"]
        changes = ", ".join(filter(None, [_changes(record.get("recipe", {})), _negatives(metrics)]))
        for rule, rates in metrics["rules"].items():
            rows.append([
                record.get("recipe_name", ""), str(metrics.get("groups", "")), changes, pct(metrics.get("known_accuracy")), rule,
                number(rates.get("threshold"), ".3f"), pct(rates.get("known_rejected")), pct(rates.get("known_named_wrong")),
                f"**{pct(rates.get('unknown_named'))}**", pct(rates.get("objects_named")), pct(rates.get("generated_named")),
                number(metrics.get("temperature_out_of_fold"), ".2f"), machine_label(record.get("machine", {})),
                minutes(metrics.get("seconds_total")), _link(record, out_dir),
            ])
    return _table(header, ["---", "---:", "---:", "---:", "---"] + ["---:"] * 7 + ["---", "---:", "---"], rows)


def _negatives(metrics: dict[str, Any]) -> str:
    """How many other landmarks each fold trained as background (`--negative-groups`), or ''."""
    counts = [len(fold) for fold in metrics.get("negative_landmarks_by_fold") or []]
    if not any(counts):
        return ""
    low, high = min(counts), max(counts)
    return f"{low if low == high else f'{low}–{high}'} landmarks per fold as background"


def _flat_training_metrics(metrics: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Old records keep every number at the top; newer ones split `training` from the `evaluation`
    of the exported file (per test folder). Returns the numbers on indian_monuments/test and the
    other test folders' accuracies as text."""
    if "training" not in metrics:
        return metrics, ""
    evaluation = metrics.get("evaluation") or {}
    folders = evaluation.get("per_test_folder") or {}
    first = next((v for k, v in folders.items() if "indian_monuments" in k), next(iter(folders.values()), {}))
    others = ", ".join(f"{Path(k).parent.name} {pct(v.get('test_accuracy'))} ({v.get('test_images')})"
                       for k, v in folders.items() if v is not first)
    flat = {**metrics["training"], **{k: v for k, v in evaluation.items() if k != "per_test_folder"}, **first}
    flat["test_accuracy_exported"] = first.get("test_accuracy", evaluation.get("test_accuracy"))
    flat.pop("test_accuracy", None)
    return flat, others


def _model_name(recipe: dict[str, Any]) -> str:
    if recipe.get("model") == "MyModel":
        return "MyModel (scratch)"
    name = str(recipe.get("backbone", "")).replace("tf_efficientnet_", "EfficientNet-")
    how = "refit" if recipe.get("refit") else "chosen on valid"
    tail = f", {recipe['tail_stages']} stages" if recipe.get("tail_stages", 1) != 1 else ""
    views = recipe.get("train_views", "?")
    return f"{name}, {views} view{'' if views == 1 else 's'}, {how}{tail}"


def training_table(records: list[dict[str, Any]], out_dir: Path) -> str:
    header = ["recipe", "model", "eval", "valid top-1", "test top-1 exported", "among landmarks", "top-5",
              "probe test", "no-landmark named", "landmarks rejected", "training", "other test sets", "machine", "record"]
    rows = []
    for record in _order(records):
        recipe = record.get("recipe", {})
        metrics, others = _flat_training_metrics(record.get("metrics", {}))
        n = metrics.get("test_images")
        exported = metrics.get("test_accuracy_exported", metrics.get("test_accuracy"))
        valid = (metrics.get("finetune") or {}).get("valid_accuracy")
        train_seconds = metrics.get("train_seconds_total", metrics.get("train_seconds"))
        eval_size = metrics.get("eval_size")
        evaluation = f"{eval_size[0]}/{eval_size[1]}" if eval_size else f"{recipe.get('eval_crop', '')} {recipe.get('eval_input') or ''}".strip()
        rows.append([
            record.get("recipe_name", ""),
            _model_name(recipe),
            evaluation,
            pct(valid),
            f"**{pct(exported)}** ({count_of(exported, n)})",
            pct(metrics.get("test_accuracy")) if "test_accuracy_exported" in metrics else "",
            pct(metrics.get("test_top5")),
            pct(metrics.get("test_accuracy_probe")),
            pct(metrics.get("held_out_no_landmark_named")),
            pct(metrics.get("test_landmarks_rejected")),
            minutes(train_seconds),
            others,
            machine_label(record.get("machine", {})),
            _link(record, out_dir),
        ])
    return _table(header, ["---", "---", "---"] + ["---:"] * 8 + ["---", "---", "---"], rows)


def evaluation_table(records: list[dict[str, Any]], out_dir: Path) -> str:
    header = ["model", "test photos", "top-1 (95 % CI)", "top-3", "top-5", "macro F1", "ECE", "record"]
    rows = []
    for record in _order(records):
        for model in record.get("metrics", {}).get("models", []):
            low, high = (model.get("accuracy_ci95") or [None, None])[:2]
            rows.append([
                str(model.get("model_name", "")),
                str(model.get("n", "")),
                f"**{pct(model.get('accuracy'))}** ({pct(low)}–{pct(high)})",
                pct(model.get("top3")),
                pct(model.get("top5")),
                pct(model.get("macro_f1")),
                pct(model.get("ece")),
                _link(record, out_dir),
            ])
    return _table(header, ["---"] + ["---:"] * 6 + ["---"], rows)


def bench_table(records: list[dict[str, Any]], out_dir: Path) -> str:
    header = ["model", "test top-1 (95 % CI)", "top-5", "img/s batch 1", "img/s batch 32", "ms/photo p50 / p95",
              "peak RSS (MB)", "file (MB)", "machine", "date", "record"]
    rows = []
    for record in _order(records):
        for model in record.get("metrics", {}).get("models", []):
            low, high = (model.get("top1_ci95") or [None, None])[:2]
            rows.append([
                str(model.get("model", "")),
                f"{pct(model.get('top1'))} ({pct(low)}–{pct(high)})",
                pct(model.get("top5")),
                number(model.get("images_per_second_batch1")),
                number(model.get("images_per_second_batch32")),
                f"{number(model.get('e2e_ms_p50'))} / {number(model.get('e2e_ms_p95'))}",
                number(model.get("peak_rss_mb"), ".0f"),
                number(model.get("file_mb")),
                machine_label(record.get("machine", {})),
                str(record.get("date", ""))[:10],
                _link(record, out_dir),
            ])
        throughput = record.get("metrics", {}).get("training_throughput") or {}
        if throughput.get("speedup"):
            ways = throughput.get("ways", {})
            rows.append([
                "training MyModel: ours vs the course starter", f"{number(throughput['speedup'], '.2f')}×", "",
                f"{number(ways.get('ours', {}).get('images_per_second'))} vs {number(ways.get('starter', {}).get('images_per_second'))} train img/s",
                "", "", "", "", machine_label(record.get("machine", {})), str(record.get("date", ""))[:10], _link(record, out_dir),
            ])
    return _table(header, ["---"] + ["---:"] * 7 + ["---", "---", "---"], rows)


SECTIONS = (
    ("crossval", "Cross-validation (5 folds over the 2,800 training photos; chooses the settings)", crossval_table),
    ("crossval", "Leave-landmarks-out cross-validation (whole landmarks left out; chooses the 'unknown' rule)", open_set_table),
    ("train", "Training runs (test = indian_monuments/test, 699 photos; never used for a choice)", training_table),
    ("evaluate", "Evaluations of the shipped checkpoints", evaluation_table),
    ("bench", "Benchmark (`python -m src bench`)", bench_table),
)


def render_tables(runs: Path, out_dir: Path = Path("docs")) -> str:
    """Markdown for every table that has records, with links relative to `out_dir`."""
    records = load_runs(runs)
    parts = [f"<!-- generated by `python -m src.evaluation.experiments` from {len(records)} run records; do not edit by hand -->"]
    for kind, title, table in SECTIONS:
        chosen = [record for record in records if record.get("kind") == kind]
        if chosen:
            parts += [f"### {title}", table(chosen, out_dir)]
    return "\n\n".join(parts)


def splice(document: str, tables: str) -> str:
    """`document` with what lies between the markers replaced by `tables`."""
    begin, end = document.find(BEGIN), document.find(END)
    if begin < 0 or end < begin:
        raise ValueError(f"the document has no {BEGIN} ... {END} markers")
    return document[: begin + len(BEGIN)] + "\n\n" + tables + "\n\n" + document[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m src.evaluation.experiments", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default=str(RUNS_DIR), help="folder of run records (default: results/runs)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="the Markdown file to update (default: docs/experiments.md)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when the file is not up to date")
    args = parser.parse_args(argv)
    out = Path(args.out)
    document = out.read_text() if out.exists() else f"# Experiments\n\n{BEGIN}\n{END}\n"
    updated = splice(document, render_tables(Path(args.runs), out.parent))
    if args.check:
        if updated != document:
            print(f"{out} is out of date: run python -m src.evaluation.experiments", file=sys.stderr)
            return 1
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(updated)
    print(f"wrote {out} from {args.runs}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
