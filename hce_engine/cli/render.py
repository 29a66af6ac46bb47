"""Text for the terminal that several ``hce`` commands print: tables, metric rows, stage times, what a run
needs after its corpus changed, runs checked again on new judgements."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..evaluation import METRIC_LABELS, METRICS
from ..progress import fmt_duration
from ..training.run_clock import STAGES

if TYPE_CHECKING:
    from ..workspace import Freshness


def table(rows: list[dict], cols: list[str]) -> str:
    """``cols`` of ``rows`` as aligned columns under a header line and a rule ('(none)' without rows)."""
    if not rows:
        return "(none)"
    cells = [[str(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]

    def line(vals: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(vals, widths, strict=True)).rstrip()

    return "\n".join([line(cols), line(["-" * w for w in widths])] + [line(r) for r in cells])


def cell(v, digits: int = 4) -> str:
    """A table cell: a float to ``digits`` places, None empty."""
    return "" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def metrics(m: dict) -> str:
    """One evaluation row: each metric's label and value, then the number of queries."""
    return "  ".join(f"{METRIC_LABELS[k]} {m[k]:.4f}" for k in METRICS) + f"  ({m['queries']} queries)"


def stages(took: dict[str, float], est: dict[str, float] | None) -> str:
    """'took 12 min (estimated 14 min): baseline 2 min / 2 min, ...' from a run's stage times and its estimate."""
    est = est or {}
    head = f"took {fmt_duration(sum(took.values()))}"
    if est:
        head += f" (estimated {fmt_duration(sum(est.values()))})"
    parts = [f"{k} {fmt_duration(took[k])}" + (f" / {fmt_duration(est[k])}" if k in est else "")
             for k in STAGES if took.get(k) or est.get(k)]
    return f"{head}: " + ", ".join(parts) + (" (took / estimated)" if est else "")


def suggestions(freshness: list[Freshness]) -> list[str]:
    """One line per run (of :meth:`~hce_engine.workspace.Workspace.freshness`'s records) that should have its
    tree rebuilt or be retrained: what, and why."""
    lines = []
    for f in freshness:
        todo = [w for w, on in (("rebuild the tree", f.rebuild_suggested), ("retrain", f.retrain_suggested)) if on]
        if todo:
            lines.append(f"run {f.run_id}: {' and '.join(todo)} suggested: {'; '.join(f.reasons)}")
    return lines


def rejudged(runs: list[dict]) -> list[str]:
    """Each run checked again on judged queries, with its verdict (and what it was, when it changed)."""
    lines = []
    for r in runs:
        change = r["after"] if r["after"] == r["before"] else f"{r['before']} -> {r['after']}"
        lines.append(f"  run #{r['run_id']} checked on the judged queries: {change}")
    return lines
