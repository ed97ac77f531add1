"""Photo bytes -> top-k landmarks, location and tags, or an honest "unknown".

The one place where an exported model meets a user's photo; the app, the HTTP service and the batch
tagger all call `Recognizer.recognize` / `recognize_many`, so they agree on every answer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import torch
from PIL import Image

from src.data.images import MAX_PIXELS, BadImageError, ImageSource, load_rgb
from src.data.landmarks import LandmarkInfo, lookup
from src.data.transforms import batchable_square
from src.evaluation.openset import MIN_SIDE, is_landmark, landmark_confidence, too_small
from src.export import load_exported

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "checkpoints" / "transfer_exported.pt"
MAX_UPLOAD_BYTES = 20 * 1024 * 1024


def default_model_path() -> Path:
    """$LANDMARK_MODEL, else the model committed in checkpoints/."""
    return Path(os.environ.get("LANDMARK_MODEL") or DEFAULT_MODEL)


@dataclass(frozen=True)
class Guess:
    class_name: str
    probability: float
    info: LandmarkInfo

    def to_dict(self) -> dict:
        return {"class_name": self.class_name, "probability": self.probability, **self.info.to_dict()}


@dataclass(frozen=True)
class Recognition:
    """status: "landmark" (confident), "unknown" (not one of the known landmarks) or "error"."""

    status: str
    message: str
    top: list[Guess] = field(default_factory=list)
    size: Optional[tuple[int, int]] = None  # width, height of the photo as decoded (upright, shrunk to the model size)
    rule: str = ""  # what decided, e.g. "probability 0.91 >= threshold 0.56"

    @property
    def confidence(self) -> Optional[float]:
        """The best landmark's probability (None for an error)."""
        return self.top[0].probability if self.top else None

    @property
    def landmark(self) -> Optional[Guess]:
        return self.top[0] if self.status == "landmark" else None

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "message": self.message,
            "landmark": self.landmark.to_dict() if self.landmark else None,
            "top": [guess.to_dict() for guess in self.top],
            "rule": self.rule,
        }


class Recognizer:
    """An exported model plus its decision rule (threshold and "no landmark" classes from its metadata)."""

    def __init__(self, model_path: Optional[str | Path] = None, threshold: Optional[float] = None):
        self.model_path = Path(model_path) if model_path else default_model_path()
        if not self.model_path.exists():
            raise FileNotFoundError(f"no exported model at {self.model_path}: train one (see README) or set LANDMARK_MODEL")
        self.model, self.metadata = load_exported(self.model_path)
        self.class_names: list[str] = list(self.metadata["class_names"])
        self.threshold = float(self.metadata.get("threshold", 0.5) if threshold is None else threshold)
        # Classes that stand for "no landmark" (e.g. a background class learned from object photos).
        self.background = [i for i, name in enumerate(self.class_names) if name in set(self.metadata.get("background_classes", []))]
        self.landmark_indices = [i for i in range(len(self.class_names)) if i not in self.background]
        prep = self.metadata.get("preprocessing", {})
        self.resize = int(prep.get("resize", 256))

    def decode(self, source: ImageSource, max_pixels: int = MAX_PIXELS) -> Image.Image:
        """Decode at the model's own resize size (JPEG draft mode keeps big photos cheap); images over
        `max_pixels` are refused before decoding (BadImageError)."""
        return load_rgb(source, short_side=self.resize, max_pixels=max_pixels)

    @torch.no_grad()
    def probabilities(self, images: Sequence[Image.Image], batch_size: int = 32) -> torch.Tensor:
        """Class probabilities [N, classes] for decoded photos, in batches."""
        outputs = []
        for start in range(0, len(images), batch_size):
            batch = torch.stack([batchable_square(image, self.resize) for image in images[start : start + batch_size]])
            outputs.append(self.model(batch))
        return torch.cat(outputs) if outputs else torch.empty(0, len(self.class_names))

    def decide(self, probs: torch.Tensor, top_k: int = 5, size: Optional[tuple[int, int]] = None) -> Recognition:
        """Turn one row of probabilities into a Recognition (pure: no model, no I/O)."""
        landmark_probs = probs[self.landmark_indices]
        order = torch.argsort(landmark_probs, descending=True)[:top_k]
        top = []
        for i in order.tolist():
            name = self.class_names[self.landmark_indices[i]]
            top.append(Guess(class_name=name, probability=float(landmark_probs[i]), info=lookup(name)))
        best = top[0]
        best_probability, background_total = (float(v) for v in landmark_confidence(probs, self.background))
        if size is not None and too_small(size):
            return Recognition(
                status="unknown", message=f"This image is too small to show a landmark ({size[0]}x{size[1]} px; at least {MIN_SIDE} px a side).",
                top=top, size=size, rule=f"image under {MIN_SIDE} px a side",
            )
        if not bool(is_landmark(probs, self.background, self.threshold)):
            rule = (
                f"no-landmark class {background_total:.2f} > best landmark {best_probability:.2f}"
                if background_total > best_probability else f"probability {best_probability:.2f} < threshold {self.threshold:.2f}"
            )
            return Recognition(
                status="unknown",
                message=f"This photo does not look like one of the {len(self.landmark_indices)} landmarks I know "
                f"(best guess {best.info.name} at {best.probability:.0%}).",
                top=top,
                size=size,
                rule=rule,
            )
        return Recognition(
            status="landmark", message=f"{best.info.name} ({best.probability:.0%})", top=top, size=size,
            rule=f"probability {best_probability:.2f} >= threshold {self.threshold:.2f}",
        )

    def recognize(self, data: bytes, top_k: int = 5, max_bytes: int = MAX_UPLOAD_BYTES) -> Recognition:
        """Photo bytes -> Recognition. Never raises for bad input: status "error" with a reason."""
        return self.recognize_many([data], top_k=top_k, max_bytes=max_bytes)[0]

    def recognize_many(self, sources: Sequence[ImageSource], top_k: int = 5, max_bytes: int = MAX_UPLOAD_BYTES) -> list[Recognition]:
        """Decode every photo, predict the good ones in batches, keep bad ones as errors in place."""
        results: list[Optional[Recognition]] = [None] * len(sources)
        decoded: list[tuple[int, Image.Image]] = []
        for index, source in enumerate(sources):
            try:
                if isinstance(source, (bytes, bytearray, memoryview)) and len(source) > max_bytes:
                    raise BadImageError(f"the file is too large ({len(source) / 1e6:.1f} MB; limit {max_bytes / 1e6:.0f} MB)")
                decoded.append((index, self.decode(source)))
            except BadImageError as error:
                results[index] = Recognition(status="error", message=f"Cannot read this file: {error}.")
        if decoded:
            probs = self.probabilities([image for _, image in decoded])
            for (index, image), row in zip(decoded, probs):
                results[index] = self.decide(row, top_k=top_k, size=image.size)
        return results  # type: ignore[return-value]
