"""The statistics of a several-seed comparison: mean ± sample standard deviation, and Welch's
t-test between two groups with Holm's correction for the number of comparisons.

NumPy and the standard library only (SciPy is not a run-time dependency); the tests check the
t distribution against scipy.stats.
"""

import math

import numpy as np


def mean_sd(values):
    """(mean, sample standard deviation with n − 1; 0.0 for a single value) of ``values``."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def _betacf(a, b, x):
    """Continued fraction of the incomplete beta function (modified Lentz's method)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        for aa in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def regularized_incomplete_beta(a, b, x):
    """I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t, df):
    """P(|T| >= |t|) for Student's t with ``df`` (real, > 0) degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t))


def welch_test(a, b):
    """Welch's t-test of mean(a) − mean(b): dict(diff, t, df, p). Needs two values per side.

    t = (ā − b̄)/√(s²_a/n_a + s²_b/n_b), df by Welch–Satterthwaite. Both sides without spread:
    p = 1 for equal means, 0 for different ones (the difference is then exact, not noise)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(
            "welch_test needs at least two values per group, got {} and {}".format(len(a), len(b))
        )
    diff = float(a.mean() - b.mean())
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb == 0.0:
        return {
            "diff": diff,
            "t": math.copysign(math.inf, diff) if diff else 0.0,
            "df": float(len(a) + len(b) - 2),
            "p": 0.0 if diff else 1.0,
        }
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return {"diff": diff, "t": float(t), "df": float(df), "p": t_two_sided_p(t, df)}


def holm(p_values):
    """Holm–Bonferroni adjusted p-values (same order as given): a difference is significant at
    level α over the whole family of comparisons when its adjusted p is below α."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
