"""Search indexes: dense FAISS vector index and BM25 lexical index."""
from hce_engine.index.bm25 import BM25Index
from hce_engine.index.vector_index import APPROX_THRESHOLD, BLAS_THRESHOLD, VectorIndex

__all__ = ["VectorIndex", "BM25Index", "APPROX_THRESHOLD", "BLAS_THRESHOLD"]
