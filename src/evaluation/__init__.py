"""Stage 4, evaluation: metrics, open set, calibration and figures; scores exported files."""
