"""An experiment's results from its runs' per-query metrics: per arm mean and sd over seeds, and each arm
against the control, paired by query, with a bootstrap interval, two paired tests (Holm-corrected across arms)
and one sentence on whether the difference is larger than seed noise.

Pure numpy: :func:`summarize` takes what the workspace measured and returns a JSON-ready dict.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..evaluation import METRIC_LABELS
from .stats import difference_verdict, holm, paired_comparison, seed_spread

#: The metric the paired comparisons and verdicts are about.
HEADLINE = "ndcg_at_10"

PerQuery = Mapping[str, Mapping[str, float]]  # {query id: {metric: value}}


def _mean_sd(values: list[float]) -> dict:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()) if len(arr) else None,
            "sd": float(arr.std(ddof=1)) if len(arr) > 1 else None, "per_seed": [float(v) for v in arr]}


def _mean(values: PerQuery, metric: str) -> float:
    return float(np.mean([v[metric] for v in values.values()]))


def summarize(arms: list[str], control: str, per_query: Mapping[tuple[str, int], PerQuery],
              seconds: Mapping[tuple[str, int], float], metric: str = HEADLINE, n_boot: int = 10000,
              seed: int = 0) -> dict:
    """Per-arm means and the paired comparisons against ``control``.

    Args:
        arms: arm names in display order (``control`` among them).
        per_query: {(arm, seed): {query id: {metric: value}}} of every finished run (same judged queries).
        seconds: {(arm, seed): training seconds} of those runs.
        metric: the metric compared query by query.
        n_boot, seed: bootstrap and randomization draws, and their seed.

    Returns:
        ``{"metric", "queries", "arms": [...], "comparisons": [...]}``. Each arm: ``arm``, ``control`` (bool),
        ``seeds`` (finished), per metric ``{"mean", "sd", "per_seed"}`` (over seeds), ``train_seconds``. Each
        comparison (arm != control, seeds both finished): :func:`~.stats.paired_comparison` of the per-query
        values averaged over those seeds, ``seeds``, ``p_t_holm`` and ``p_randomization_holm`` (Holm across
        arms), ``seed_sd_control`` / ``seed_sd_arm`` (sd of per-seed means) and ``verdict`` (one sentence).
    """
    out_arms = []
    for arm in arms:
        seeds = sorted(s for a, s in per_query if a == arm)
        row: dict = {"arm": arm, "control": arm == control, "seeds": seeds}
        for m in METRIC_LABELS:
            row[m] = _mean_sd([_mean(per_query[arm, s], m) for s in seeds])
        row["train_seconds"] = _mean_sd([float(seconds[arm, s]) for s in seeds if (arm, s) in seconds])
        out_arms.append(row)
    queries = sorted(set().union(*(set(v) for v in per_query.values()))) if per_query else []

    comps = []
    for arm in arms:
        if arm == control:
            continue
        seeds = sorted({s for a, s in per_query if a == arm} & {s for a, s in per_query if a == control})
        if not seeds:
            continue
        qids = sorted(set.intersection(*(set(per_query[a, s]) for s in seeds for a in (arm, control))))
        ctl = np.array([np.mean([per_query[control, s][q][metric] for s in seeds]) for q in qids])
        trt = np.array([np.mean([per_query[arm, s][q][metric] for s in seeds]) for q in qids])
        comp = {"arm": arm, "seeds": seeds, **paired_comparison(ctl, trt, n_boot=n_boot, n_perm=n_boot, seed=seed)}
        comp["seed_sd_control"] = seed_spread([_mean(per_query[control, s], metric) for s in seeds])
        comp["seed_sd_arm"] = seed_spread([_mean(per_query[arm, s], metric) for s in seeds])
        comps.append(comp)
    for key in ("p_t", "p_randomization"):
        for comp, adj in zip(comps, holm([c[key] for c in comps]), strict=True):
            comp[f"{key}_holm"] = adj
    for comp in comps:
        comp["verdict"] = f"{comp['arm']} against {control}: " + difference_verdict(
            comp["diff"], max(comp["p_t_holm"], comp["p_randomization_holm"]), comp["seed_sd_control"],
            comp["seed_sd_arm"], len(comp["seeds"]))
    return {"metric": metric, "control": control, "queries": len(queries), "arms": out_arms,
            "comparisons": comps}


def table_rows(summary: dict) -> list[dict]:
    """One flat row per arm for a table or a CSV: means and sds of every metric, seconds, and (for the other
    arms) the paired difference to the control with its interval and Holm-adjusted p-values."""
    comps = {c["arm"]: c for c in summary["comparisons"]}
    rows = []
    for arm in summary["arms"]:
        row: dict = {"arm": arm["arm"] + (" (control)" if arm["control"] else ""), "seeds": len(arm["seeds"])}
        for key, label in METRIC_LABELS.items():
            row[label] = arm[key]["mean"]
            row[f"{label} sd"] = arm[key]["sd"]
        row["train min"] = arm["train_seconds"]["mean"] / 60 if arm["train_seconds"]["mean"] is not None else None
        c = comps.get(arm["arm"])
        row.update({"diff": c["diff"] if c else None, "95% CI": f"[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]"
                    if c else "", "p (t, Holm)": c["p_t_holm"] if c else None,
                    "p (randomization, Holm)": c["p_randomization_holm"] if c else None,
                    "win/tie/loss": f"{c['wins']}/{c['ties']}/{c['losses']}" if c else ""})
        rows.append(row)
    return rows
