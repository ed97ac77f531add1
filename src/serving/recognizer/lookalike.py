"""The warning at enrolment when photos about to be taught look like a landmark the recognizer already knows
(5 photos of Cologne Cathedral taught as "Sydney Opera House"). A taught landmark wins a photo only by being
closer to it than what the model knows, so such a landmark would seldom be named: teaching still goes ahead
(the user may know better), but never silently. One check for the app, `python -m src gallery add` and the
service's POST /v1/landmarks.
"""

from __future__ import annotations

from collections import Counter
from typing import Optional, Sequence

from src.data.images import ImageSource
from src.serving.recognizer.recognize import Recognizer

LOOKALIKE_SHARE = 0.5  # warn when at least this share of the usable photos is named as one known landmark


def known_lookalike(recognizer: Recognizer, photos: Sequence[ImageSource], name: str) -> Optional[str]:
    """A warning when most of `photos`, about to be taught as `name`, are named as one landmark the recognizer
    already knows; None when none is, or when that landmark is `name` itself (re-teaching a taught landmark
    from its own photos). Call it before enrolling: afterwards the photos are named as the new landmark."""
    answers = [r for r in recognizer.recognize_many(list(photos), top_k=1) if r.status != "error"]
    named = Counter(r.landmark.info.name for r in answers if r.landmark is not None)
    if not named:
        return None
    known, count = named.most_common(1)[0]
    if known.casefold() == name.strip().casefold() or count < LOOKALIKE_SHARE * len(answers):
        return None
    photos_word = "photo" if len(answers) == 1 else "photos"
    return (f"{count} of {len(answers)} {photos_word} {'looks' if count == 1 else 'look'} like {known}, which I already know: "
            f"photos of this place will likely still be named {known}. If it is another place, teach it with photos that "
            "show what sets it apart.")
