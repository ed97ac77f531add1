"""A small generated ImageFolder data set, for tests, quick notebook runs and the benchmark smoke test.

Each class is a coloured shape on a noisy background, written as real JPEG files, so the whole
pipeline (decode, cache, augment, train, export) runs on it in seconds without any download.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageOps

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


# Pictures that show nothing a landmark tagger may name: what users upload by mistake or on purpose.
DEGENERATE_KINDS = ("solid", "gradient", "sky", "noise", "dark", "bright", "tiny", "text")


def _degenerate(kind: str, rng: np.random.Generator) -> Image.Image:
    width, height = int(rng.integers(160, 641)), int(rng.integers(160, 641))
    if kind == "solid":
        return Image.new("RGB", (width, height), tuple(int(c) for c in rng.integers(0, 256, 3)))
    if kind in ("gradient", "sky"):
        if kind == "sky":  # deep blue at the top to pale near the horizon
            top = np.array([rng.integers(20, 90), rng.integers(90, 160), rng.integers(180, 256)])
            bottom = np.array([rng.integers(170, 240), rng.integers(200, 245), rng.integers(225, 256)])
        else:
            top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        ramp = np.linspace(0.0, 1.0, height)[:, None, None] * np.ones((1, width, 1))
        if kind == "gradient" and rng.random() < 0.5:
            ramp = np.linspace(0.0, 1.0, width)[None, :, None] * np.ones((height, 1, 1))
        pixels = top * (1 - ramp) + bottom * ramp + rng.normal(0, 1.5, (height, width, 3))
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if kind == "noise":
        if rng.random() < 0.5:
            return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        return Image.fromarray(np.clip(rng.normal(128, rng.uniform(10, 80), (height, width, 3)), 0, 255).astype(np.uint8))
    if kind in ("dark", "bright"):
        level = rng.integers(0, 25) if kind == "dark" else rng.integers(232, 256)
        pixels = level + rng.normal(0, rng.uniform(0.5, 4.0), (height, width, 3))
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if kind == "tiny":
        side = (int(rng.integers(1, 32)), int(rng.integers(1, 32)))
        return Image.fromarray(rng.integers(0, 256, (side[1], side[0], 3), dtype=np.uint8)).resize(side)
    if kind == "text":
        paper, ink = (255, 255, 255), (20, 20, 20)
        if rng.random() < 0.3:
            paper, ink = (30, 30, 36), (220, 220, 220)  # dark-mode screenshot
        image = Image.new("RGB", (width, height), paper)
        draw = ImageDraw.Draw(image)
        words = ["the", "landmark", "photo", "upload", "settings", "menu", "ok", "cancel", "share", "2026", "file", "edit"]
        for y in range(6, height - 10, int(rng.integers(12, 22))):
            line = " ".join(rng.choice(words, size=int(rng.integers(2, 9))))
            draw.text((int(rng.integers(4, 20)), y), line, fill=ink)
        return image
    raise ValueError(f"unknown kind {kind!r}; choose from {DEGENERATE_KINDS}")


def make_degenerate_images(n: int, seed: int = 0, kinds: tuple[str, ...] = DEGENERATE_KINDS) -> list[tuple[str, Image.Image]]:
    """`n` generated non-photos, the kinds in turn: (kind, RGB image). Seeded: the same set every time."""
    rng = np.random.default_rng(seed)
    return [(kinds[i % len(kinds)], _degenerate(kinds[i % len(kinds)], rng)) for i in range(n)]


def degenerate_tensors(n: int, seed: int = 0, short_side: int = 256) -> list[torch.Tensor]:
    """`make_degenerate_images` as uint8 [3, H, W] tensors, shrunk like decoded photos (short side at
    most `short_side`; tiny ones stay tiny): training and measuring "never name a non-photo"."""
    tensors = []
    for _, image in make_degenerate_images(n, seed):
        if min(image.size) > short_side:
            scale = short_side / min(image.size)
            image = ImageOps.contain(image, (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.BILINEAR)
        tensors.append(torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1))
    return tensors
