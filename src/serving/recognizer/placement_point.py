"""Which placement rule a recognizer serves and at which point: the rule beside the model file
(`src.evaluation.placement`), or one point made from older files' metadata, or a probability given by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from src.evaluation.placement import DEFAULT_POINT, SERVED_SCORES, PlacementRule, load_rule


def placement_rule_of(model_path: Path, metadata: dict) -> PlacementRule:
    """The placement rule beside the model (`<model>.placement.json`), else one point from the
    model's own `min_confidence` (files exported before placement rules), else its naming threshold."""
    rule = load_rule(model_path)
    if rule is not None:
        if rule.score not in SERVED_SCORES:  # a score `decide` does not compute would be silently misapplied
            raise ValueError(f"{model_path}: placement score {rule.score!r} is not served (only {', '.join(SERVED_SCORES)}); rewrite "
                             "the rule with python -m src.evaluation.placement ... --shipped probability --write-rule MODEL")
        return rule
    fallback = float(metadata.get("min_confidence", metadata.get("threshold", 0.5)))
    return PlacementRule(score="probability", thresholds={DEFAULT_POINT: fallback}, record="the model's min_confidence")


def placement_point(rule: PlacementRule, placement: Optional[str | float]) -> tuple[str, str, float, Optional[float]]:
    """(name, score, threshold, taught threshold) of a named point of `rule` (None: its default), or of a
    probability given as a number (e.g. the tagger's --min-confidence: the score is then the probability).
    The taught threshold (a probability) is None where taught landmarks obey the score and threshold."""
    if placement is None:
        placement = rule.default
    try:
        value = float(placement)
    except ValueError:
        name = str(placement)
        return name, rule.score, rule.threshold(name), rule.taught_threshold(name)  # raises for an unknown name, listing the points
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"a placement threshold is a probability between 0 and 1, got {value}")
    return "min-confidence", "probability", value, None
