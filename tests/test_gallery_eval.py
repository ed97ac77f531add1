"""The gallery measurement's embedding candidates (scripts.gallery_eval), on made-up vectors."""

import numpy as np

from scripts.gallery_eval import CANDIDATES, Features, choose_embedding, embedding_vectors


def _features(tmp_path, with_flip: bool) -> Features:
    rng = np.random.default_rng(0)
    labels = np.repeat([f"{i:02d}.Place" for i in range(4)], 12)
    centres = rng.normal(size=(4, 8))
    arrays = {"class_names": np.array(["00.Known", "no_landmark"]), "world_train/labels": labels}
    for name, noise in (("pooled", 0.3), ("gem", 0.6), ("imagenet", 3.0)):
        vectors = centres[np.arange(48) // 12] + noise * rng.normal(size=(48, 8))
        arrays[f"world_train/{name}"] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        if with_flip:
            arrays[f"world_train/{name}_flip"] = arrays[f"world_train/{name}"][::-1].copy()
    np.savez(tmp_path / "f.npz", **arrays)
    return Features([tmp_path / "f.npz"])


def test_variants_are_measured_where_the_features_allow_and_never_chosen(tmp_path):
    plain = _features(tmp_path, with_flip=False)
    assert embedding_vectors(plain, "world_train", "pooled+flip") is None
    both = embedding_vectors(plain, "world_train", "pooled+imagenet")
    assert both.shape == (48, 16) and np.allclose(np.linalg.norm(both, axis=1), 1)
    report = choose_embedding(plain, seed=0, draws=2)
    assert set(report["accuracy"]["k5"]) == set(CANDIDATES) | {"pooled+imagenet"}
    assert report["chosen"] == "pooled" and report["accuracy"]["k5"]["pooled"] > report["accuracy"]["k5"]["imagenet"]
    flipped = _features(tmp_path, with_flip=True)
    mirrored = embedding_vectors(flipped, "world_train", "gem+flip")
    expected = flipped.get("world_train", "gem") + flipped.get("world_train", "gem_flip")
    assert np.allclose(mirrored, expected / np.linalg.norm(expected, axis=1, keepdims=True))
    assert "imagenet+flip" in choose_embedding(flipped, seed=0, draws=2)["accuracy"]["half"]
