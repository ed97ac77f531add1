"""Could the library's own GPS photos place a photo by looking alike (issue 37, evidence (e))? Measured, not shipped.

For every photo without GPS in simulated libraries (`python -m src.trips build`), the most similar GPS photo of the same
library by the model's embedding (cosine), and how far apart the two really were. A visual neighbour is only evidence
if, above some similarity, the pair is almost always within 1 km.

    python -m scripts.visual_neighbours_check /tmp/trips/a [--thresholds 0.7 0.8 0.9]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from src.serving.locate.geo import distance_m
from src.serving.recognizer.recognize import Recognizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="a folder of simulated libraries (each with truth.csv)")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.7, 0.8, 0.85, 0.9])
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    recognizer = Recognizer(args.model)
    totals = {threshold: [0, 0, 0] for threshold in args.thresholds}  # pairs, within 1 km, over 25 km
    for library in sorted(p for p in args.root.iterdir() if (p / "truth.csv").is_file()):
        truth = list(csv.DictReader((library / "truth.csv").open()))
        gps = [row for row in truth if row["has_gps"] == "yes"]
        others = [row for row in truth if row["has_gps"] != "yes"]
        if not gps or not others:
            continue
        embed = lambda rows: recognizer.embed([recognizer.decode(library / row["file"]) for row in rows])
        similarity = embed(others) @ embed(gps).T
        nearest, best = similarity.argmax(axis=1), similarity.max(axis=1)
        apart = np.array([float(distance_m(float(o["latitude"]), float(o["longitude"]), float(gps[n]["latitude"]), float(gps[n]["longitude"])))
                          for o, n in zip(others, nearest)])
        for threshold in args.thresholds:
            chosen = best >= threshold
            totals[threshold][0] += int(chosen.sum())
            totals[threshold][1] += int((apart[chosen] <= 1000).sum())
            totals[threshold][2] += int((apart[chosen] > 25000).sum())
    print("| cosine >= | photos with a GPS look-alike | within 1 km of it | over 25 km from it |")
    print("|---|---|---|---|")
    for threshold, (pairs, near, far) in totals.items():
        print(f"| {threshold:g} | {pairs} | {near} ({near / max(pairs, 1):.0%}) | {far} ({far / max(pairs, 1):.0%}) |")


if __name__ == "__main__":
    main()
