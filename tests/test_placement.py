"""The placement rule (src.evaluation.placement): scores, curve, chosen points, stream precision, storage."""

import numpy as np
import pytest

from src.evaluation.placement import (
    Budget,
    CurvePoint,
    PlacementRule,
    PooledScores,
    choose_point,
    first_references,
    load_fold_outputs,
    load_rule,
    nearest_is_other,
    placement_curve,
    placement_report,
    rates,
    save_fold_outputs,
    save_rule,
    score_mirror,
    score_probability,
    score_probability_times_reference,
    score_reference,
    stream_precision,
    tighten,
)


def _fold(rng: np.random.Generator, n_known: int = 200, n_unknown: int = 300) -> dict[str, np.ndarray]:
    """A fold of 3 known landmarks (global ids 0, 2, 5) + background: known photos sure of the right
    landmark, unknown photos spread out, objects and generated images given to the background."""

    def probs(n: int, sure: float, label: np.ndarray | None) -> np.ndarray:
        p = rng.dirichlet(np.ones(4), size=n).astype(np.float32) * (1 - sure)
        columns = label if label is not None else rng.integers(0, 3, size=n)
        p[np.arange(n), columns] += sure
        return p

    known_truth_local = rng.integers(0, 3, size=n_known)
    fold = {
        "known_classes": np.array([0, 2, 5]), "temperature": np.float32(1.0),
        "known_probs": probs(n_known, 0.97, known_truth_local), "known_truth": np.array([0, 2, 5])[known_truth_local],
        "unknown_probs": probs(n_unknown, 0.6, None), "unknown_truth": np.full(n_unknown, 7),
        "objects_probs": probs(50, 0.9, np.full(50, 3)), "objects_truth": np.full(50, -1),
        "generated_probs": probs(20, 0.99, np.full(20, 3)), "generated_truth": np.full(20, -1),
    }
    for group in ("known", "unknown", "objects", "generated"):
        fold[f"{group}_mirror_probs"] = fold[f"{group}_probs"][::-1].copy() if group == "unknown" else fold[f"{group}_probs"]
        fold[f"{group}_embedding"] = rng.normal(size=(len(fold[f"{group}_probs"]), 8)).astype(np.float16)
    fold["references_embedding"] = rng.normal(size=(12, 8)).astype(np.float16)
    fold["references_truth"] = np.repeat([0, 2, 5], 4)
    fold["other_embedding"] = rng.normal(size=(5, 8)).astype(np.float16)
    return fold


def test_probability_score_is_zero_where_the_background_wins():
    fold = {"known_probs": np.array([[0.7, 0.1, 0.2], [0.2, 0.1, 0.7]], dtype=np.float32)}
    best, score = score_probability(fold, "known")
    assert best.tolist() == [0, 0] and score.tolist() == pytest.approx([0.7, 0.0])


def test_mirror_score_needs_both_looks_sure_of_the_same_landmark():
    fold = {"known_probs": np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05]], dtype=np.float32),
            "known_mirror_probs": np.array([[0.8, 0.1, 0.1], [0.1, 0.85, 0.05]], dtype=np.float32)}
    best, score = score_mirror(fold, "known")
    assert best.tolist() == [0, 0] and score.tolist() == pytest.approx([0.8, 0.1])


def test_nearest_is_other_compares_the_best_landmarks_references_with_the_distractors():
    references = np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32)
    truth = np.array([0, 1])
    others = np.array([[0, 0, 1]], dtype=np.float32)
    photos = np.array([[0.9, 0.1, 0.0], [0.1, 0.0, 0.9]], dtype=np.float32)
    assert nearest_is_other(photos, np.array([0, 0]), references, truth, others).tolist() == [False, True]
    assert nearest_is_other(photos, np.array([0, 0]), references, truth, others[:0]).tolist() == [False, False]


def test_rates_and_the_chosen_point_keep_to_the_budget():
    pooled = PooledScores(
        scores={"known": np.array([0.99, 0.97, 0.9, 0.5]), "unknown": np.array([0.98, 0.6, 0.3, 0.2]),
                "objects": np.array([0.1]), "generated": np.array([0.0])},
        known_correct=np.array([True, True, False, True]),
    )
    point = rates(pooled, 0.95)
    assert (point.known_placed_right, point.known_placed_wrong, point.unknown_placed) == (0.5, 0.0, 0.25)
    curve = placement_curve(pooled)
    strict = choose_point(curve, Budget(unknown=0.0))
    assert strict is not None and strict.unknown_placed == 0 and strict.known_placed_right == 0.25
    loose = choose_point(curve, Budget(unknown=0.25, known_wrong=0.25))
    assert loose.known_placed_right >= strict.known_placed_right and loose.threshold < strict.threshold
    assert choose_point([CurvePoint(0.5, 0.9, 0.0, 0.2, 0.0, 0.01)], Budget(unknown=0.5)) is None  # a generated image placed


def test_stream_precision_weighs_known_and_unknown_photos():
    point = CurvePoint(0.99, known_placed_right=0.8, known_placed_wrong=0.0, unknown_placed=0.01, objects_placed=0, generated_placed=0)
    assert stream_precision(point, 0.5) == pytest.approx(0.8 / 0.81)
    assert stream_precision(point, 0.1) == pytest.approx(0.08 / (0.08 + 0.009))
    assert stream_precision(CurvePoint(1.0, 0, 0, 0, 0, 0), 0.5) == 1.0  # nothing written, nothing wrong


def test_report_over_saved_folds(tmp_path):
    rng = np.random.default_rng(0)
    folds = [_fold(rng), _fold(rng)]
    path = tmp_path / "outputs.npz"
    save_fold_outputs(path, folds, ["a", "b", "c", "d", "e", "f", "g", "h", "no_landmark"])
    loaded, classes = load_fold_outputs(path)
    assert classes[-1] == "no_landmark" and len(loaded) == 2
    assert set(loaded[0]) == set(folds[0]) and np.array_equal(loaded[1]["known_probs"], folds[1]["known_probs"])
    report = placement_report(loaded, classes, class_roots=["india"] * 4 + ["world"] * 5)
    assert set(report["scores"]) == {"probability", "mirror", "distractors", "mirror+distractors", "reference", "probability*reference"}
    strict = report["scores"]["probability"]["points"]["strict"]
    assert strict["unknown_placed"] <= 0.01 and strict["known_placed_right"] > 0.5
    assert set(strict["per_root"]) == {"india", "world"} and set(strict["stream_precision"]) == {"10%", "50%", "90%"}
    assert report["photos"] == {"known": 400, "unknown": 600, "objects": 100, "generated": 40, "others": 0}


def test_rule_beside_the_model(tmp_path):
    model = tmp_path / "m.pt"
    assert load_rule(model) is None
    rule = PlacementRule(score="probability", thresholds={"strict": 0.999, "balanced": 0.98}, record="crossval-x.json")
    save_rule(rule, model)
    assert (tmp_path / "m.placement.json").exists() and load_rule(model) == rule
    assert rule.threshold() == 0.999 and rule.threshold("balanced") == 0.98
    with pytest.raises(ValueError, match="strict, balanced"):
        rule.threshold("loose")


def test_landmarks_a_few_hundred_metres_apart_are_one_place():
    from src.data.landmarks import distance_km, lookup, sites
    from src.training.openset_cv import landmark_groups

    names = ["20.Qutub_Minar", "16.Eiffel_Tower", "15.Iron_Pillar", "11.Louvre", "99.Somewhere_Unknown", "01.Alai_Darwaza"]
    assert distance_km(lookup("16.Eiffel_Tower"), lookup("11.Louvre")) == pytest.approx(3.2, abs=0.2)
    assert sites(names) == [[0, 2, 5], [1], [3], [4]]  # Qutub complex together; Paris landmarks km apart stay apart
    folds = landmark_groups(len(names), 2, seed=0, places=sites(names))
    assert any({0, 2, 5} <= set(fold) for fold in folds) and sorted(sum(folds, [])) == list(range(6))


def test_per_landmark_thresholds_spend_the_unknown_budget_where_it_buys_most():
    from src.evaluation.placement import per_landmark_thresholds

    known_score = np.array([0.99, 0.98, 0.97, 0.96, 0.95, 0.99, 0.92])
    known_class = np.array([0, 0, 0, 0, 0, 1, 1])
    right = np.ones(7, dtype=bool)
    unknown_score, unknown_class = np.array([0.975, 0.93]), np.array([0, 1])
    free = per_landmark_thresholds(known_score, known_class, right, unknown_score, unknown_class, max_unknown=0, floor=0.9)
    assert free[0] == pytest.approx(0.975) and free[1] == pytest.approx(0.93)  # just above each landmark's surest unknown photo
    one = per_landmark_thresholds(known_score, known_class, right, unknown_score, unknown_class, max_unknown=1, floor=0.9)
    assert one[0] == 0.9 and one[1] == pytest.approx(0.93)  # landmark 0's unknown photo buys 3 right positions, landmark 1's only 1
    assert per_landmark_thresholds(known_score, known_class, right, unknown_score[:0], unknown_class[:0], 5, floor=0.9) == {0: 0.9, 1: 0.9}


def test_a_rule_whose_score_serving_does_not_compute_is_refused(tiny_model, tmp_path):
    import shutil

    from src.serving.recognizer.recognize import Recognizer

    model = tmp_path / "m.pt"
    shutil.copyfile(tiny_model, model)
    save_rule(PlacementRule(score="mirror", thresholds={"strict": 0.99}), model)
    with pytest.raises(ValueError, match="placement score 'mirror' is not served"):
        Recognizer(model, use_gallery=False)


def test_reference_score_is_the_similarity_to_the_best_landmarks_nearest_photo():
    """Two photos both sure of landmark 0: the one far from every photo of landmark 0 scores lower, once
    alone and once times its probability; a photo the background wins scores 0."""
    fold = {
        "known_classes": np.array([0, 3]),
        "known_probs": np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.1, 0.1, 0.8]], dtype=np.float32),
        "known_embedding": np.array([[1, 0, 0], [0, 0, 1], [1, 0, 0]], dtype=np.float32),
        "references_embedding": np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32),
        "references_truth": np.array([0, 3]),
    }
    best, score = score_reference(fold, "known")
    assert best.tolist()[:2] == [0, 0] and score.tolist() == pytest.approx([1.0, 0.5, 0.0])
    _, product = score_probability_times_reference(fold, "known")
    assert product.tolist() == pytest.approx([0.9, 0.45, 0.0])


def test_first_references_keeps_each_landmarks_first_photos():
    fold = {"references_embedding": np.arange(6, dtype=np.float32)[:, None], "references_truth": np.array([0, 0, 0, 2, 2, 5])}
    kept = first_references(fold, 2)
    assert kept["references_truth"].tolist() == [0, 0, 2, 2, 5] and kept["references_embedding"][:, 0].tolist() == [0, 1, 3, 4, 5]


def test_tighten_raises_a_point_until_the_model_places_at_most_its_budget_of_unknown_photos():
    rule = PlacementRule(score="probability*reference", thresholds={"strict": 0.9, "balanced": 0.8}, record="cv")
    scores = np.concatenate([np.linspace(0.95, 0.91, 5), np.full(95, 0.5)])  # 5 of 100 never-trained photos reach strict
    raised = tighten(rule, scores, "others")
    assert 0.94 < raised.thresholds["strict"] <= 0.95 and (scores >= raised.thresholds["strict"]).sum() == 1  # 1 % of 100
    assert raised.thresholds["balanced"] == 0.8  # 5 of 100 placed: within its 5 %, left as it was
    assert raised.score == rule.score and raised.record == "cv; raised on others"
    assert tighten(rule, np.zeros(100), "others").thresholds == rule.thresholds  # a point is only ever raised


def test_placement_check_raises_and_writes_the_rule_on_landmarks_the_model_never_saw(tiny_model, tiny_data, tmp_path, capsys):
    import shutil

    from scripts.placement_check import main as placement_check
    from src.data.synthetic import CLASS_NAMES, make_synthetic_dataset

    model = tmp_path / "m.pt"
    shutil.copyfile(tiny_model, model)
    save_rule(PlacementRule(score="probability", thresholds={"strict": 0.0, "balanced": 0.0}, record="cv"), model)
    generated = make_synthetic_dataset(tmp_path / "new", n_classes=4, n_train=30, n_test=1, with_bad_files=False, seed=3)
    never_trained = tmp_path / "never_trained"
    shutil.copytree(generated / "train" / CLASS_NAMES[3], never_trained / CLASS_NAMES[3])  # a class the tiny model does not have
    runs = tmp_path / "runs"
    common = ["--model", str(model), "--known", str(tiny_data / "test"), "--generated", "0", "--runs", str(runs)]
    assert placement_check([*common, "--tighten-on", str(never_trained), "--write-rule"]) == 0
    rule = load_rule(model)
    assert rule.thresholds["strict"] > 0.0 and rule.record.startswith("cv; raised on")
    assert f"strict: 0 -> {rule.thresholds['strict']:g} (0 of 30 placed)" in capsys.readouterr().out  # 1 % of 30 rounds to 0
    assert len(list(runs.glob("evaluate-placement-strict-*.json"))) == 1
    with pytest.raises(SystemExit):  # the tiny model's own landmarks are no measure of unknown ones
        placement_check([*common, "--tighten-on", str(tiny_data / "train")])
