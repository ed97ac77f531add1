"""A small generated ImageFolder data set, for tests, quick notebook runs and the benchmark smoke test.

Each class is a coloured shape on a noisy background, written as real JPEG files, so the whole
pipeline (decode, cache, augment, train, export) runs on it in seconds without any download.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASS_NAMES = ("00.Red_Circle_Tower", "01.Green_Square_Gate", "02.Blue_Triangle_Temple", "03.Yellow_Bar_Bridge")
_COLOURS = ((220, 40, 40), (40, 200, 60), (50, 80, 230), (230, 210, 40))


def _draw(class_index: int, rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    width, height = size
    background = rng.integers(0, 90, (height, width, 3), dtype=np.uint8)
    image = Image.fromarray(background)
    draw = ImageDraw.Draw(image)
    scale = min(width, height)
    cx, cy = width / 2 + rng.uniform(-0.1, 0.1) * width, height / 2 + rng.uniform(-0.1, 0.1) * height
    r = scale * rng.uniform(0.25, 0.35)
    colour = tuple(int(c) for c in np.clip(np.array(_COLOURS[class_index % 4]) + rng.integers(-25, 25, 3), 0, 255))
    shape = class_index % 4
    if shape == 0:
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif shape == 1:
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif shape == 2:
        draw.polygon(((cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)), fill=colour)
    else:
        draw.rectangle((cx - 1.4 * r, cy - 0.3 * r, cx + 1.4 * r, cy + 0.3 * r), fill=colour)
    return image


def make_synthetic_dataset(
    root: Path,
    n_classes: int = 3,
    n_train: int = 16,
    n_test: int = 6,
    size: tuple[int, int] = (320, 240),
    with_bad_files: bool = True,
    seed: int = 0,
) -> Path:
    """Write `root/{train,test}/<class>/<n>.jpg` and return root.

    with_bad_files adds what real folders contain: a truncated JPEG, a text file, a greyscale and an
    RGBA PNG photo, and an empty class folder. Loaders must report and skip or convert them.
    """
    if not 1 <= n_classes <= len(CLASS_NAMES):
        raise ValueError(f"n_classes must be between 1 and {len(CLASS_NAMES)}")
    rng = np.random.default_rng(seed)
    root = Path(root)
    for split, count in (("train", n_train), ("test", n_test)):
        for index, name in enumerate(CLASS_NAMES[:n_classes]):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(count):
                _draw(index, rng, size).save(folder / f"{n:03d}.jpg", quality=90)
    if with_bad_files:
        first = root / "train" / CLASS_NAMES[0]
        good = (first / "000.jpg").read_bytes()
        (first / "truncated.jpg").write_bytes(good[: len(good) // 3])
        (first / "notes.txt").write_text("not a photo")
        _draw(0, rng, size).convert("L").save(first / "grey.jpg")
        _draw(0, rng, size).convert("RGBA").save(first / "alpha.png")
        (root / "train" / "99.Empty_Folder").mkdir(exist_ok=True)
    return root
