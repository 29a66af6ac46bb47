"""UMAP projections of document vectors (cached per run in the store by the Workspace)."""
from .umap_projection import FIT_SAMPLE, align, is_warm, is_warming, project, warm_up

__all__ = ["project", "align", "warm_up", "is_warm", "is_warming", "FIT_SAMPLE"]
