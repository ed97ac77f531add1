"""The course's `Predictor` and `predictor_test`; they live in `src.export`."""

from src.export import Predictor, predictor_test

__all__ = ["Predictor", "predictor_test"]
