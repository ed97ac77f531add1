"""What the recognizer answers for one photo: `Recognition` (status, message, the top landmarks as `Guess`es,
whether it is placed) and its JSON form, which gives coordinates for a placed photo only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from src.data.landmarks import LandmarkInfo


POSITION_KEYS = ("latitude", "longitude", "map_url")
# What every door (tagger report, service JSON, app, docs) says of a photo: placed (named, and its position given),
# guess (looks like a landmark, not sure enough to place it), unknown (none of the landmarks), error (unreadable);
# the tagger adds has_gps (the photo's own position, left alone).
VERDICTS = ("placed", "guess", "unknown", "error")


@dataclass(frozen=True)
class Guess:
    class_name: str
    probability: float
    info: LandmarkInfo

    def to_dict(self, with_position: bool = False) -> dict:
        """JSON-ready; the landmark's coordinates and map link only with_position (a placed photo)."""
        info = {key: value for key, value in self.info.to_dict().items() if with_position or key not in POSITION_KEYS}
        return {"class_name": self.class_name, "probability": self.probability, **info}


@dataclass(frozen=True)
class Recognition:
    """status: the decision rule's "landmark" (named: one of the known landmarks), "unknown" (not one of them)
    or "error"; the doors show `verdict` instead.

    placed: the tagger may write the named landmark's position into the photo, and the app and the
    service show it. Naming is not enough: a position is placed only where the placement rule
    (`src.evaluation.placement`) is sure and the landmark has a position; a named photo that is not
    placed is a guess, "looks like X"."""

    status: str
    message: str
    top: list[Guess] = field(default_factory=list)
    size: Optional[tuple[int, int]] = None  # width, height of the photo as decoded (upright, shrunk to the model size)
    rule: str = ""  # what decided, e.g. "probability 0.91 >= threshold 0.56; placed: probability*reference 0.7312 < strict 0.8190"
    placed: bool = False
    score: Optional[float] = None  # the named landmark's placement score (placed where it reaches the point); None if not named

    @property
    def confidence(self) -> Optional[float]:
        """The best landmark's probability (None for an error)."""
        return self.top[0].probability if self.top else None

    @property
    def verdict(self) -> str:
        """One of `VERDICTS`: "placed", "guess" (named but not placed), "unknown" or "error"."""
        if self.status == "landmark":
            return "placed" if self.placed else "guess"
        return self.status

    @property
    def landmark(self) -> Optional[Guess]:
        """The named landmark (placed or not); None for "unknown" and errors."""
        return self.top[0] if self.status == "landmark" else None

    @property
    def position(self) -> Optional[tuple[float, float]]:
        """(latitude, longitude) of a placed landmark with known coordinates, else None."""
        info = self.top[0].info if self.placed else None
        return (info.latitude, info.longitude) if info is not None and info.has_coordinates else None  # type: ignore[return-value]

    def to_dict(self) -> dict:
        """JSON-ready, in the doors' vocabulary: `status` is the `verdict`; `landmark` only for a placed photo,
        with its coordinates (as `position`); `guess` the best landmark (placed or not) and `top` the candidates,
        never with coordinates: a guess, however probable, never carries a place."""
        return {
            "status": self.verdict,
            "message": self.message,
            "placed": self.placed,
            "position": dict(zip(("latitude", "longitude"), self.position)) if self.position else None,
            "landmark": self.top[0].to_dict(with_position=True) if self.placed else None,
            "guess": self.top[0].to_dict() if self.top else None,
            "top": [guess.to_dict() for guess in self.top],
            "rule": self.rule,
        }
