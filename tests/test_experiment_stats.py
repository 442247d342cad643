"""bnpy.experiments._stats against SciPy (a test dependency, not a run-time one)."""

import numpy as np
import pytest

from bnpy.experiments import _stats

stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize(
    "t, df", [(0.3, 1), (2.1, 3.7), (5.0, 8), (-1.2, 2.2), (10.0, 100), (0.01, 50), (40.0, 1.5)]
)
def test_t_distribution_matches_scipy(t, df):
    assert _stats.t_two_sided_p(t, df) == pytest.approx(2 * stats.t.sf(abs(t), df), rel=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_welch_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0.5, 0.03, 5), rng.normal(0.47, 0.05, 4)
    got = _stats.welch_test(a, b)
    want = stats.ttest_ind(a, b, equal_var=False)
    assert got["t"] == pytest.approx(want.statistic, rel=1e-12)
    assert got["p"] == pytest.approx(want.pvalue, rel=1e-9)
    assert got["diff"] == pytest.approx(a.mean() - b.mean(), rel=1e-12)


def test_welch_without_spread_and_bad_input():
    assert _stats.welch_test([0.1, 0.1], [0.1, 0.1])["p"] == 1.0
    assert _stats.welch_test([0.1, 0.1], [0.2, 0.2])["p"] == 0.0
    with pytest.raises(ValueError, match="two values"):
        _stats.welch_test([0.1], [0.2, 0.3])


def test_holm():
    # sorted p: 0.01*4, 0.03*3, 0.04*2 -> running max, 0.5*1
    assert _stats.holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert _stats.holm([0.6, 0.5]) == pytest.approx([1.0, 1.0])


def test_mean_sd():
    assert _stats.mean_sd([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0))
    assert _stats.mean_sd([4.0]) == (4.0, 0.0)
