"""Simulated photo libraries, built like real trips, and their scorer (issue 37, "Measured the way users live").

    python -m src.trips build OUT_DIR --half a|b [--seed 0] [--libraries 5]
    python -m src.trips evaluate DIR [DIR ...] [--record PATH.json] [--markdown PATH.md]

A stage after serving: it may import anything, nothing imports it. docs/context.md ("Simulated
libraries") describes the situations, the ground truth and the table.
"""
