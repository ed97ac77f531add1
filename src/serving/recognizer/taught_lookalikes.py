"""A trained landmark is not placed on a photo that a taught look-alike of it explains nearly as well.

A taught landmark wins a photo only by being closer to it than every reference photo of the trained
classes (`src.evaluation.gallery_rule.combine_by_reference`). When a user teaches a place the model
mistakes for one of its own (Sydney Opera House, which the model takes for the Lotus Temple), the photos
of the taught place that miss that margin fall back to the model, which names and places them as the
trained look-alike: a wrong position written with confidence. So the recognizer remembers which trained
classes each taught landmark's own enrolled photos look like (`lookalike_pairs`), and a photo named as
such a trained class is placed only where it is clearly closer to that class's reference photos than to
the taught look-alike's photos (`blocking_lookalike`); otherwise it is a guess ("looks like X").
Pure numpy: the recognizer applies it, `scripts/taught_check` measures it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np


@dataclass(frozen=True)
class LookalikeRule:
    """margin: how much closer to the trained class's nearest reference photo than to the taught look-alike's
    nearest enrolled photo a photo must be to be placed as the trained class (cosine similarity). Chosen on
    other_landmarks' TRAIN photos only (`python -m scripts.taught_check --queries train --lookalike-margin M`,
    docs/gallery.md); None turns the rule off."""

    margin: Optional[float] = 0.1


def lookalike_pairs(per_class: Sequence[np.ndarray], candidates: Sequence[int]) -> dict[int, list[int]]:
    """per_class: for each taught landmark, its enrolled photos' similarity to each trained class's nearest
    reference photo [photos, classes] (`References.nearest`); candidates: the classes that can be placed
    (not the "no landmark" ones). -> trained class -> the taught landmarks (their positions) for which at
    least one enrolled photo is closest to that class: the look-alikes the enrolment warning is about, and
    the ones it misses when only a few of the photos look like a known landmark."""
    pairs: dict[int, list[int]] = {}
    columns = np.asarray(candidates, dtype=int)
    for taught, similarity in enumerate(per_class):
        similarity = np.asarray(similarity)
        if similarity.size == 0 or columns.size == 0:
            continue
        for trained in sorted(set(columns[np.argmax(similarity[:, columns], axis=1)].tolist())):
            pairs.setdefault(int(trained), []).append(taught)
    return pairs


def blocking_lookalike(resemblance: np.ndarray, trained: int, n_classes: int, pairs: dict[int, list[int]],
                       rule: LookalikeRule) -> Optional[tuple[int, float]]:
    """resemblance: one photo's similarity to each trained class's nearest reference photo, then to each taught
    landmark's nearest enrolled photo [classes + taught]. -> (taught landmark position, its similarity) when a
    taught look-alike of `trained` comes within `rule.margin` of the trained class's reference similarity
    (the trained class does not clearly beat it), else None."""
    lookalikes = pairs.get(trained, [])
    if rule.margin is None or not lookalikes:
        return None
    taught_similarity = np.asarray(resemblance)[[n_classes + j for j in lookalikes]]
    closest = int(np.argmax(taught_similarity))
    if float(taught_similarity[closest]) + rule.margin > float(resemblance[trained]):
        return lookalikes[closest], float(taught_similarity[closest])
    return None
