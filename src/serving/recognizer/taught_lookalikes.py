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
    nearest enrolled photo a photo must be to be placed as the trained class (cosine similarity); share: the
    least share of a taught landmark's enrolled photos closest to a trained class that makes it that class's
    look-alike (0.5: as the enrolment warning says it; 0: one photo is enough). None as margin turns the rule off.

    Chosen on TRAIN photos only (`python -m scripts.lookalike_margin`, record gallery-lookalike-margin-ca0b6df8.json:
    share 0, 0.4, 0.5 and margin 0.1-0.4, 3 draws): other_landmarks' training photos not enrolled placed wrong
    0.72 % without the rule, 0.54 / 0.27 / 0.18 / 0.09 / 0 % at margin 0.1 / 0.15 / 0.2 / 0.25 / 0.3 (share 0.5),
    while known landmarks' training photos that are not reference photos lose 0 / 0.6 / 1.5 / 3.0 / 5.3 points
    of placements (72.5 % placed). 0.2 is the smallest margin under 0.2 % wrong: the test photos had placed
    2.7 times as many wrong as the training photos without the rule (1.94 % vs 0.72 %), and the goal is 0.5 %.
    The share hardly matters for the taught photos; 0.5 costs known photos least. docs/gallery.md."""

    margin: Optional[float] = 0.2
    share: float = 0.5


def lookalike_pairs(per_class: Sequence[np.ndarray], candidates: Sequence[int], share: float = 0.0) -> dict[int, list[int]]:
    """per_class: for each taught landmark, its enrolled photos' similarity to each trained class's nearest
    reference photo [photos, classes] (`References.nearest`); candidates: the classes that can be placed
    (not the "no landmark" ones). -> trained class -> the taught landmarks (their positions) for which at
    least `share` of the enrolled photos (and at least one) are closest to that class: with share 0.5, the
    look-alikes the enrolment warning is about; with 0, also those where only one photo looks like it."""
    pairs: dict[int, list[int]] = {}
    columns = np.asarray(candidates, dtype=int)
    for taught, similarity in enumerate(per_class):
        similarity = np.asarray(similarity)
        if similarity.size == 0 or columns.size == 0:
            continue
        closest = columns[np.argmax(similarity[:, columns], axis=1)]
        for trained in sorted(set(closest.tolist())):
            if np.mean(closest == trained) >= share:
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
