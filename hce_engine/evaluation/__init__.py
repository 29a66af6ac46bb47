"""Retrieval evaluation (trec_eval-compatible metrics) and run outcomes. Pure Python/numpy: safe anywhere."""
from hce_engine.evaluation.metrics import (
    METRIC_LABELS,
    METRICS,
    evaluate,
    order_ranking,
    rankings_from_arrays,
    write_trec_run,
)
from hce_engine.evaluation.outcome import check, outcome

__all__ = ["METRICS", "METRIC_LABELS", "check", "evaluate", "order_ranking", "outcome", "rankings_from_arrays",
           "write_trec_run"]
