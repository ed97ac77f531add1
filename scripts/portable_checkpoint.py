"""Rewrite an exported model's metadata so that it names no machine's paths, with no model change.

    python -m scripts.portable_checkpoint checkpoints/transfer_exported.pt checkpoints/scratch_exported.pt

`src.export.export` writes portable metadata (`src.runs.portable`) since run records went portable, but
files exported before kept the absolute temporary folder they were trained in (`recipe.export_path`:
/tmp/final40/transfer_exported.pt). Only the zip entry `<name>/extra/metadata.json` of the TorchScript
file is replaced (its recipe's export_path becomes where the file lives, relative to the repository);
every other entry (code, constants, weights) is copied byte for byte, which `check_same_model` verifies.
The files that name the model by its content hash follow it: the OpenVINO metadata's source_sha256
(`src.export_openvino`) and the reference photos' model_id (`src.serving.gallery.references`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from src.runs import portable, portable_path

METADATA_ENTRY = "/extra/metadata.json"


def portable_metadata(metadata: dict, model: Path) -> dict:
    """`metadata` with every absolute path made portable, and the export path where the file now is."""
    updated = portable(metadata)
    if isinstance(updated.get("recipe"), dict) and "export_path" in updated["recipe"]:
        updated["recipe"]["export_path"] = portable_path(model.resolve())
    return updated


def rewrite_zip_entry(model: Path, suffix: str, data: bytes) -> None:
    """Replace the entry whose name ends with `suffix`; other entries keep their bytes, names, order and
    compression. Written beside the model, then moved over it atomically."""
    tmp = model.with_name(model.name + ".rewrite.tmp")
    with zipfile.ZipFile(model) as old, zipfile.ZipFile(tmp, "w") as new:
        for info in old.infolist():
            new.writestr(info, data if info.filename.endswith(suffix) else old.read(info.filename), compress_type=info.compress_type)
    os.replace(tmp, model)


def check_same_model(before: Path, after: Path) -> None:
    """Every entry but the metadata byte-identical, and the loaded modules give the same outputs."""
    with zipfile.ZipFile(before) as a, zipfile.ZipFile(after) as b:
        assert a.namelist() == b.namelist()
        for name in a.namelist():
            if not name.endswith(METADATA_ENTRY):
                assert a.read(name) == b.read(name), name
    import torch

    x = torch.rand(2, 3, 224, 224)
    first, second = torch.jit.load(str(before)).eval(), torch.jit.load(str(after)).eval()
    with torch.no_grad():
        out_a, out_b = first(x), second(x)
    for left, right in zip(out_a if isinstance(out_a, tuple) else (out_a,), out_b if isinstance(out_b, tuple) else (out_b,)):
        assert torch.equal(left, right)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def follow_new_hash(model: Path, old_identity: str) -> list[Path]:
    """Point the OpenVINO metadata and the reference photos beside `model` at its new content hash."""
    changed = []
    openvino = model.with_suffix(".openvino.json")
    if openvino.exists():
        text = openvino.read_text()
        old_hash = json.loads(text)["source_sha256"]
        openvino.write_text(text.replace(old_hash, sha256(model)))  # only the hash: the file's own layout stays
        changed.append(openvino)
    references = model.with_name(model.stem + ".references.npz")
    if references.exists():
        with np.load(references) as data:
            arrays = {key: data[key] for key in data.files}
        if str(arrays["model_id"]) == old_identity:
            arrays["model_id"] = np.array(f"{model.name}:{sha256(model)[:16]}")
            tmp = references.with_name(references.name + ".tmp.npz")
            np.savez_compressed(tmp, **arrays)
            os.replace(tmp, references)
            changed.append(references)
    return changed


def make_portable(model: Path) -> list[Path]:
    """Rewrite `model` (and what names its hash) when its metadata names machine paths; the files changed."""
    with zipfile.ZipFile(model) as archive:
        (entry,) = [name for name in archive.namelist() if name.endswith(METADATA_ENTRY)]
        metadata = json.loads(archive.read(entry))
    updated = portable_metadata(metadata, model)
    if updated == metadata:
        return []
    old_identity = f"{model.name}:{sha256(model)[:16]}"
    backup = model.with_name(model.name + ".before.tmp")
    backup.write_bytes(model.read_bytes())
    try:
        rewrite_zip_entry(model, METADATA_ENTRY, json.dumps(updated).encode("utf-8"))
        check_same_model(backup, model)
    except BaseException:
        os.replace(backup, model)  # the original back, whatever failed
        raise
    backup.unlink()
    return [model, *follow_new_hash(model, old_identity)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.portable_checkpoint", description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", type=Path, help="exported TorchScript files")
    args = parser.parse_args(argv)
    for model in args.models:
        changed = make_portable(model)
        print(f"{model}: " + (f"rewritten ({', '.join(map(str, changed))})" if changed else "already portable"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
