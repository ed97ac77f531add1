"""Photo bytes -> top-k landmarks, location and tags, or an honest "unknown".

The one place where an exported model meets a user's photo; the app, the HTTP service and the batch
tagger all call `Recognizer.recognize` / `recognize_many`, so they agree on every answer.

Landmarks taught from a few photos (`src.serving.gallery.gallery`, under $LANDMARK_HOME) join the trained
classes in the same decision: the model's probabilities and the photo's similarity to each taught
landmark's photos become one distribution, and the "unknown" rule applies to it as it applied to the
model alone. With reference photos beside the model (`src.serving.gallery.references`) a taught landmark wins
a photo by being closer than everything the model was trained on (`combine_by_reference`); without
them, by competing with the model's probabilities (`combine`). A gallery changed by another process is
picked up on the next photo.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image
from threadpoolctl import ThreadpoolController

from src.data.images import (
    MAX_PIXELS,
    BadImageError,
    ImageSource,
    centre_square,
    load_rgb,
)
from src.data.landmarks import LandmarkInfo, lookup
from src.evaluation.gallery_rule import ReferenceRule, combine_by_reference
from src.evaluation.openset_rule import (
    MIN_SIDE,
    is_landmark,
    landmark_confidence,
    too_small,
)
from src.evaluation.placement import RESEMBLANCE_SCORES, PlacementRule, placement_score
from src.serving.gallery.gallery import GALLERY_FILE, Gallery, GalleryError, default_gallery_dir, edit
from src.serving.gallery.gallery_index import GalleryIndex, IndexConfig
from src.serving.gallery.validation import unreadable
from src.serving.gallery.references import load_references
from src.serving.recognizer.gallery_combine import GalleryRule, combine
from src.serving.recognizer.placement_point import placement_point, placement_rule_of
from src.serving.recognizer.recognition import Guess, Recognition
from src.serving.recognizer.runtime import Runtime, load_runtime
from src.serving.recognizer.taught_lookalikes import LookalikeRule, blocking_lookalike, lookalike_pairs

# Re-exported: callers import the result types and the gallery rule from here.
__all__ = ["DEFAULT_MODEL", "MAX_UPLOAD_BYTES", "GalleryRule", "Guess", "Recognition", "Recognizer", "combine", "default_model_path",
           "model_identity", "placement_point", "placement_rule_of"]

log = logging.getLogger(__name__)

DEFAULT_MODEL = Path(__file__).resolve().parents[3] / "checkpoints" / "transfer_exported.pt"
_THREADPOOLS = ThreadpoolController()  # the BLAS and OpenMP libraries loaded so far (numpy's, faiss's)
MAX_UPLOAD_BYTES = 20 * 1024 * 1024


def default_model_path() -> Path:
    """$LANDMARK_MODEL, else the model committed in checkpoints/."""
    return Path(os.environ.get("LANDMARK_MODEL") or DEFAULT_MODEL)


def model_identity(path: Path) -> str:
    """The model file's name and content hash: a gallery's embeddings belong to exactly this file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return f"{path.name}:{digest.hexdigest()[:16]}"


class Recognizer:
    """An exported model plus its decision rule (threshold and "no landmark" classes from its metadata)."""

    def __init__(
        self,
        model_path: Optional[str | Path] = None,
        threshold: Optional[float] = None,
        gallery_dir: Optional[str | Path] = None,
        use_gallery: bool = True,
        rule: GalleryRule = GalleryRule(),
        reference_rule: ReferenceRule = ReferenceRule(),
        index_config: Optional[IndexConfig] = None,
        runtime: Optional[str] = None,
        precision: Optional[str] = None,
        placement: Optional[str | float] = None,
        lookalike_rule: LookalikeRule = LookalikeRule(),
    ):
        """gallery_dir: taught landmarks (default: $LANDMARK_HOME/gallery); use_gallery=False: the model alone.
        runtime: "auto" (default, or $LANDMARK_RUNTIME: the OpenVINO model beside the file when usable),
        "openvino" or "torchscript" (`src.serving.recognizer.runtime`); precision: OpenVINO's "auto" (default: bf16 where the CPU has native bfloat16, else f32), "f32" or "bf16".
        placement: a named point of the model's placement rule ("strict", the default, or "balanced")
        or a probability; photos named below it are not placed. A rule whose score compares the photo
        with reference photos (`RESEMBLANCE_SCORES`) needs the model's references
        (`src.serving.gallery.references`). lookalike_rule: when a photo named as a trained landmark is still
        placed although a taught look-alike of it is nearly as close (`src.serving.recognizer.taught_lookalikes`)."""
        self.model_path = Path(model_path) if model_path else default_model_path()
        if not self.model_path.exists():
            raise FileNotFoundError(f"no exported model at {self.model_path}: train one (see README) or set LANDMARK_MODEL")
        self.model: Runtime = load_runtime(self.model_path, runtime, precision)
        self.runtime = self.model.name
        self.metadata = self.model.metadata
        self.class_names: list[str] = list(self.metadata["class_names"])
        self.threshold = float(self.metadata.get("threshold", 0.5) if threshold is None else threshold)
        # Classes that stand for "no landmark" (e.g. a background class learned from object photos).
        self.background = [i for i, name in enumerate(self.class_names) if name in set(self.metadata.get("background_classes", []))]
        self.landmark_indices = [i for i in range(len(self.class_names)) if i not in self.background]
        prep = self.metadata.get("preprocessing", {})
        self.resize = int(prep.get("resize", 256))
        self.rule, self.reference_rule, self.index_config, self.lookalike_rule = rule, reference_rule, index_config, lookalike_rule
        self.lookalikes: dict[int, list[int]] = {}  # trained class -> taught landmarks whose enrolled photos look like it
        self.model_id = model_identity(self.model_path)
        self.can_embed = self.model.can_embed  # files exported before embeddings lack it
        self.references = load_references(self.model_path, self.model_id) if self.can_embed else None
        self.use_placement(placement_rule_of(self.model_path, self.metadata), placement)
        self.gallery_dir: Optional[Path] = (Path(gallery_dir) if gallery_dir else default_gallery_dir()) if use_gallery else None
        self.gallery: Optional[Gallery] = None
        self.gallery_index: Optional[GalleryIndex] = None
        self._gallery_stamp: Optional[tuple[int, int]] = None
        self.gallery_problem: Optional[str] = None  # why taught landmarks are off (an unreadable gallery file), else None
        self._warned = False
        # One thread swaps the gallery while another predicts (the service teaches while it answers): a
        # photo's probabilities and the names decide() reads must come from the same gallery.
        self._gallery_lock = threading.RLock()
        self.refresh_gallery()

    def use_placement(self, rule: PlacementRule, placement: Optional[str | float] = None) -> None:
        """Place by `rule` at `placement` (a named point, None for its default, or a probability) from now on."""
        point, score, threshold, taught = placement_point(rule, placement)
        if score in RESEMBLANCE_SCORES and self.references is None:
            raise ValueError(f"{self.model_path}: its placement rule ({score}) compares photos with the model's reference "
                             "photos, and there are none for this file: make them with python -m src gallery references --model "
                             f"{self.model_path} --data ROOTS, or choose --placement with a probability")
        self.placement_rule = rule
        self.placement_point, self.placement_score, self.placement_threshold, self.taught_placement_threshold = point, score, threshold, taught

    @property
    def placement_description(self) -> str:
        """The placement point in force, e.g. "strict: probability*reference >= 0.891266 (taught: probability >= 0.994654)"."""
        taught = f" (taught: probability >= {self.taught_placement_threshold:g})" if self.taught_placement_threshold is not None else ""
        return f"{self.placement_point}: {self.placement_score} >= {self.placement_threshold:g}{taught}"

    # ---- the gallery of taught landmarks ------------------------------------------------------------
    @property
    def gallery_names(self) -> list[str]:
        return self.gallery.names if self.gallery is not None and self.gallery_index is not None else []

    def _stamp(self) -> Optional[tuple[int, int]]:
        try:
            stat = (self.gallery_dir / "gallery.npz").stat()  # type: ignore[operator]
        except (OSError, TypeError):
            return None
        return stat.st_mtime_ns, stat.st_size

    def refresh_gallery(self) -> None:
        """(Re)load the gallery when its file changed since the last look (one stat per call)."""
        if self.gallery_dir is None:
            return
        with self._gallery_lock:
            self._refresh_gallery()

    def _refresh_gallery(self) -> None:
        """`refresh_gallery`'s work, under the gallery lock."""
        stamp = self._stamp()
        if stamp == self._gallery_stamp:
            return
        self._gallery_stamp = stamp
        try:
            gallery = Gallery.load(self.gallery_dir)
            if len(gallery) and self.can_embed and gallery.model_id == self.model_id and gallery.dim != self.embedding_dim:
                raise unreadable(self.gallery_dir / GALLERY_FILE, f"its embeddings are {gallery.dim}-dimensional, "
                                 f"the model makes {self.embedding_dim}-dimensional ones")
        except GalleryError as error:
            return self._gallery_off(error)
        if len(gallery) and not self.can_embed:
            if not self._warned:
                log.warning("taught landmarks are off: the model %s was exported before embeddings existed "
                            "(no probabilities_and_embedding); re-export it to use the gallery in %s", self.model_path, self.gallery_dir)
                self._warned = True
            return self.set_gallery(None)
        if len(gallery) and gallery.model_id != self.model_id:
            log.warning("the gallery in %s was embedded by %s: re-embedding its photos with %s", self.gallery_dir, gallery.model_id, self.model_id)
            try:
                with edit(self.gallery_dir) as gallery:
                    if gallery.model_id != self.model_id:
                        gallery.reembed(self.embed, self.model_id)
            except GalleryError as error:
                return self._gallery_off(error)
            self._gallery_stamp = self._stamp()
        self.gallery_problem = None
        self.set_gallery(gallery)

    def _gallery_off(self, error: GalleryError) -> None:
        """Serve the trained landmarks alone and say why: in the log once per change of the file (this
        runs when its stamp changed), and in `gallery_problem` (the service's /healthz, the tagger)."""
        self.gallery_problem = f"taught landmarks are off: {error}"
        log.warning("%s", self.gallery_problem)
        self.set_gallery(None)

    def set_gallery(self, gallery: Optional[Gallery]) -> None:
        """Use `gallery`'s landmarks from now on (None or empty: the trained classes alone)."""
        n = len(self.class_names)
        self.gallery = gallery if gallery is not None and len(gallery) else None
        self.gallery_index = self.gallery.index(self.index_config) if self.gallery is not None else None
        trained = [i for i in range(n) if i not in self.background]
        self.landmark_indices = trained + [n + j for j in range(len(self.gallery_names))]
        self.lookalikes = {} if self.gallery is None or self.references is None else lookalike_pairs(
            [self.references.nearest(self.gallery.embeddings[name], self.class_names)[1] for name in self.gallery_names], trained,
            self.lookalike_rule.share)

    def require_embeddings(self) -> None:
        if not self.can_embed:
            raise GalleryError(f"the model {self.model_path} was exported before embeddings existed: re-export it "
                               "(python -m src train ...) to teach it landmarks")

    @functools.cached_property
    def embedding_dim(self) -> int:
        """Width of this model's embeddings (one blank photo embedded once): a gallery's must match it."""
        return int(self.embed([Image.new("RGB", (self.resize, self.resize))]).shape[1])

    def embed(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """L2-normalised embeddings [N, D] of decoded photos (what the gallery stores and compares)."""
        self.require_embeddings()
        outputs = []
        for start in range(0, len(images), batch_size):
            batch = np.stack([centre_square(self._model_size(image), self.resize) for image in images[start : start + batch_size]])
            outputs.append(self.model.probabilities_and_embedding(batch)[1])
        return np.concatenate(outputs)

    def _model_size(self, image: Image.Image) -> Image.Image:
        """A photo decoded larger than the model's input (a gallery thumbnail) shrunk as `decode` would."""
        short = min(image.size)
        if short <= self.resize:
            return image
        scale = self.resize / short
        return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.BICUBIC)

    def decode(self, source: ImageSource, max_pixels: int = MAX_PIXELS) -> Image.Image:
        """Decode at the model's own resize size (JPEG draft mode keeps big photos cheap); images over
        `max_pixels` are refused before decoding (BadImageError)."""
        return load_rgb(source, short_side=self.resize, max_pixels=max_pixels)

    def probabilities(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Probabilities [N, classes + taught landmarks] for decoded photos, in batches (`combine_by_reference`
        where the model has references, else `combine`)."""
        with self._gallery_lock:
            self.refresh_gallery()
            outputs = [self._outputs(self._squares(images[start : start + batch_size]))[0] for start in range(0, len(images), batch_size)]
            width = len(self.class_names) + len(self.gallery_names)
        return np.concatenate(outputs) if outputs else np.empty((0, width), dtype=np.float32)

    def _squares(self, images: Sequence[Image.Image]) -> np.ndarray:
        return np.stack([centre_square(image, self.resize) for image in images])

    def _outputs(self, squares: np.ndarray) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """One batch of centre squares -> probabilities [B, classes + taught] and, where the placement
        score needs it, resemblance [B, classes + taught]: the cosine similarity between each photo and
        each landmark's most similar reference photo (trained) or enrolled photo (taught). Call under
        the gallery lock, after `refresh_gallery`."""
        index = self.gallery_index
        # The look-alike check compares a photo's closeness to a trained class with its closeness to taught photos.
        wants_resemblance = self.placement_score in RESEMBLANCE_SCORES or bool(self.lookalikes)
        if index is None and not wants_resemblance:
            return self.model.probabilities(squares), None
        probs, embedding = self.model.probabilities_and_embedding(squares)
        # One thread for the similarities: BLAS threads left spinning after a matrix product take the
        # cores from the model's next batch (a third slower on 2 cores; docs/openvino.md).
        with _THREADPOOLS.limit(limits=1):
            nearest, per_class = self.references.nearest(embedding, self.class_names) if self.references is not None else (None, None)
            taught = index.landmark_similarity(embedding) if index is not None else np.empty((len(probs), 0), dtype=np.float32)
            if index is not None:
                probs = combine(probs, taught, self.rule) if nearest is None else combine_by_reference(probs, taught, nearest, self.reference_rule)
        return probs, np.concatenate([per_class, taught], axis=1) if wants_resemblance else None

    def _info(self, index: int) -> LandmarkInfo:
        n = len(self.class_names)
        if index < n:
            return lookup(self.class_names[index])
        return self.gallery.landmarks[self.gallery_names[index - n]].info  # type: ignore[union-attr]

    def landmark_infos(self) -> list[LandmarkInfo]:
        """Every landmark it can name, trained then taught (the gallery re-read if it changed)."""
        self.refresh_gallery()
        return [self._info(index) for index in self.landmark_indices]

    def decide(self, probs, top_k: int = 5, size: Optional[tuple[int, int]] = None, resemblance=None) -> Recognition:
        """Turn one row of probabilities (numpy, or a CPU torch tensor) into a Recognition (pure: no model, no I/O).
        resemblance: the photo's row of `_outputs`' resemblance, which a placement score that compares
        the photo with reference photos needs."""
        probs = np.asarray(probs)
        landmark_probs = probs[self.landmark_indices]
        order = np.argsort(-landmark_probs, kind="stable")[:top_k]
        top = []
        names = self.class_names + self.gallery_names
        for i in order.tolist():
            index = self.landmark_indices[i]
            top.append(Guess(class_name=names[index], probability=float(landmark_probs[i]), info=self._info(index)))
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
            # A best guess worth naming only where a landmark came close: never "Golden Temple at 0%" for an object.
            hint = f" (best guess {best.info.name} at {best.probability:.0%})" if best.probability >= 0.1 else ""
            message = f"This photo does not look like one of the {len(self.landmark_indices)} landmarks I know{hint}."
            return Recognition(status="unknown", message=message, top=top, size=size, rule=rule)
        named = f"probability {best_probability:.2f} >= threshold {self.threshold:.2f}"
        best_index = self.landmark_indices[int(order[0])]
        if best_index >= len(self.class_names) and self.taught_placement_threshold is not None:  # a taught landmark
            kind, score, threshold, point = "probability", best_probability, self.taught_placement_threshold, f"{self.placement_point} (taught)"
        else:
            nearest = None if resemblance is None else float(np.asarray(resemblance)[best_index])
            kind, threshold, point = self.placement_score, self.placement_threshold, self.placement_point
            score = float(placement_score(kind, best_probability, nearest))
        sure = score >= threshold
        placement = f"{kind} {score:.4f} {'>=' if sure else '<'} {point} {threshold:.4f}"
        blocked = None if not sure or resemblance is None or best_index >= len(self.class_names) else blocking_lookalike(
            np.asarray(resemblance), best_index, len(self.class_names), self.lookalikes, self.lookalike_rule)
        if not sure:
            placement, message = f"not placed: {placement}", f"Looks like {best.info.name} ({best.probability:.0%}), but not sure enough to place it."
        elif blocked is not None:
            taught, similarity = self.gallery_names[blocked[0]], blocked[1]
            placement = (f"not placed: {placement}, but the taught look-alike {taught} (similarity {similarity:.4f}) is within "
                         f"{self.lookalike_rule.margin:g} of its reference photos ({float(np.asarray(resemblance)[best_index]):.4f})")
            message = f"Looks like {best.info.name} ({best.probability:.0%}), or {taught}, which was taught: not sure enough to place it."
        elif not best.info.has_coordinates:
            placement = f"not placed: {placement}, but it has no position"
            message = f"{best.info.name} ({best.probability:.0%}): named, never placed (no position known)."
        else:
            placement, message = f"placed: {placement}", f"{best.info.name} ({best.probability:.0%})"
        placed = sure and blocked is None and best.info.has_coordinates
        return Recognition(status="landmark", message=message, top=top, size=size, rule=f"{named}; {placement}", placed=placed, score=score)

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
            for (index, _), result in zip(decoded, self.recognize_images([image for _, image in decoded], top_k=top_k)):
                results[index] = result
        return results  # type: ignore[return-value]

    def recognize_images(self, images: Sequence[Image.Image], top_k: int = 5, batch_size: int = 32) -> list[Recognition]:
        """Decoded photos (`decode`) -> Recognitions, in batches; a photo's size counts (too small: unknown)."""
        results: list[Recognition] = []
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            results += self.recognize_squares(self._squares(batch), top_k=top_k, sizes=[image.size for image in batch])
        return results

    def recognize_squares(self, squares: np.ndarray, top_k: int = 5, sizes: Optional[Sequence[tuple[int, int]]] = None) -> list[Recognition]:
        """One batch of centre squares [B, side, side, 3] (uint8, `centre_square`) -> Recognitions. The
        probabilities and the names decide() reads come from the same gallery (a lock against a refresh)."""
        if len(squares) == 0:
            return []
        with self._gallery_lock:
            self.refresh_gallery()
            probs, resemblance = self._outputs(squares)
            return [self.decide(row, top_k=top_k, size=sizes[i] if sizes is not None else None,
                                resemblance=resemblance[i] if resemblance is not None else None) for i, row in enumerate(probs)]
