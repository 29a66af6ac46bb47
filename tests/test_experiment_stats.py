"""hce_engine.experiments.stats: paired comparison, Holm, seed spread and verdict sentences, checked by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from hce_engine.experiments.stats import difference_verdict, holm, paired_comparison, seed_spread

CONTROL = [0.2, 0.5, 0.4, 0.9]
ARM = [0.4, 0.6, 0.4, 0.7]


def _t3_two_sided_p(t: float) -> float:
    """Two-sided p of Student's t with 3 degrees of freedom, closed form (no scipy).

    For df = 3, CDF(t) = 1/2 + (1/pi) * (x / (1 + x^2) + atan(x)) with x = t / sqrt(3),
    so the two-sided p is 1 - (2/pi) * (x / (1 + x^2) + atan(|x|)).
    """
    x = abs(t) / math.sqrt(3.0)
    return 1.0 - (2.0 / math.pi) * (x / (1.0 + x * x) + math.atan(x))


def test_hand_computed_example() -> None:
    # diffs d = arm - control = [0.2, 0.1, 0.0, -0.2]; mean = 0.1 / 4 = 0.025.
    # deviations from the mean: 0.175, 0.075, -0.025, -0.225; squares sum to
    # 0.030625 + 0.005625 + 0.000625 + 0.050625 = 0.0875; sd (ddof=1) = sqrt(0.0875 / 3) = 0.170783.
    # t = mean / (sd / sqrt(n)) = 0.025 / (0.170783 / 2) = 0.292770, df = 3, two-sided p = 0.788780.
    result = paired_comparison(CONTROL, ARM, n_boot=2000)
    assert result["n"] == 4
    assert result["mean_control"] == pytest.approx(0.5)
    assert result["mean_arm"] == pytest.approx(0.525)
    assert result["diff"] == pytest.approx(0.025)

    t_hand = 0.025 / (math.sqrt(0.0875 / 3) / math.sqrt(4))
    assert t_hand == pytest.approx(0.292770, abs=1e-6)
    assert scipy_stats.ttest_rel(ARM, CONTROL).statistic == pytest.approx(t_hand)
    assert result["p_t"] == pytest.approx(scipy_stats.ttest_rel(ARM, CONTROL).pvalue, rel=1e-12)
    assert result["p_t"] == pytest.approx(_t3_two_sided_p(t_hand), rel=1e-9)
    assert result["p_t"] == pytest.approx(0.788780, abs=1e-6)

    # Randomization: observed |sum d| = 0.1. The 0.0 query's sign changes nothing, so the 16 patterns are
    # 2 copies of the 8 signed sums +-0.2 +-0.1 +-0.2: 0.5, 0.1, 0.3, -0.1, 0.1, -0.3, -0.1, -0.5.
    # Every one has |sum| >= 0.1 (four of them tie at exactly 0.1): 16 of 16 patterns, p = 16/16 = 1.
    assert result["p_randomization"] == 1.0
    # wins: 0.2, 0.1 (arm above); tie: 0.0; loss: -0.2.
    assert (result["wins"], result["ties"], result["losses"]) == (2, 1, 1)
    assert result["ci_low"] <= result["diff"] <= result["ci_high"]


def test_hand_computed_example_with_small_p() -> None:
    # d = arm - control = [0.3, 0.2, 0.2, -0.1]; mean 0.15; deviations 0.15, 0.05, 0.05, -0.25 square-sum to 0.09;
    # sd = sqrt(0.09 / 3) = sqrt(0.03); t = 0.15 / (sqrt(0.03) / 2) = sqrt(3), so x = t / sqrt(3) = 1 and
    # p = 1 - (2/pi) * (1/2 + pi/4) = 1/2 - 1/pi = 0.181690.
    control = [0.1, 0.3, 0.5, 0.6]
    arm = [0.4, 0.5, 0.7, 0.5]
    result = paired_comparison(control, arm, n_boot=2000)
    assert result["diff"] == pytest.approx(0.15)
    assert result["p_t"] == pytest.approx(0.5 - 1.0 / math.pi, rel=1e-9)
    assert result["p_t"] == pytest.approx(scipy_stats.ttest_rel(arm, control).pvalue, rel=1e-12)
    # Randomization: |sum| of +-0.3 +-0.2 +-0.2 +-0.1 must reach 0.6. Flipping a subset S of the absolute values
    # (total 0.8) gives 0.8 - 2 * sum(S): |.| >= 0.6 iff sum(S) <= 0.1 or sum(S) >= 0.7, i.e.
    # S = {}, {0.1}, {0.3, 0.2, 0.2}, {all four}: 4 of 16 patterns, p = 4/16 = 1/4 (two patterns tie at 0.6).
    assert result["p_randomization"] == 4 / 16
    assert (result["wins"], result["ties"], result["losses"]) == (3, 0, 1)


def test_randomization_counts_floating_point_ties() -> None:
    # d = [0.0, 0.1, 0.2, -0.2] in floats (0.2 - 0.1 etc. are inexact): as in the first example every one of the
    # 16 patterns reaches |sum| >= 0.1, but 4 of them miss the observed value by rounding without a tolerance.
    result = paired_comparison([0.9, 0.1, 0.3, 0.4], [0.9, 0.2, 0.5, 0.2], n_boot=10)
    assert result["p_randomization"] == 1.0


def test_exact_path_up_to_16_queries() -> None:
    rng = np.random.default_rng(3)
    control = rng.uniform(0, 1, 16)
    arm = control + rng.normal(0.05, 0.1, 16)
    p = paired_comparison(control, arm, n_boot=10)["p_randomization"]
    # exact enumeration: p is a multiple of 1 / 2^16, and symmetric patterns come in pairs, so a multiple of 2 / 2^16.
    count = p * 2 ** 16
    assert count == round(count) and round(count) % 2 == 0
    # no seed dependence on the exact path
    assert paired_comparison(control, arm, n_boot=10, seed=99)["p_randomization"] == p


def test_all_equal_differences_give_p_one() -> None:
    same = paired_comparison([0.3, 0.6, 0.1], [0.3, 0.6, 0.1], n_boot=50)
    assert same["p_t"] == 1.0 and same["p_randomization"] == 1.0
    assert (same["wins"], same["ties"], same["losses"]) == (0, 3, 0)
    assert same["ci_low"] == same["ci_high"] == 0.0
    # a constant shift (in floats 0.3 - 0.1 and 0.6 - 0.4 differ in the last bit): t is undefined, p_t = 1.0
    shifted = paired_comparison([0.1, 0.4, 0.2], [0.3, 0.6, 0.4], n_boot=50)
    assert shifted["p_t"] == 1.0
    single = paired_comparison([0.5], [0.7], n_boot=50)
    assert single["p_t"] == 1.0 and single["p_randomization"] == 1.0 and single["n"] == 1
    for value in (*same.values(), *shifted.values(), *single.values()):
        assert not (isinstance(value, float) and math.isnan(value))


def test_bootstrap_ci_contains_mean_reproducible_and_narrows() -> None:
    rng = np.random.default_rng(7)
    control = rng.uniform(0, 1, 400)
    arm = np.clip(control + rng.normal(0.03, 0.2, 400), 0, 1)
    small = paired_comparison(control[:20], arm[:20], n_boot=4000, seed=1)
    large = paired_comparison(control, arm, n_boot=4000, seed=1)
    for result in (small, large):
        assert result["ci_low"] < result["diff"] < result["ci_high"]
    assert paired_comparison(control[:20], arm[:20], n_boot=4000, seed=1) == small
    assert paired_comparison(control[:20], arm[:20], n_boot=4000, seed=2)["ci_low"] != small["ci_low"]
    width_small = small["ci_high"] - small["ci_low"]
    width_large = large["ci_high"] - large["ci_low"]
    # width scales as 1/sqrt(n): 20 -> 400 queries should shrink it by about sqrt(20) = 4.5
    assert width_large < width_small / 2.5
    # a 95% interval is about 2 * 1.96 standard errors wide
    se = float(np.std(arm - control, ddof=1) / math.sqrt(400))
    assert width_large == pytest.approx(2 * 1.96 * se, rel=0.15)
    # a lower confidence gives a narrower interval
    narrow = paired_comparison(control, arm, n_boot=4000, seed=1, confidence=0.5)
    assert narrow["ci_high"] - narrow["ci_low"] < width_large


def test_monte_carlo_path_large_and_null_effects() -> None:
    rng = np.random.default_rng(11)
    control = rng.uniform(0.2, 0.8, 30)
    n_perm = 2000

    strong = paired_comparison(control, control + rng.uniform(0.05, 0.15, 30), n_perm=n_perm, n_boot=100)
    # every difference is positive: no random sign pattern reaches the observed mean, p = (0 + 1) / (n_perm + 1)
    assert strong["p_randomization"] == pytest.approx(1 / (n_perm + 1))
    assert strong["p_t"] < 1e-10
    assert strong["wins"] == 30

    # symmetric null: the differences come in +x / -x pairs, observed mean 0, so every draw counts: p = 1
    half = rng.uniform(0.01, 0.2, 15)
    null_arm = control + np.concatenate([half, -half])
    null = paired_comparison(control, null_arm, n_perm=n_perm, n_boot=100)
    assert null["p_randomization"] == pytest.approx(1.0)
    assert null["p_t"] == pytest.approx(1.0)

    # random null: p is large, and the estimate has the (count + 1) / (n_perm + 1) form
    noisy = paired_comparison(control, control + rng.normal(0.0, 0.1, 30), n_perm=n_perm, n_boot=100)
    assert noisy["p_randomization"] > 0.2
    count = noisy["p_randomization"] * (n_perm + 1) - 1
    assert abs(count - round(count)) < 1e-6

    # a moderate effect: randomization and t test agree (both approximate the same sampling distribution)
    moderate = paired_comparison(control, control + rng.normal(0.04, 0.1, 30), n_perm=20000, n_boot=100)
    assert 0.001 < moderate["p_t"] < 0.5
    assert moderate["p_randomization"] == pytest.approx(moderate["p_t"], abs=0.03)


def test_monte_carlo_deterministic_for_seed() -> None:
    rng = np.random.default_rng(12)
    control = rng.uniform(0, 1, 25)
    arm = control + rng.normal(0.02, 0.1, 25)
    first = paired_comparison(control, arm, n_perm=3000, n_boot=200, seed=4)
    assert paired_comparison(control, arm, n_perm=3000, n_boot=200, seed=4) == first
    other = paired_comparison(control, arm, n_perm=3000, n_boot=200, seed=5)
    assert other["p_randomization"] != first["p_randomization"]


@pytest.mark.parametrize("control, arm, message", [
    ([0.1, 0.2], [0.1], "same length"),
    ([], [], "empty"),
    ([[0.1, 0.2]], [[0.1, 0.2]], "1-D"),
    ([0.1, float("nan")], [0.1, 0.2], "NaN"),
])
def test_bad_inputs_raise(control: list, arm: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        paired_comparison(control, arm)


def test_holm_hand_computed() -> None:
    # sorted: 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> raised to 0.06 to stay monotone).
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([]) == []
    assert holm([0.2]) == [0.2]
    # capped at 1.0: 0.4 x 3 = 1.2 -> 1.0, then 0.6 x 2 = 1.2 -> 1.0, 0.7 x 1 -> max(..) = 1.0
    assert holm([0.7, 0.4, 0.6]) == [1.0, 1.0, 1.0]
    adjusted = holm([0.5, 0.001, 0.02, 0.02])
    assert adjusted == pytest.approx([0.5, 0.004, 0.06, 0.06])
    with pytest.raises(ValueError):
        holm([0.1, 1.5])


def test_seed_spread() -> None:
    # means 0.70, 0.72, 0.74: deviations -0.02, 0, 0.02; sd = sqrt(0.0008 / 2) = 0.02
    assert seed_spread([0.70, 0.72, 0.74]) == pytest.approx(0.02)
    # per-query values are averaged per seed first: means 0.7 and 0.8 -> sd = 0.1 / sqrt(2)
    assert seed_spread([[0.6, 0.8], [0.7, 0.9]]) == pytest.approx(0.1 / math.sqrt(2))
    assert math.isnan(seed_spread([0.7]))
    assert math.isnan(seed_spread([]))


def test_difference_verdict_sentences() -> None:
    one = difference_verdict(0.03, 0.001, float("nan"), float("nan"), n_seeds=1)
    assert "unknown with one seed" in one and "add seeds" in one and "+0.0300" in one

    within = difference_verdict(0.005, 0.01, 0.004, 0.003, n_seeds=3)
    assert within.startswith("Within seed noise")
    assert "+0.0050" in within and "0.0040" in within and "0.01" in within

    not_significant = difference_verdict(-0.02, 0.2, 0.004, 0.003, n_seeds=3)
    assert "not significant" in not_significant and "larger than seed noise" not in not_significant
    assert "-0.0200" in not_significant and "0.2" in not_significant

    better = difference_verdict(0.025, 0.0012, 0.004, 0.006, n_seeds=3)
    assert "better" in better and "larger than seed noise" in better
    assert "+0.0250" in better and "0.0060" in better and "0.0012" in better

    worse = difference_verdict(-0.025, 0.0012, 0.004, 0.006, n_seeds=3)
    assert "worse" in worse and "larger than seed noise" in worse and "-0.0250" in worse

    # the boundary: |diff| must exceed 2 x sd strictly, and p must be below alpha strictly
    assert "larger than seed noise" not in difference_verdict(0.012, 0.001, 0.006, 0.006, n_seeds=2)
    assert "larger than seed noise" not in difference_verdict(0.05, 0.05, 0.006, 0.006, n_seeds=2)
    assert "larger than seed noise" in difference_verdict(0.05, 0.049, 0.006, 0.006, n_seeds=2)
