"""Scoring a method's answers against a simulated library's truth (pure functions).

Over photos WITHOUT GPS, per situation and pooled:
* of the placeable photos: share placed within 1 km, 1-25 km, over 25 km off (the rest: not placed);
* over 25 km off as a share of ALL photos without GPS (the promise: at most 1 %);
* traps placed (count);
* radius holds: share of placed photos, where the method states a radius, whose true position lies within it.
Over photos WITH GPS: the share whose answer is their own GPS position (untouched).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

from src.serving.locate.geo import distance_m
from src.trips.baselines import Answer

__all__ = ["NEAR_KM", "FAR_KM", "UNTOUCHED_M", "POOLED", "Score", "TruthPhoto", "score", "score_by_situation", "truth_photo"]

NEAR_KM = 1.0
FAR_KM = 25.0
UNTOUCHED_M = 5.0  # a GPS position read back after a round trip through EXIF rationals moves by centimetres, never metres
POOLED = "pooled"


@dataclass(frozen=True)
class TruthPhoto:
    """A truth.csv row as scoring needs it."""

    file: str
    situation: str
    latitude: float
    longitude: float
    has_gps: bool
    placeable: bool
    trap: bool


def truth_photo(row: Mapping[str, str]) -> TruthPhoto:
    return TruthPhoto(row["file"], row["situation"], float(row["latitude"]), float(row["longitude"]), row["has_gps"] == "yes",
                      row["placeable"] == "yes", row["trap"] == "yes")


@dataclass
class Score:
    """Counts for one group of photos; shares are derived."""

    without_gps: int = 0
    placeable: int = 0
    within_1km: int = 0  # of placeable photos
    within_25km: int = 0  # 1-25 km off, of placeable photos
    over_25km: int = 0  # of placeable photos
    over_25km_all: int = 0  # of all photos without GPS
    traps: int = 0
    traps_placed: int = 0
    with_radius: int = 0  # placed photos with a stated radius
    radius_holds: int = 0
    with_gps: int = 0
    gps_untouched: int = 0

    def add(self, truth: TruthPhoto, answer: Answer | None) -> None:
        """Count one photo (`answer` None: the method said nothing about it)."""
        has_position = answer is not None and answer.latitude is not None and answer.longitude is not None
        off_m = float(distance_m(truth.latitude, truth.longitude, answer.latitude, answer.longitude)) if has_position else None
        if truth.has_gps:
            self.with_gps += 1
            self.gps_untouched += off_m is not None and off_m <= UNTOUCHED_M
            return
        self.without_gps += 1
        self.traps += truth.trap
        self.placeable += truth.placeable
        if not (has_position and answer.placed):
            return
        off_km = off_m / 1000.0
        self.traps_placed += truth.trap
        self.over_25km_all += off_km > FAR_KM
        if truth.placeable:
            self.within_1km += off_km <= NEAR_KM
            self.within_25km += NEAR_KM < off_km <= FAR_KM
            self.over_25km += off_km > FAR_KM
        if answer.radius_m is not None:
            self.with_radius += 1
            self.radius_holds += off_m <= answer.radius_m

    def shares(self) -> dict[str, float | None]:
        """The table's figures: shares in [0, 1] (None where nothing was counted) and the trap count."""
        def share(part: int, whole: int) -> float | None:
            return part / whole if whole else None

        return {
            "within_1km": share(self.within_1km, self.placeable),
            "within_25km": share(self.within_25km, self.placeable),
            "over_25km": share(self.over_25km, self.placeable),
            "over_25km_of_all": share(self.over_25km_all, self.without_gps),
            "traps_placed": self.traps_placed,
            "radius_holds": share(self.radius_holds, self.with_radius),
            "gps_untouched": share(self.gps_untouched, self.with_gps),
        }

    def to_dict(self) -> dict:
        return {**asdict(self), **{f"share_{k}" if k != "traps_placed" else k: v for k, v in self.shares().items()}}


def score(pairs: Iterable[tuple[TruthPhoto, Answer | None]]) -> Score:
    result = Score()
    for truth, answer in pairs:
        result.add(truth, answer)
    return result


def score_by_situation(truths: Sequence[TruthPhoto], answers: Mapping[str, Answer]) -> dict[str, Score]:
    """One Score per situation (sorted) and the pooled one, answers looked up by file name."""
    pairs = [(truth, answers.get(truth.file)) for truth in truths]
    groups: dict[str, list] = {}
    for pair in pairs:
        groups.setdefault(pair[0].situation, []).append(pair)
    return {**{name: score(group) for name, group in sorted(groups.items())}, POOLED: score(pairs)}
