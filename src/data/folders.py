"""ImageFolder scanning and the decode-once cache.

JPEG decoding of large photos dominates CPU time on a small machine. We decode every photo once,
shrunk so its short side is `short_side` pixels (JPEG draft mode makes that cheap), keep the result
as uint8 tensors, and save them in a cache file keyed by the data set's identity (file names, sizes,
modification times). Later epochs and later runs only pay for augmentation and the model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from src.data.images import BadImageError, is_image_file, load_rgb

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """Where decoded images and statistics are cached: $LANDMARK_CACHE or ~/.cache/landmark_tagger."""
    return Path(os.environ.get("LANDMARK_CACHE", Path.home() / ".cache" / "landmark_tagger"))


@dataclass
class FolderScan:
    """The usable photos of an ImageFolder-style tree, and what was skipped and why."""

    root: Path
    classes: list[str]
    samples: list[tuple[Path, int]]
    problems: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.samples]

    def identity(self, *extra: object) -> str:
        """A short hash of what is in the folder; changes when any file is added, removed or edited."""
        # The absolute root is part of the key: cached paths must point into this very folder.
        digest = hashlib.sha1(f"{CACHE_FORMAT_VERSION}|{self.root.resolve()}".encode())
        for path, label in self.samples:
            stat = path.stat()
            digest.update(f"{path.relative_to(self.root)}|{label}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        digest.update(repr(extra).encode())
        return digest.hexdigest()[:16]


def scan_image_folder(root: Path, classes: Optional[list[str]] = None) -> FolderScan:
    """List `root/<class>/<image>` files.

    classes: the class list to use (e.g. the training split's for the test split); by default, every
    sub-folder that holds at least one image, sorted. Non-image files, empty class folders and folders
    unknown to `classes` are reported in `problems`, never silently dropped.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder not found: {root}")
    problems: list[tuple[Path, str]] = []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files_by_folder: dict[str, list[Path]] = {}
    for folder in folders:
        files = []
        for path in sorted(folder.rglob("*")):
            if path.is_dir() or path.name.startswith("."):
                continue
            if is_image_file(path):
                files.append(path)
            else:
                problems.append((path, "not an image file (unknown extension)"))
        if not files:
            problems.append((folder, "class folder holds no images: skipped"))
            continue
        files_by_folder[folder.name] = files
    if classes is None:
        classes = sorted(files_by_folder)
    index = {name: i for i, name in enumerate(classes)}
    samples = []
    for name, files in files_by_folder.items():
        if name not in index:
            problems.append((root / name, "class not in the training classes: skipped"))
            continue
        samples += [(path, index[name]) for path in files]
    if not samples:
        raise ValueError(f"no images found under {root} (expected {root}/<class>/<image>.jpg)")
    for path, reason in problems:
        log.warning("skipping %s: %s", path, reason)
    return FolderScan(root=root, classes=list(classes), samples=samples, problems=problems)


DataRoots = Union[str, Path, Sequence[Union[str, Path]]]


def _landmark_key(class_name: str) -> str:
    """'22.Taj_Mahal' and '05.taj mahal' name the same landmark: compare without number, case or spaces."""
    return re.sub(r"^\s*\d+\s*\.\s*", "", class_name).replace(" ", "_").casefold()


def merge_scans(scans: Sequence[FolderScan]) -> FolderScan:
    """One data set from several roots' scans of the same split: the classes of every root, in root
    order (the first root's classes keep their indices), kept distinct. Two roots holding the same
    landmark (the same folder name, or the same name under another number) is an error naming both."""
    if len(scans) == 1:
        return scans[0]
    owner: dict[str, Path] = {}
    for scan in scans:
        for name in scan.classes:
            key = _landmark_key(name)
            if key in owner:
                raise ValueError(
                    f"two data roots hold the same landmark {name!r}: {owner[key] / name} and {scan.root / name} "
                    "(classes from several roots must be distinct: merge or rename one of the folders)"
                )
            owner[key] = scan.root
    classes, samples, problems, offset = [], [], [], 0
    for scan in scans:
        classes += scan.classes
        samples += [(path, label + offset) for path, label in scan.samples]
        problems += scan.problems
        offset += len(scan.classes)
    root = Path(os.path.commonpath([str(scan.root.resolve()) for scan in scans]))
    return FolderScan(root=root, classes=classes, samples=[(path.resolve(), label) for path, label in samples], problems=problems)


def scan_split(roots: Sequence[Path], split: str, classes: Optional[list[str]] = None) -> FolderScan:
    """`<root>/<split>/<class>/<photo>` over one or several data roots (`merge_scans`). With `classes`
    (e.g. the training split's), every root's folders are matched against that one list."""
    missing = [str(root / split) for root in roots if not (Path(root) / split).is_dir()]
    if missing:
        raise FileNotFoundError(f"data root without a {split}/ folder: {', '.join(missing)} (each root needs train/ and test/ with class folders)")
    if classes is not None:
        scans = [scan_image_folder(Path(root) / split, classes=classes) for root in roots]
        if len(scans) == 1:
            return scans[0]
        root = Path(os.path.commonpath([str(Path(r).resolve()) for r in roots]))
        samples = sorted({(path.resolve(), label) for scan in scans for path, label in scan.samples}, key=lambda s: (s[1], str(s[0])))
        problems = [p for scan in scans for p in scan.problems if "not in the training classes" not in p[1]]
        return FolderScan(root=root, classes=list(classes), samples=samples, problems=problems)
    return merge_scans([scan_image_folder(Path(root) / split) for root in roots])


@dataclass
class DecodedImages:
    """Photos decoded once into uint8 CHW tensors, with their labels."""

    images: list[torch.Tensor]
    labels: list[int]
    paths: list[str]
    classes: list[str]
    problems: list[tuple[str, str]]


def _decode(path: Path, short_side: Optional[int]) -> torch.Tensor:
    image = load_rgb(path, short_side=short_side)
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).contiguous()


def decode_folder(
    scan: FolderScan,
    short_side: int = 256,
    cache_dir: Optional[Path] = None,
    use_cache: bool = True,
    workers: Optional[int] = None,
) -> DecodedImages:
    """Decode every photo of `scan` once (threads: Pillow releases the GIL while decoding).

    The result is cached in `cache_dir` under a name derived from the folder's identity, so a changed
    or different data set never reuses a stale cache. Unreadable photos are reported and left out.
    """
    cache_file = (cache_dir or default_cache_dir()) / f"decoded-{scan.identity(short_side)}.pt"
    if use_cache and cache_file.exists():
        cached = torch.load(cache_file, weights_only=True)
        return DecodedImages(**cached)

    def decode_one(sample: tuple[Path, int]):
        path, label = sample
        try:
            return _decode(path, short_side), label, str(path), None
        except BadImageError as error:
            return None, label, str(path), str(error)

    images, labels, paths = [], [], []
    problems = [(str(path), reason) for path, reason in scan.problems]
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        results = pool.map(decode_one, scan.samples)
        for tensor, label, path, error in tqdm(results, total=len(scan.samples), desc=f"decoding {scan.root.name}"):
            if error is not None:
                log.warning("skipping %s: %s", path, error)
                problems.append((path, error))
                continue
            images.append(tensor)
            labels.append(label)
            paths.append(path)
    decoded = DecodedImages(images=images, labels=labels, paths=paths, classes=scan.classes, problems=problems)
    if use_cache:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp")
        torch.save(decoded.__dict__, tmp)
        os.replace(tmp, cache_file)  # atomic: an interrupted run never leaves a half-written cache
    return decoded


class DecodedImageDataset(Dataset):
    """A map-style dataset over already-decoded uint8 images; `transform` does the rest."""

    def __init__(self, decoded: DecodedImages, indices: Optional[list[int]] = None, transform: Optional[Callable] = None):
        self.decoded = decoded
        self.indices = list(range(len(decoded.images))) if indices is None else list(indices)
        self.transform = transform
        self.classes = decoded.classes

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def targets(self) -> list[int]:
        return [self.decoded.labels[i] for i in self.indices]

    def raw(self, item: int) -> tuple[torch.Tensor, int]:
        """The decoded uint8 image and its label, before any transform."""
        index = self.indices[item]
        return self.decoded.images[index], self.decoded.labels[index]

    def __getitem__(self, item: int):
        index = self.indices[item]
        image = self.decoded.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, self.decoded.labels[index]


class JpegFolderDataset(Dataset):
    """The course starter's way: decode the JPEG from disk on every access (no cache).

    Kept as the baseline the benchmark compares against, and for data sets too large for memory.
    """

    def __init__(self, scan: FolderScan, indices: Optional[list[int]] = None, transform: Optional[Callable] = None, short_side: Optional[int] = None):
        self.scan = scan
        self.indices = list(range(len(scan.samples))) if indices is None else list(indices)
        self.transform = transform
        self.short_side = short_side
        self.classes = scan.classes

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def targets(self) -> list[int]:
        return [self.scan.samples[i][1] for i in self.indices]

    def raw(self, item: int) -> tuple[torch.Tensor, int]:
        """The decoded uint8 image and its label; a photo that fails to decode is reported and
        replaced by the next good one, so an epoch never crashes half-way."""
        for offset in range(len(self.indices)):
            path, label = self.scan.samples[self.indices[(item + offset) % len(self.indices)]]
            try:
                return _decode(path, self.short_side), label
            except BadImageError as error:
                log.warning("skipping %s: %s", path, error)
        raise RuntimeError(f"no readable image in {self.scan.root}")

    def __getitem__(self, item: int):
        image, label = self.raw(item)
        return (self.transform(image) if self.transform else image), label


def stratified_split(labels: list[int], valid_size: float, seed: int = 42) -> tuple[list[int], list[int]]:
    """Split indices into train/valid per class, seeded, so every class with >= 2 photos is in both."""
    if not 0 < valid_size < 1:
        raise ValueError(f"valid_size must be between 0 and 1, got {valid_size}")
    generator = np.random.default_rng(seed)
    train, valid = [], []
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    for label in sorted(by_class):
        members = generator.permutation(by_class[label]).tolist()
        n_valid = 0 if len(members) < 2 else min(len(members) - 1, max(1, round(len(members) * valid_size)))
        valid += members[:n_valid]
        train += members[n_valid:]
    return sorted(train), sorted(valid)


def stratified_subset(labels: list[int], limit: int, seed: int = 42) -> list[int]:
    """At most `limit` indices, spread over classes round-robin (for quick runs)."""
    if limit <= 0 or limit >= len(labels):
        return list(range(len(labels)))
    generator = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    queues = [generator.permutation(by_class[label]).tolist() for label in sorted(by_class)]
    chosen: list[int] = []
    while len(chosen) < limit:
        for queue in queues:
            if queue and len(chosen) < limit:
                chosen.append(queue.pop())
    return sorted(chosen)


def object_category(path: Path) -> str:
    """Caltech-style names: 'Faces_image_0079.jpg' -> 'Faces'."""
    return path.name.rsplit("_image_", 1)[0]


def split_no_landmark(folder: Path, seed: int = 42) -> dict[str, list[Path]]:
    """Split no-landmark photos BY OBJECT CATEGORY: even-numbered categories train/valid the
    background class, odd-numbered ones are held out for measurement only."""
    photos = sorted(p for p in Path(folder).rglob("*") if p.is_file() and is_image_file(p))
    if not photos:
        raise FileNotFoundError(f"no photos found under {folder} (expected images of things that are not landmarks)")
    categories = sorted({object_category(p) for p in photos})
    used = {c for i, c in enumerate(categories) if i % 2 == 0}
    train_pool = [p for p in photos if object_category(p) in used]
    held_out = [p for p in photos if object_category(p) not in used]
    labels = [categories.index(object_category(p)) for p in train_pool]
    train_idx, valid_idx = stratified_split(labels, 0.25, seed)
    return {"train": [train_pool[i] for i in train_idx], "valid": [train_pool[i] for i in valid_idx], "held_out": held_out}


def decode_paths(paths: list[Path], root: Path, name: str) -> list[torch.Tensor]:
    scan = FolderScan(root=root, classes=[name], samples=[(p, 0) for p in paths])
    return decode_folder(scan).images


def every_training_photo(datasets: dict) -> DecodedImageDataset:
    """train + valid as one dataset, in the training folder's order (as `src.training.crossval` reads it, so
    the two share cached activations)."""
    train, valid = datasets["train"], datasets["valid"]
    return DecodedImageDataset(train.decoded, sorted(train.indices + valid.indices))

