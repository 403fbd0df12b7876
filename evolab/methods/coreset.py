"""KCenterGreedy coreset selection (Sener & Savarese 2018), as WaveCoder selects its raw code.

WaveCoder's released code starts from index 0 and then saves the *first* N items instead of the
selected ones; here the first center is drawn with the seed and the selected indices are returned.
"""
from __future__ import annotations

import numpy as np


def k_center_greedy(points: np.ndarray, k: int, seed: int) -> list[int]:
    """Indices of k points, each next one the farthest (Euclidean) from those already chosen."""
    if not 0 < k <= len(points):
        raise ValueError(f"k must be between 1 and the number of points ({len(points)}), got {k}")
    chosen = [int(np.random.default_rng(seed).integers(len(points)))]
    distance = np.linalg.norm(points - points[chosen[0]], axis=1)
    while len(chosen) < k:
        chosen.append(int(distance.argmax()))
        distance = np.minimum(distance, np.linalg.norm(points - points[chosen[-1]], axis=1))
    return chosen
