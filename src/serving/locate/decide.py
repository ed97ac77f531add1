"""One decision from all the evidence about a photo: a position where the evidence agrees, none where it conflicts.

Each proposal says "within radius_m of here". Two proposals conflict when their circles do not overlap: the
landmark says Lotus Temple, New Delhi, the phone photos around it say Sydney. Then no position is given and
the conflict is reported, because a wrong position is worse than none. Where they agree, the tightest one
gives the position and the others are named beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from src.serving.locate.evidence import Proposal
from src.serving.locate.geo import distance_m

__all__ = ["Decision", "decide"]


@dataclass(frozen=True)
class Decision:
    source: str  # the deciding evidence ("landmark", "time", "track", "visual"), "conflict", or "" (no evidence)
    latitude: float | None = None
    longitude: float | None = None
    radius_m: float | None = None
    message: str = ""

    @property
    def placed(self) -> bool:
        return self.latitude is not None


def decide(proposals: Sequence[Proposal]) -> Decision:
    if not proposals:
        return Decision("")
    for i, first in enumerate(proposals):
        for second in proposals[i + 1 :]:
            apart = float(distance_m(first.latitude, first.longitude, second.latitude, second.longitude))
            if apart > first.radius_m + second.radius_m:
                return Decision("conflict", message=(
                    f"conflicting evidence, no position given: {first.detail} puts it {apart / 1000:.1f} km from where "
                    f"{second.detail} does"))
    deciding = [p for p in proposals if p.decides]
    if not deciding:
        return Decision("")
    best = min(deciding, key=lambda proposal: proposal.radius_m)
    others = [p for p in deciding if p is not best]
    agreeing = f"; agrees with {', '.join(p.detail for p in others)}" if others else ""
    return Decision(best.source, best.latitude, best.longitude, best.radius_m,
                    f"placed by {best.detail}, within {best.radius_m:.0f} m{agreeing}")
