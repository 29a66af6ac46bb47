"""Paired statistics for an experiment: training arms compared with a control arm on the same judged queries.

Every comparison is paired: ``control[i]`` and ``arm[i]`` are the same metric (e.g. nDCG@10) on the same query ``i``.

* :func:`paired_comparison` -- means, mean paired difference with a percentile-bootstrap confidence interval,
  paired t test, Fisher's sign-flip randomization test, and wins / ties / losses.
* :func:`holm` -- Holm-Bonferroni adjusted p-values for several arms against one control.
* :func:`seed_spread` -- standard deviation of a metric across training seeds.
* :func:`difference_verdict` -- one sentence: is an arm's difference larger than seed noise?

numpy + scipy only; results are plain ``float`` / ``int`` so they serialise to JSON as they are.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats as _scipy_stats

__all__ = ["difference_verdict", "holm", "paired_comparison", "seed_spread"]

#: Largest number of queries whose 2^n sign patterns the randomization test enumerates exactly.
EXACT_MAX_N = 16
#: Relative tolerance (times the largest |difference|) under which two test statistics count as equal.
_REL_TOL = 1e-9
#: Elements per block when drawing bootstrap / randomization samples (bounds memory for large n).
_BLOCK = 1 << 20


def _as_vector(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per query), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: a paired comparison needs at least one query")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return array


def _blocks(total: int, width: int) -> list[int]:
    """Row counts of the blocks that split ``total`` rows of ``width`` values into about :data:`_BLOCK` values."""
    rows = max(1, _BLOCK // max(1, width))
    return [min(rows, total - start) for start in range(0, total, rows)]


def _bootstrap_ci(diffs: np.ndarray, n_boot: int, seed: int, confidence: float) -> tuple[float, float]:
    """Percentile bootstrap interval of ``diffs.mean()``, resampling queries with replacement."""
    rng = np.random.default_rng(seed)
    n = diffs.size
    means = np.concatenate([diffs[rng.integers(0, n, size=(rows, n))].mean(axis=1) for rows in _blocks(n_boot, n)])
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def _paired_t_p(diffs: np.ndarray, tol: float) -> float:
    """Two-sided paired t test p-value; 1.0 when the differences are all equal (the t statistic is undefined)."""
    if diffs.size < 2 or float(np.ptp(diffs)) <= tol:
        return 1.0
    result = _scipy_stats.ttest_1samp(diffs, 0.0)
    p = float(result.pvalue)
    return p if math.isfinite(p) else 1.0


def _randomization_p(diffs: np.ndarray, n_perm: int, seed: int, tol: float) -> float:
    """Two-sided sign-flip randomization p-value of |mean difference|: exact for n <= 16, else Monte Carlo."""
    n = diffs.size
    observed = abs(float(diffs.sum()))  # |sum| orders the patterns exactly as |mean| does
    if n <= EXACT_MAX_N:
        patterns = np.arange(1 << n, dtype=np.int64)[:, None]
        signs = 1.0 - 2.0 * ((patterns >> np.arange(n, dtype=np.int64)) & 1)
        as_extreme = int(np.count_nonzero(np.abs(signs @ diffs) >= observed - tol))
        return as_extreme / float(1 << n)
    rng = np.random.default_rng(seed)
    as_extreme = 0
    for rows in _blocks(n_perm, n):
        signs = 1.0 - 2.0 * rng.integers(0, 2, size=(rows, n))
        as_extreme += int(np.count_nonzero(np.abs(signs @ diffs) >= observed - tol))
    return (as_extreme + 1) / (n_perm + 1)


def paired_comparison(control: Sequence[float] | np.ndarray, arm: Sequence[float] | np.ndarray, *,
                      n_boot: int = 10000, n_perm: int = 10000, seed: int = 0, confidence: float = 0.95,
                      tie: float = 1e-9) -> dict:
    """Compare an arm with the control on the same queries (same order).

    ``control`` and ``arm``: 1-D, equal length n >= 1, finite per-query metric values. Returns a dict of
    ``n``, ``mean_control``, ``mean_arm``, ``diff`` (mean of arm - control), ``ci_low`` / ``ci_high`` (percentile
    bootstrap of ``diff`` at ``confidence``, ``n_boot`` resamples of queries), ``p_t`` (two-sided paired t test,
    1.0 when all differences are equal), ``p_randomization`` (two-sided sign-flip test of |mean difference|:
    exact over all 2^n sign patterns when n <= 16, else ``n_perm`` Monte Carlo draws, (count + 1) / (n_perm + 1)),
    and ``wins`` / ``ties`` / ``losses`` (arm > control + tie, |arm - control| <= tie, arm < control - tie).
    Deterministic for a given ``seed``. Raises ValueError on bad inputs.
    """
    control_v = _as_vector(control, "control")
    arm_v = _as_vector(arm, "arm")
    if control_v.size != arm_v.size:
        raise ValueError(f"control and arm must have the same length (same queries): "
                         f"{control_v.size} != {arm_v.size}")
    if n_boot < 1 or n_perm < 1:
        raise ValueError(f"n_boot and n_perm must be >= 1, got {n_boot} and {n_perm}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    if not tie >= 0.0:
        raise ValueError(f"tie must be >= 0, got {tie}")
    diffs = arm_v - control_v
    tol = _REL_TOL * float(np.max(np.abs(diffs)))
    ci_low, ci_high = _bootstrap_ci(diffs, n_boot, seed, confidence)
    return {
        "n": int(diffs.size),
        "mean_control": float(control_v.mean()),
        "mean_arm": float(arm_v.mean()),
        "diff": float(diffs.mean()),
        "ci_low": ci_low,
        "ci_high": ci_high,
        "p_t": _paired_t_p(diffs, tol),
        "p_randomization": float(_randomization_p(diffs, n_perm, seed, tol * diffs.size)),
        "wins": int(np.count_nonzero(diffs > tie)),
        "ties": int(np.count_nonzero(np.abs(diffs) <= tie)),
        "losses": int(np.count_nonzero(diffs < -tie)),
    }


def holm(pvalues: Sequence[float] | np.ndarray) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order.

    With m p-values sorted ascending, the k-th (0-based) becomes ``max_{j <= k} (m - j) * p_(j)``, capped at 1.0.
    Empty input gives ``[]``. Raises ValueError for a value outside [0, 1] or NaN.
    """
    p = np.asarray(pvalues, dtype=np.float64).reshape(-1)
    if p.size == 0:
        return []
    if not np.all((p >= 0.0) & (p <= 1.0)):
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    order = np.argsort(p, kind="stable")
    scaled = (p.size - np.arange(p.size)) * p[order]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return [float(value) for value in adjusted]


def seed_spread(values_per_seed: Sequence[float | Sequence[float] | np.ndarray]) -> float:
    """Sample standard deviation (ddof=1) of the per-seed means.

    Each item is one seed's metric: a number, or that seed's per-query values (averaged first).
    NaN when fewer than 2 seeds.
    """
    means = [float(np.mean(np.asarray(values, dtype=np.float64))) for values in values_per_seed]
    if len(means) < 2:
        return float("nan")
    return float(np.std(means, ddof=1))


def difference_verdict(diff: float, p_adjusted: float, control_seed_sd: float, arm_seed_sd: float,
                       n_seeds: int, alpha: float = 0.05) -> str:
    """One sentence: is an arm's difference from the control larger than seed noise?

    Larger only when |diff| > 2 * max(control_seed_sd, arm_seed_sd) and ``p_adjusted`` (Holm) < ``alpha``.
    With fewer than 2 seeds (or an unknown seed sd) seed noise is unknown.
    """
    numbers = f"diff {diff:+.4f}, Holm p = {p_adjusted:.4g}"
    noise = max(control_seed_sd, arm_seed_sd)
    if n_seeds < 2 or not math.isfinite(noise):
        return f"Seed noise is unknown with one seed ({numbers}): add seeds to tell this difference from noise."
    beyond_noise = abs(diff) > 2.0 * noise
    significant = p_adjusted < alpha
    if beyond_noise and significant:
        direction = "better" if diff > 0 else "worse"
        return (f"The arm is {direction} than the control, larger than seed noise: {numbers} < {alpha:g}, "
                f"|diff| > 2 x seed sd {noise:.4f}.")
    if not beyond_noise:
        return f"Within seed noise: {numbers}, |diff| <= 2 x seed sd {noise:.4f}."
    return f"Larger than 2 x seed sd {noise:.4f} but not significant: {numbers}, not below {alpha:g}."
