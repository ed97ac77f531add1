"""Distances on the Earth, vectorised: what every piece of library evidence measures with."""

from __future__ import annotations

import numpy as np

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG)

__all__ = ["EARTH_RADIUS_M", "distance_m", "interpolate"]


def distance_m(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in metres (haversine); scalars or arrays that broadcast."""
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    dphi = phi2 - phi1
    dlmb = np.radians(np.asarray(lon2, dtype=float) - np.asarray(lon1, dtype=float))
    h = np.sin(dphi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def interpolate(lat1: float, lon1: float, lat2: float, lon2: float, fraction: float) -> tuple[float, float]:
    """The point ``fraction`` of the way from 1 to 2 along the great circle (safe across the antimeridian)."""
    a = _unit(lat1, lon1)
    b = _unit(lat2, lon2)
    omega = float(np.arccos(np.clip(a @ b, -1.0, 1.0)))
    if omega < 1e-12:
        return float(lat1), float(lon1)
    point = (np.sin((1 - fraction) * omega) * a + np.sin(fraction * omega) * b) / np.sin(omega)
    return float(np.degrees(np.arcsin(np.clip(point[2], -1.0, 1.0)))), float(np.degrees(np.arctan2(point[1], point[0])))


def _unit(lat: float, lon: float) -> np.ndarray:
    phi, lmb = np.radians(lat), np.radians(lon)
    return np.array([np.cos(phi) * np.cos(lmb), np.cos(phi) * np.sin(lmb), np.sin(phi)])
