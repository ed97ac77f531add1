"""scripts.whitening_eval on tiny synthetic arrays: the whitening, the augmentation, and the agreement
of its taught-landmark scoring with `src.training.openset_cv.teach_fold`."""

import numpy as np

from scripts.whitening_eval import augment, check_against_teach_fold, fit_whitening, normalize, with_background


def test_full_whitening_decorrelates_the_fitted_photos():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6)) + 3.0
    whitening = fit_whitening(x, 4, 0.0)
    projected = (x - whitening.mean) @ whitening.projection
    assert np.allclose(np.cov(projected, rowvar=False), np.eye(4), atol=1e-3)
    assert np.allclose(np.linalg.norm(whitening(x), axis=1), 1.0, atol=1e-5)
    rotation = fit_whitening(x, 6, 1.0)  # shrink 1: every direction scaled alike, so cosines of centred rows kept
    centred = normalize(x - x.mean(axis=0))
    assert np.allclose(rotation(x) @ rotation(x).T, centred @ centred.T, atol=1e-4)


def test_query_expansion_moves_a_photo_towards_its_nearest():
    database = normalize(np.array([[1.0, 0.0], [0.0, 1.0]]))
    query = normalize(np.array([[0.9, 0.1]]))
    expanded = augment(query, database, k=1)
    assert expanded[0, 0] > query[0, 0] and np.isclose(np.linalg.norm(expanded), 1.0)
    assert np.allclose(augment(database, database, k=1, include_self=True), database)  # its own nearest only
    assert augment(query, database, k=0) is query


def synthetic_fold(rng: np.random.Generator) -> dict:
    """30 trained classes in the references, 3 left-out landmarks, objects in 4 categories of 5."""
    centres = normalize(rng.normal(size=(40, 16)))

    def photos(classes: np.ndarray) -> np.ndarray:
        return normalize(centres[classes] + 0.6 * rng.normal(size=(len(classes), 16))).astype(np.float16)

    def probs(n: int) -> np.ndarray:
        p = rng.dirichlet(np.full(31, 0.1), size=n).astype(np.float32)
        return p

    known_truth, unknown_truth, reference_truth = rng.integers(0, 30, 60), np.repeat([30, 31, 32], 9), np.repeat(np.arange(30), 4)
    fold = {"known_classes": np.arange(30), "references_embedding": photos(reference_truth), "references_truth": reference_truth,
            "other_embedding": photos(np.full(5, 39))}
    for group, truth, centre in (("known", known_truth, known_truth), ("unknown", unknown_truth, unknown_truth),
                                 ("objects", np.full(20, -1), np.full(20, 35)), ("generated", np.full(8, -1), np.full(8, 36))):
        fold.update({f"{group}_probs": probs(len(truth)), f"{group}_embedding": photos(centre), f"{group}_truth": truth})
    return fold


def test_taught_scoring_agrees_with_teach_fold():
    fold = with_background(synthetic_fold(np.random.default_rng(1)), per_category=5)
    assert len(fold["background_embedding"]) == 10 and len(fold["objects_truth"]) == 10
    for seed in (0, 3):
        rates = check_against_teach_fold(fold, seed, threshold=0.3)  # raises when the two disagree
        assert rates["taught_photos_scored"] == 3 * (9 - 5)
