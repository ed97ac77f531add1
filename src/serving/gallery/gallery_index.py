"""Nearest enrolled photos of a query embedding: exact numpy search for small galleries, faiss when large.

Embeddings are L2-normalised, so the inner product is the cosine similarity. The gallery asks one
question: for each enrolled landmark, how similar is its most similar photo to the query
(`landmark_similarity`). Exact search answers it from every vector; faiss (approximate: IVF by
default, HNSW on request) from the `neighbours` nearest ones, so a landmark with no photo among
them scores `MISSING`. IVF is the default for large galleries because it builds in seconds where
HNSW over wide embeddings takes far longer on a small CPU.
Sizes and speeds of both: `python -m scripts.gallery_bench`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MISSING = -1.0  # similarity of a landmark none of whose photos is among the neighbours (cosine >= -1)


@dataclass(frozen=True)
class IndexConfig:
    exact_limit: int = 10_000  # up to this many vectors exact search; it reads every vector per query (memory-bound)
    neighbours: int = 64  # approximate search: how many nearest photos to look at per query
    approximate: str = "ivf"  # "ivf" (inverted lists, flat vectors) or "hnsw" (graph)
    ivf_lists_per_sqrt: float = 1.0  # IVF lists = this * sqrt(vectors): few lists keep building quick on 2 cores
    ivf_probe: int = 16  # IVF lists searched per query (recall vs speed)
    hnsw_links: int = 32  # HNSW graph degree (more: better recall, more memory)
    hnsw_search: int = 128  # HNSW efSearch: candidates kept while searching (recall vs speed)


def _faiss():
    try:
        import faiss
    except ImportError as error:  # pragma: no cover - faiss-cpu is in requirements.txt
        raise ImportError("galleries above IndexConfig.exact_limit need faiss: pip install faiss-cpu") from error
    return faiss


class GalleryIndex:
    """vectors [N, D] (L2-normalised) with labels [N] in 0..n_landmarks-1."""

    def __init__(self, vectors: np.ndarray, labels: np.ndarray, n_landmarks: int, config: IndexConfig | None = None):
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        labels = np.asarray(labels, dtype=np.int64)
        if vectors.ndim != 2 or len(vectors) != len(labels):
            raise ValueError(f"expected vectors [N, D] and N labels, got {vectors.shape} and {labels.shape}")
        if len(labels) and (labels.min() < 0 or labels.max() >= n_landmarks):
            raise ValueError(f"labels must lie in 0..{n_landmarks - 1}")
        self.config = config or IndexConfig()
        order = np.argsort(labels, kind="stable")  # rows grouped by landmark: one reduceat per query batch
        self.vectors, self.labels, self.n_landmarks = vectors[order], labels[order], n_landmarks
        self.present, self.starts = np.unique(self.labels, return_index=True)
        self.faiss_index = self._build_faiss() if len(vectors) > self.config.exact_limit else None

    @property
    def kind(self) -> str:
        return "exact" if self.faiss_index is None else self.config.approximate

    def __len__(self) -> int:
        return len(self.labels)

    def _build_faiss(self):
        faiss, dim, config = _faiss(), self.vectors.shape[1], self.config
        if config.approximate == "hnsw":
            index = faiss.IndexHNSWFlat(dim, config.hnsw_links, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = config.hnsw_search
        elif config.approximate == "ivf":
            lists = max(1, int(config.ivf_lists_per_sqrt * np.sqrt(len(self.vectors))))
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
            sample = np.random.default_rng(0).choice(len(self.vectors), size=min(len(self.vectors), 40 * lists), replace=False)
            index.train(self.vectors[np.sort(sample)])
            index.nprobe = config.ivf_probe
        else:
            raise ValueError(f"IndexConfig.approximate must be 'ivf' or 'hnsw', got {config.approximate!r}")
        index.add(self.vectors)
        return index

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities [Q, k], row ids into `self.labels` [Q, k]) of the k nearest vectors, best
        first; id -1 pads (faiss)."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = min(k, len(self))
        if k == 0:
            return np.empty((len(queries), 0), np.float32), np.empty((len(queries), 0), np.int64)
        if self.faiss_index is not None:
            return self.faiss_index.search(queries, k)
        sims = queries @ self.vectors.T
        ids = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < sims.shape[1] else np.tile(np.arange(sims.shape[1]), (len(sims), 1))
        top = np.take_along_axis(sims, ids, axis=1)
        order = np.argsort(-top, axis=1)
        return np.take_along_axis(top, order, axis=1), np.take_along_axis(ids, order, axis=1)

    def landmark_similarity(self, queries: np.ndarray) -> np.ndarray:
        """[Q, n_landmarks]: per landmark, the similarity of its most similar enrolled photo."""
        queries = np.atleast_2d(queries)
        out = np.full((len(queries), self.n_landmarks), MISSING, dtype=np.float32)
        if len(self) == 0:
            return out
        if self.faiss_index is None:  # exact: every vector, per-landmark maximum
            sims = np.ascontiguousarray(queries, dtype=np.float32) @ self.vectors.T
            out[:, self.present] = np.maximum.reduceat(sims, self.starts, axis=1)
            return out
        sims, ids = self.search(queries, self.config.neighbours)
        for row in range(len(queries)):
            keep = ids[row] >= 0
            np.maximum.at(out[row], self.labels[ids[row][keep]], sims[row][keep])
        return out
