"""The course's helpers (`get_data_location`, `compute_mean_and_std`); they live in `src.data.location`."""

from src.data.location import compute_mean_and_std, get_data_location, setup_env

__all__ = ["compute_mean_and_std", "get_data_location", "setup_env"]
