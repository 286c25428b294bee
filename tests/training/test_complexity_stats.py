import numpy as np
import pytest
from torch import nn

from training.complexity import complexity, count_flops
from training.models.fast_mpoxnet import FastMpoxNet
from training.stats import fold_homogeneity, paired_tests


def test_flops_of_a_convolution_are_counted_exactly():
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert count_flops(conv, size=16) == 2 * 3 * 8 * 9 * 16 * 16


@pytest.mark.parametrize("body, gflops", [("shufflenet", (0.02, 0.2)), ("efficientnet-lite0", (0.2, 0.5))])
def test_fast_mpoxnet_is_a_fraction_of_a_gigaflop(body, gflops):
    c = complexity(FastMpoxNet(4, body=body))  # measured 0.071 and 0.323
    assert 250_000 <= c["parameters"] <= 290_000 and gflops[0] < c["gflops"] < gflops[1]


def folds(accuracies, n=100, seed=0):
    rng = np.random.default_rng(seed)
    out, start = [], 0
    for acc in accuracies:
        labels = rng.integers(0, 4, n)
        pred = np.where(rng.random(n) < acc, labels, (labels + 1) % 4)
        out.append({"index": np.arange(start, start + n), "labels": labels, "pred": pred})
        start += n
    return out


def test_fold_homogeneity_tells_similar_from_different_folds():
    assert fold_homogeneity(folds([0.9, 0.91, 0.89, 0.9, 0.9]))["p_value"] > 0.05
    assert fold_homogeneity(folds([0.95, 0.95, 0.5, 0.95, 0.95]))["p_value"] < 0.001


def test_paired_tests_find_a_real_difference_and_refuse_other_folds():
    good, bad = folds([0.95] * 5, seed=1), folds([0.6] * 5, seed=1)
    r = paired_tests(good, bad)
    assert r["mean_accuracy_difference"] > 0.2 and r["mcnemar_p_value"] < 1e-6 and r["paired_t_p_value"] < 0.01
    with pytest.raises(ValueError, match="same folds"):
        paired_tests(good, folds([0.9] * 4, seed=1))
