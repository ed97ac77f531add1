"""The exported model as an OpenVINO IR (`.xml` + `.bin`) beside its TorchScript file (`.pt`).

The TorchScript file stays the course's format and the source of truth; the IR is a faster copy of the
same network for CPU inference (`src.serving.recognizer.runtime`). It is converted from the network inside the
exported file (`openvino.convert_model`), with the cheap part of the preprocessing built in by
OpenVINO's PrePostProcessor: it takes the photos' centre squares as uint8 NHWC (what PIL decodes, no
transpose, no float copy in Python) and normalises them inside the model. Its outputs are the
probabilities and the L2-normalised embedding, as `Predictor.probabilities_and_embedding`.

The metadata (class names, preprocessing, threshold, report, ...) travels in a `.json` sidecar with
the `.pt` file's content hash: an IR whose `.pt` was re-exported since is stale and is not used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from src.export import load_exported

log = logging.getLogger(__name__)

PROBABILITIES, EMBEDDING, INPUT = "probabilities", "embedding", "photos"
IR_FORMAT = 1  # bumped when the IR's inputs or outputs change meaning


class OpenVINOExportError(RuntimeError):
    """The converted model does not answer like the TorchScript file it was converted from."""


def ir_paths(model_path: str | Path) -> tuple[Path, Path, Path]:
    """(.xml, .bin, .json) beside an exported `.pt` file."""
    path = Path(model_path)
    return path.with_suffix(".xml"), path.with_suffix(".bin"), path.with_suffix(".openvino.json")


def file_hash(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _Network(nn.Module):
    """Normalised float NCHW -> (probabilities, embedding): the exported network without its resize."""

    def __init__(self, network: nn.Module, embeds: bool):
        super().__init__()
        self.network, self.embeds = network, embeds

    def forward(self, x: torch.Tensor):
        if not self.embeds:  # files exported before embeddings existed
            return torch.softmax(self.network(x), dim=1)
        logits, features = self.network.logits_and_embedding(x)
        return torch.softmax(logits, dim=1), nn.functional.normalize(features, dim=1)


def rebuild_network(module: torch.jit.ScriptModule, metadata: dict | None = None) -> nn.Module:
    """The exported file's network as a PyTorch (Python) module with its trained weights.

    Why not convert the TorchScript graph itself: the scripted TF "SAME" padding of the EfficientNet-Lite
    trunks computes its padding with control flow OpenVINO's TorchScript frontend cannot convert, while
    the Python module traces to plain convolutions at a fixed input size."""
    weights = module.model.state_dict()
    kind = module.model.original_name
    if kind == "TransferModel":
        from src.models.backbones import TransferModel, create_backbone

        named = ((metadata or {}).get("report") or {}).get("backbone") or ((metadata or {}).get("recipe") or {}).get("backbone")
        names = [name for name in ([named] if named else _backbone_names()) if _loads(name, weights)]
        if not names:
            raise OpenVINOExportError("cannot rebuild the exported TransferModel: no known backbone has its weights' names and shapes")
        extractor, spec = create_backbone(names[0], allow_download=False)
        network: nn.Module = TransferModel(extractor, n_classes=int(weights["head.weight"].shape[0]), frozen=True, spec=spec)
    elif kind == "MyModel":
        from src.models.scratch import MyModel

        widths = tuple(int(weights[f"features.{2 * i}.body.0.0.weight"].shape[0]) for i in range(_count_stages(weights)))
        network = MyModel(num_classes=int(weights["head.2.weight"].shape[0]), widths=widths)
    else:
        raise OpenVINOExportError(f"no OpenVINO conversion for a {kind} network (known: TransferModel, MyModel)")
    network.load_state_dict(weights, strict=True)
    return network.eval()


def _count_stages(weights: dict) -> int:
    blocks = {int(key.split(".")[1]) for key in weights if key.startswith("features.")}
    return (max(blocks) + 1) // 2


def _backbone_names() -> list[str]:
    from src.models.backbones import BACKBONES

    return list(BACKBONES)


def _loads(name: str, weights: dict) -> bool:
    """True when the backbone `name` builds offline with exactly these weights' names and shapes."""
    from src.models.backbones import BackboneUnavailableError, create_backbone

    try:
        extractor, _ = create_backbone(name, allow_download=False)
    except (BackboneUnavailableError, KeyError, OSError):
        return False
    expected = {f"backbone.{k}": v.shape for k, v in extractor.state_dict().items()}
    return expected == {k: v.shape for k, v in weights.items() if k.startswith("backbone.")}


def convert(network: nn.Module, metadata: dict, embeds: bool = True):
    """An `openvino.Model` of an exported network (`rebuild_network`, or the live one at export time),
    taking uint8 NHWC centre crops [N, crop, crop, 3] and normalising them inside."""
    import openvino as ov

    prep = metadata["preprocessing"]
    crop = int(prep["crop"])
    example = torch.zeros(1, 3, crop, crop)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracing notices from the conversion (shapes are fixed: crop x crop)
        model = ov.convert_model(_Network(network.eval(), embeds).eval(), example_input=example,
                                 input=[(ov.PartialShape([-1, 3, crop, crop]), ov.Type.f32)])
    model.outputs[0].get_tensor().set_names({PROBABILITIES})
    if embeds:
        model.outputs[1].get_tensor().set_names({EMBEDDING})
    ppp = ov.preprocess.PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    # (x / 255 - mean) / std == (x - 255 mean) / (255 std): one subtract and one divide inside the model
    ppp.input().preprocess().convert_element_type(ov.Type.f32).mean([255.0 * m for m in prep["mean"]]).scale(
        [255.0 * s for s in prep["std"]])
    model = ppp.build()
    model.inputs[0].get_tensor().set_names({INPUT})
    return model


def centre_crops(squares: np.ndarray, crop: int) -> np.ndarray:
    """uint8 [N, S, S, 3] squares at the resize size -> their centre crop [N, crop, crop, 3], as the
    exported model's CenterCrop takes it (a view; no copy when crop == S)."""
    side = squares.shape[1]
    if crop == side:
        return squares
    top = round((side - crop) / 2.0)
    return squares[:, top : top + crop, top : top + crop]


def export_openvino(model_path: str | Path, check_images: Sequence[np.ndarray] | None = None, atol: float = 1e-3,
                    network: nn.Module | None = None) -> Path:
    """Convert the exported `.pt` at `model_path` into an IR beside it and verify it: on `check_images`
    (uint8 [S, S, 3] squares at the model's resize size; default: a few seeded random ones) its
    probabilities must be within `atol` of the TorchScript file's and its top-1 the same.
    network: the trained PyTorch network (at export time); default: rebuilt from the file (`rebuild_network`).
    Returns the `.xml` path; nothing is left behind when the check fails."""
    import openvino as ov

    model_path = Path(model_path)
    module, metadata = load_exported(model_path, optimize=False)
    prep = metadata["preprocessing"]
    resize, crop = int(prep["resize"]), int(prep["crop"])
    if check_images is None:
        rng = np.random.default_rng(0)
        check_images = [rng.integers(0, 256, (resize, resize, 3), dtype=np.uint8) for _ in range(4)]
    squares = np.stack(list(check_images))
    if squares.shape[1:] != (resize, resize, 3):
        raise ValueError(f"check images must be uint8 [{resize}, {resize}, 3] squares, got {squares.shape[1:]}")
    network = network if network is not None else rebuild_network(module, metadata)
    # The rebuilt network embeds even when the TorchScript file predates probabilities_and_embedding.
    embeds = hasattr(network, "logits_and_embedding")
    model = convert(network, metadata, embeds)
    xml, bin_, sidecar = ir_paths(model_path)
    tmp_xml = xml.with_name(xml.stem + ".tmp.xml")
    ov.save_model(model, str(tmp_xml), compress_to_fp16=False)  # f32 weights: equal answers to 1e-3
    tmp_bin = tmp_xml.with_suffix(".bin")
    try:
        compiled = ov.Core().compile_model(str(tmp_xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        got = compiled({INPUT: centre_crops(squares, crop)})[PROBABILITIES]
        with torch.no_grad():
            want = module(torch.from_numpy(squares).permute(0, 3, 1, 2)).numpy()
        diff = float(np.abs(got - want).max())
        if diff > atol or (got.argmax(1) != want.argmax(1)).any():
            raise OpenVINOExportError(f"the OpenVINO model differs from {model_path.name}: max |diff| {diff:.2e} (tolerance {atol:g})")
    except BaseException:
        tmp_xml.unlink(missing_ok=True)
        tmp_bin.unlink(missing_ok=True)
        raise
    info = dict(metadata, ir_format=IR_FORMAT, source=model_path.name, source_sha256=file_hash(model_path),
                embeds=embeds, check_max_abs_diff=diff)
    tmp_json = sidecar.with_name(sidecar.name + ".tmp")
    tmp_json.write_text(json.dumps(info, indent=1))
    tmp_bin.replace(bin_)
    tmp_xml.replace(xml)
    tmp_json.replace(sidecar)  # last: an IR without its sidecar is never used
    return xml


def export_openvino_beside(model_path: str | Path, network: nn.Module | None = None) -> Path | None:
    """`export_openvino` after training: the `.pt` is what matters, so a failed conversion is one
    warning (serving then runs TorchScript), never a failed training run."""
    try:
        return export_openvino(model_path, network=network)
    except Exception as error:  # noqa: BLE001 - any conversion failure leaves the TorchScript file usable
        log.warning("no OpenVINO model for %s (serving will use TorchScript): %s", model_path, error)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    from src.export_openvino_options import export_openvino_parser

    parser = export_openvino_parser()
    args = parser.parse_args(argv)
    for path in args.models:
        if not path.exists():
            parser.error(f"no model at {path}")
        print(f"{path} -> {export_openvino(path)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
