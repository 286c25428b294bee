"""The linear probe behind research/source_probe.py: it finds a difference that is there, and
none where there is none, scoring each photo by a fold that never saw its group."""

import numpy as np

from research.source_probe import probe


def test_the_probe_tells_apart_what_differs_and_not_what_does_not():
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(60, int), np.ones(60, int)]
    groups = np.arange(120) // 2  # pairs of near-duplicates
    features = rng.normal(size=(120, 20))
    shifted = features + 5.0 * labels[:, None] * (np.arange(20) == 0)  # one feature says which side
    assert probe(shifted, labels, groups)["balanced_accuracy"] > 0.9
    chance = probe(features, labels, groups)
    assert 0.3 < chance["balanced_accuracy"] < 0.7 and 0.3 < chance["roc_auc"] < 0.7
    assert chance["photos"] == [60, 60]


def test_near_duplicates_are_scored_by_a_fold_that_never_saw_them():
    """Labels drawn per group of three near-copies, nothing else telling them apart: scored by
    group the probe is at chance; had the copies been split across folds, it would read them."""
    rng = np.random.default_rng(1)
    base = rng.normal(size=(40, 50))
    features = np.repeat(base, 3, axis=0) + 0.01 * rng.normal(size=(120, 50))
    labels = np.repeat(rng.permutation(np.r_[np.zeros(20, int), np.ones(20, int)]), 3)
    groups = np.repeat(np.arange(40), 3)
    assert probe(features, labels, groups)["balanced_accuracy"] < 0.7
    assert probe(features, labels, np.arange(120))["balanced_accuracy"] > 0.9  # copies on both sides of a fold
