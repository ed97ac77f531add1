"""Predictor: a trained model with its preprocessing inside, exported as TorchScript.

The exported file is self-contained: it takes raw uint8 image tensors of any size and returns class
probabilities; its class names and preprocessing travel inside it (attributes and a metadata.json
extra file), so the app, the service and the tagger need nothing but the file.
"""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from src.data.transforms import Preprocessing, model_input
from src.runs import portable

METADATA_FILE = "metadata.json"


@contextmanager
def torchscript_quietly() -> Iterator[None]:
    """Silence torch's "`torch.jit.*` is deprecated" FutureWarnings (script, trace, save, load, freeze):
    TorchScript is the course's exported format, and the notice would print on every run. Other
    warnings still show."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning)
        yield


class Predictor(nn.Module):
    """uint8 [B,3,H,W] (or [3,H,W]) or float in [0,1] -> softmax probabilities [B, classes].

    A model with `logits_and_embedding` (MyModel, TransferModel) gets an `EmbeddingPredictor`, whose
    exported file also answers `probabilities_and_embedding`; any other model a plain Predictor
    (TorchScript compiles every exported method, so the method cannot exist without its model's).
    """

    def __new__(cls, model: nn.Module, *args, **kwargs):
        if cls is Predictor and hasattr(model, "logits_and_embedding"):
            cls = EmbeddingPredictor
        return super().__new__(cls)

    def __init__(
        self,
        model: nn.Module,
        class_names: Sequence[str],
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
        preprocessing: Optional[Preprocessing] = None,
    ):
        super().__init__()
        if preprocessing is None:
            if mean is None or std is None:
                raise ValueError("give mean and std, or a Preprocessing")
            preprocessing = Preprocessing(mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std))
        self.model = model.eval()
        self.class_names = list(class_names)
        self.preprocessing_config = json.dumps(preprocessing.to_dict())
        self.input = model_input(preprocessing)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(0)
        with torch.no_grad():
            x = self.input(x)
            return torch.softmax(self.model(x), dim=1)



class EmbeddingPredictor(Predictor):
    """A Predictor whose model also gives the pooled features its classifier reads."""

    @torch.jit.export
    def probabilities_and_embedding(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(probabilities [B, classes], L2-normalised embedding [B, D]) from one forward pass: the
        embedding is the pooled feature vector the classifier reads (what a landmark gallery compares)."""
        if x.dim() == 3:
            x = x.unsqueeze(0)
        with torch.no_grad():
            logits, features = self.model.logits_and_embedding(self.input(x))
            return torch.softmax(logits, dim=1), torch.nn.functional.normalize(features, dim=1)


def load_exported(path: str | Path, optimize: bool = True) -> tuple[torch.jit.ScriptModule, dict]:
    """Load an exported model and its metadata (class names, preprocessing, threshold, ...).

    optimize: freeze the loaded module for inference (BatchNorm folded into the convolutions,
    weights inlined as constants; same outputs to 1e-6). On the 2-core machine the default model
    answers one photo in 9.8-10.3 ms p50 frozen vs 15.2-16.0 as saved, p95 10.8-12.9 vs 17.2-27.3
    (two runs of `python -m scripts.export_speed`). Its submodules (`module.model`) are then gone:
    pass False to reach them, or freeze later with `freeze_for_inference`.
    """
    extra = {METADATA_FILE: ""}
    with torchscript_quietly():
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra).eval()
    metadata = json.loads(extra[METADATA_FILE] or "{}")
    metadata.setdefault("class_names", list(module.class_names))
    return (freeze_for_inference(module) if optimize else module), metadata


def freeze_for_inference(module: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """A frozen copy of a loaded exported model (see `load_exported`); `module` itself is unchanged."""
    with torchscript_quietly():
        preserved = ["class_names", "preprocessing_config"]
        if hasattr(module, "probabilities_and_embedding"):  # files exported before embeddings existed lack it
            preserved.append("probabilities_and_embedding")
        return torch.jit.freeze(module, preserved_attrs=preserved)


class ExportMismatchError(RuntimeError):
    """The reloaded TorchScript model does not behave like the model that was exported."""


def export(
    predictor: Predictor,
    path: str | Path,
    check_images: Sequence[torch.Tensor],
    check_labels: Optional[Sequence[int]] = None,
    min_accuracy: Optional[float] = None,
    metadata: Optional[dict] = None,
) -> Path:
    """Script, save and verify: the reloaded file must give the same probabilities as `predictor`
    on `check_images` (real photos, uint8 [3,H,W]). With check_labels and min_accuracy it also
    refuses to export a model that is no better than that on those photos (catches exporting
    freshly initialised weights instead of the trained ones).
    """
    if not check_images:
        raise ValueError("export needs a few real images to verify the exported file")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    predictor = predictor.cpu().eval()
    with torchscript_quietly():
        scripted = torch.jit.script(predictor)
    info = {"class_names": predictor.class_names, "preprocessing": json.loads(predictor.preprocessing_config)}
    info.update(metadata or {})
    info = portable(info)  # the file ships: no path of the machine that trained it (a temporary export folder, the data root)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with torchscript_quietly():
        torch.jit.save(scripted, str(tmp), _extra_files={METADATA_FILE: json.dumps(info)})
    reloaded, _ = load_exported(tmp)
    expected = torch.cat([predictor(image) for image in check_images])
    actual = torch.cat([reloaded(image) for image in check_images])
    if not torch.allclose(expected, actual, atol=1e-4):
        tmp.unlink()
        raise ExportMismatchError(f"reloaded model differs from the in-memory one (max |diff| {float((expected - actual).abs().max()):.2e})")
    if check_labels is not None and min_accuracy is not None:
        accuracy = (actual.argmax(dim=1) == torch.tensor(list(check_labels))).float().mean().item()
        if accuracy < min_accuracy:
            tmp.unlink()
            raise ExportMismatchError(f"refusing to export: accuracy {accuracy:.1%} on the check images is below {min_accuracy:.1%} (untrained weights?)")
    tmp.replace(path)
    return path


@dataclass
class PredictionSet:
    truth: list[int]
    pred: list[int]
    probabilities: torch.Tensor

    @property
    def accuracy(self) -> float:
        return sum(t == p for t, p in zip(self.truth, self.pred)) / len(self.truth)


def predict_dataset(dataset, model: nn.Module, progress: bool = True) -> PredictionSet:
    """Run `model` (a Predictor or exported file) on the raw photos of a dataset, one at a time."""
    truth, probabilities = [], []
    for item in tqdm(range(len(dataset)), desc="predict", disable=not progress, ncols=90):
        image, label = dataset.raw(item)
        probabilities.append(model(image))
        truth.append(int(label))
    probs = torch.cat(probabilities)
    return PredictionSet(truth=truth, pred=probs.argmax(dim=1).tolist(), probabilities=probs)


def predictor_test(test_dataloader, model_reloaded: nn.Module) -> tuple[list[int], list[int]]:
    """The course's check: (truth, pred) for every test photo, through the exported model."""
    result = predict_dataset(test_dataloader.dataset, model_reloaded)
    print(f"Accuracy: {result.accuracy:.1%}")
    return result.truth, result.pred
