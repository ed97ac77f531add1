"""The gallery index at scale: build time, query time and memory for 10k, 100k and 1M synthetic
vectors, exact numpy search vs faiss (IVF; HNSW up to --hnsw-max), and the recall of the approximate
ones (is the nearest landmark the exact search's?). Also the enrolment time per photo with a real
exported model on real photos.

    python -m scripts.gallery_bench [--sizes 10000 100000 1000000] [--dim 1280] [--queries 200]
        [--model checkpoints/transfer_exported.pt --photos ../shared/world_landmarks/train/00.Alhambra]

Synthetic vectors: unit vectors around one centre per landmark (5 photos each), like a gallery of
many landmarks with a few photos of each. Prints one line per (size, index) and a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from src.serving.gallery.gallery_index import GalleryIndex, IndexConfig

PHOTOS_PER_LANDMARK = 5


def synthetic(n: int, dim: int, rng: np.random.Generator, noise: float = 0.02, chunk: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    landmarks = max(1, n // PHOTOS_PER_LANDMARK)
    centres = rng.standard_normal((landmarks, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.arange(n) // PHOTOS_PER_LANDMARK
    vectors = np.empty((n, dim), np.float32)
    for start in range(0, n, chunk):  # in chunks: the noise of 1M x 1280 at once would double the memory
        part = centres[labels[start : start + chunk]] + noise * rng.standard_normal((min(chunk, n - start), dim), dtype=np.float32)
        vectors[start : start + chunk] = part / np.linalg.norm(part, axis=1, keepdims=True)
    return vectors, labels


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_index(vectors, labels, queries, config: IndexConfig, truth=None) -> dict:
    start = time.perf_counter()
    index = GalleryIndex(vectors, labels, int(labels.max()) + 1, config)
    build = time.perf_counter() - start
    times, best = [], []
    for query in queries:  # one photo at a time, as the service answers them
        t = time.perf_counter()
        best.append(int(index.landmark_similarity(query[None])[0].argmax()))
        times.append(time.perf_counter() - t)
    index_mb = (index.faiss_index.ntotal * vectors.shape[1] * 4 / 1e6) if index.faiss_index is not None else vectors.nbytes / 1e6
    result = {"index": index.kind, "build_s": build, "query_ms_p50": 1e3 * float(np.median(times)),
              "query_ms_p95": 1e3 * float(np.percentile(times, 95)), "vectors_mb": index_mb, "peak_rss_mb": rss_mb(), "best": best}
    if truth is not None:
        result["recall_at_1"] = float(np.mean(np.array(best) == np.array(truth)))
    return result


def bench_enrolment(model: Path, photos: Path, repeats: int) -> dict:
    """Milliseconds per photo for `Gallery.add` (decode, one model pass, thumbnail), photos in one batch."""
    from scripts.gallery_features import embed_batch
    from src.data.transforms import batchable_square
    from src.export import load_exported
    from src.serving.gallery.gallery import Gallery

    module, metadata = load_exported(model, optimize=False)
    side = int(metadata.get("preprocessing", {}).get("resize", 256))
    if hasattr(module, "probabilities_and_embedding"):
        frozen, _ = load_exported(model)
        embed = lambda images: frozen.probabilities_and_embedding(torch.stack([batchable_square(i, side) for i in images]))[1].numpy()
    else:  # a file exported before embeddings: the same single pass through its submodules
        embed = lambda images: embed_batch(module, torch.stack([batchable_square(i, side) for i in images]))[1].numpy()
    files = sorted(p for p in photos.iterdir() if p.is_file())[:20]
    with torch.no_grad():
        for _ in range(3):  # warm up: a TorchScript module optimises itself on its first calls
            embed([Image.open(files[0]).convert("RGB")])
    seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            gallery = Gallery(Path(tmp) / "g")
            start = time.perf_counter()
            with torch.no_grad():
                gallery.add(f"Landmark {r}", files, embed, "bench", latitude=0, longitude=0)
            seconds.append((time.perf_counter() - start) / len(files))
    return {"photos": len(files), "ms_per_photo_median": 1e3 * float(np.median(seconds)), "repeats": repeats, "model": str(model)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=1280, help="embedding width (EfficientNet-Lite0's pooled features: 1280)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--hnsw-max", type=int, default=100_000, help="largest size to build HNSW for (slow to build)")
    parser.add_argument("--exact-max", type=int, default=1_000_000, help="largest size to time exact search for")
    parser.add_argument("--model", type=Path, default=None, help="also time enrolment with this exported model")
    parser.add_argument("--photos", type=Path, default=None, help="folder of photos for the enrolment timing")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    summary = {"dim": args.dim, "queries": args.queries, "threads": torch.get_num_threads(), "rows": []}
    for n in tqdm(args.sizes, desc="sizes", ncols=90):
        vectors, labels = synthetic(n, args.dim, rng)
        picks = rng.choice(n, size=args.queries, replace=False)
        queries = vectors[picks] + 0.02 * rng.standard_normal((args.queries, args.dim), dtype=np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        truth = None
        configs = []
        if n <= args.exact_max:
            configs.append(IndexConfig(exact_limit=n))
        configs.append(IndexConfig(exact_limit=0, approximate="ivf"))
        if n <= args.hnsw_max:
            configs.append(IndexConfig(exact_limit=0, approximate="hnsw"))
        for config in configs:
            row = bench_index(vectors, labels, queries, config, truth)
            if row["index"] == "exact":
                truth = row["best"]
            row.pop("best")
            row["size"] = n
            summary["rows"].append(row)
            print(json.dumps(row), flush=True)
        del vectors
    if args.model and args.photos:
        summary["enrolment"] = bench_enrolment(args.model, args.photos, args.repeats)
        print(json.dumps(summary["enrolment"]), flush=True)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
