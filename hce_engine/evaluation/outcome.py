"""A training run's outcome: better, no better, or worse than the encoder it started from.

Every check compares the same metric for the starting and the trained encoder on the same queries. A check is
``better`` when the trained encoder gains more than :data:`MARGIN`, ``worse`` when it loses more than it, and
``no better`` in between. The run's verdict: ``worse`` if any check is worse (a run never hands back a worse
encoder without saying so), ``better`` if at least one check is better and none is worse, ``no better``
otherwise, and ``unknown`` when there is nothing to check (no validation queries, no judged queries).
Checks on judged queries (named :data:`JUDGED_CHECK` ...) outrank the others: when a run has any, its verdict
comes from them alone, since held-out pseudo-queries can rise while real queries do not.
"""
from __future__ import annotations

from typing import Iterable

#: Absolute change of a metric (MRR@10 or nDCG@10) below which a run counts as no better and no worse.
MARGIN = 0.005
VERDICTS = ("better", "no better", "worse", "unknown")
#: Name (prefix) of the checks against judged queries a run did not train on: "judged queries (test)".
JUDGED_CHECK = "judged queries"


def check(name: str, metric: str, start: float, end: float, n_queries: int, margin: float = MARGIN) -> dict:
    """One comparison: ``{"name", "metric", "start", "end", "delta", "n_queries", "verdict"}``."""
    delta = float(end) - float(start)
    verdict = "better" if delta > margin else "worse" if delta < -margin else "no better"
    return {"name": name, "metric": metric, "start": float(start), "end": float(end), "delta": delta,
            "n_queries": int(n_queries), "verdict": verdict}


def verdict(checks: Iterable[dict]) -> str:
    """The run's verdict from its checks (see the module docstring)."""
    checks = list(checks)
    vs = [c["verdict"] for c in (judged_checks(checks) or checks)]
    if not vs:
        return "unknown"
    if "worse" in vs:
        return "worse"
    return "better" if "better" in vs else "no better"


def judged_checks(checks: Iterable[dict]) -> list[dict]:
    """The checks against judged queries (see :data:`JUDGED_CHECK`)."""
    return [c for c in checks if c["name"].startswith(JUDGED_CHECK)]


def label_free(checks: Iterable[dict]) -> bool:
    """Whether every check is on pseudo-queries (named "... (held-out pseudo-queries)"): no real query
    confirms the verdict."""
    checks = list(checks)
    return bool(checks) and all("pseudo-queries" in c["name"] for c in checks)


def outcome(checks: list[dict]) -> dict:
    """``{"verdict", "checks", "margin", "text"}``: the verdict with a one-line explanation per check."""
    v = verdict(checks)
    lines = [f"{c['name']}: {c['metric']} {c['start']:.4f} -> {c['end']:.4f} ({c['delta']:+.4f}, "
             f"{c['n_queries']} queries): {c['verdict']}" for c in checks]
    head = {"better": "The trained encoder is better than the starting one.",
            "no better": "The trained encoder is no better than the starting one.",
            "worse": "WARNING: the trained encoder is worse than the starting one.",
            "unknown": "Nothing to measure the run against (no validation or judged queries)."}[v]
    if judged_checks(checks) and len(judged_checks(checks)) < len(checks):
        head += " The judged queries decide: the other checks are for information."
    return {"verdict": v, "checks": checks, "margin": MARGIN, "text": " ".join([head] + [f"{line}." for line in lines])}
