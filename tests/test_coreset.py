"""KCenterGreedy against random selection on data with known clusters."""
from __future__ import annotations

import numpy as np
import pytest

from evolab.methods.coreset import k_center_greedy


def clusters(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Eight well-separated clusters in 16 dimensions, one holding 90 % of the points."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=10.0, size=(8, 16))
    sizes = [630] + [10] * 7
    labels = np.repeat(np.arange(8), sizes)
    return centers[labels] + rng.normal(size=(len(labels), 16)), labels


def coverage_radius(points: np.ndarray, chosen: list[int]) -> float:
    """The farthest any point lies from its nearest chosen point."""
    return float(np.min(np.linalg.norm(points[:, None] - points[chosen][None], axis=2), axis=1).max())


def test_k_center_greedy_covers_every_cluster_where_random_picks_mostly_the_big_one():
    kcenter, random = [], []
    for seed in range(10):
        points, labels = clusters(seed)
        picked = k_center_greedy(points, 8, seed=seed)
        assert len(set(picked)) == 8
        kcenter.append(len(set(labels[picked])))
        sample = np.random.default_rng(100 + seed).choice(len(points), 8, replace=False)
        random.append(len(set(labels[sample])))
        assert coverage_radius(points, picked) < coverage_radius(points, list(sample))
    assert kcenter == [8] * 10
    assert np.mean(random) < 4, random


def test_the_seed_picks_the_first_center_and_bad_k_is_refused():
    points, _ = clusters(0)
    assert k_center_greedy(points, 3, seed=1) != k_center_greedy(points, 3, seed=2)
    assert k_center_greedy(points, 3, seed=1) == k_center_greedy(points, 3, seed=1)
    with pytest.raises(ValueError, match="k must be between 1"):
        k_center_greedy(points, 0, seed=0)


def test_k_may_be_one_or_every_point():
    points, _ = clusters(0)
    assert len(k_center_greedy(points, 1, seed=0)) == 1
    assert sorted(k_center_greedy(points, len(points), seed=0)) == list(range(len(points)))
