"""The placement rule: the budgets of the named points (`POINTS`), and the rule shipped beside a model
(`<model>.placement.json`: a score and a threshold per point) that the tagger, service and app place by."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class Budget:
    """What a placement point may cost, each a share of its group's photos."""

    unknown: float  # photos of landmarks the model never saw that get a position
    known_wrong: float = 0.005  # known landmarks' photos that get the wrong position
    objects: float = 0.005  # object photos that get a position


POINTS: dict[str, Budget] = {"strict": Budget(unknown=0.01), "balanced": Budget(unknown=0.05)}
DEFAULT_POINT = "strict"


# ---- the rule shipped beside a model ----------------------------------------------------------


@dataclass(frozen=True)
class PlacementRule:
    """What the tagger, service and app place by: a score (`SCORES`) and one threshold per named point.
    Stored beside the exported model as `<model>.placement.json` (`save_rule`, `load_rule`)."""

    score: str
    thresholds: dict[str, float]
    default: str = DEFAULT_POINT
    record: str = ""  # the run record the thresholds were read from
    # Probability thresholds per point for photos whose best landmark is taught (empty: `score` and
    # `thresholds` as for the trained ones). A taught landmark's few enrolled photos are never as close
    # to its other photos as a trained landmark's reference photos are to its own, so a score that
    # measures closeness would place almost none of them; its placement was measured on the
    # probability (scripts/whitening_eval.py, docs/gallery.md).
    taught: dict[str, float] = field(default_factory=dict)

    def threshold(self, point: Optional[str] = None) -> float:
        name = point or self.default
        if name not in self.thresholds:
            raise ValueError(f"unknown placement point {name!r}: choose one of {', '.join(self.thresholds)} or give a number")
        return self.thresholds[name]

    def taught_threshold(self, point: Optional[str] = None) -> Optional[float]:
        """The probability threshold for taught landmarks at `point`, or None (the rule's own score applies)."""
        return self.taught.get(point or self.default)


def tighten(rule: PlacementRule, unknown_scores: np.ndarray, source: str) -> PlacementRule:
    """`rule` with each named point (`POINTS`) raised, where needed, until at most its unknown budget of
    `unknown_scores` reaches it: the scores the shipped model itself gives photos of landmarks it never
    trained on (0 for a photo it does not name). Cross-validation's thresholds come from fold models,
    which are less sure of everything than a model trained on every photo."""
    scores = np.sort(np.asarray(unknown_scores, dtype=np.float64))[::-1]
    thresholds = dict(rule.thresholds)
    for name, threshold in rule.thresholds.items():
        allowed = int(POINTS[name].unknown * len(scores)) if name in POINTS else len(scores)
        if allowed < len(scores) and scores[allowed] >= threshold:
            thresholds[name] = math.ceil(scores[allowed] * 1e6 + 1) / 1e6  # just above it, in the rule file's 6 decimals
    return PlacementRule(rule.score, thresholds, rule.default, f"{rule.record}; raised on {source}", dict(rule.taught))


def rule_path(model_path: str | Path) -> Path:
    return Path(model_path).with_suffix(".placement.json")


def save_rule(rule: PlacementRule, model_path: str | Path) -> Path:
    path = rule_path(model_path)
    path.write_text(json.dumps(asdict(rule), indent=2) + "\n")
    return path


def load_rule(model_path: str | Path) -> Optional[PlacementRule]:
    """The rule beside the model, or None for a model exported before placement rules existed."""
    path = rule_path(model_path)
    if not path.exists():
        return None
    return PlacementRule(**json.loads(path.read_text()))
