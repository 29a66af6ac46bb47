"""Retrieval evaluation (trec_eval-compatible metrics). Pure Python/numpy: safe to import anywhere."""
from hce_engine.evaluation.metrics import (
    METRICS,
    evaluate,
    order_ranking,
    rankings_from_arrays,
    write_trec_run,
)

__all__ = ["METRICS", "evaluate", "order_ranking", "rankings_from_arrays", "write_trec_run"]
