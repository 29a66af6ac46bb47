"""Workspace storage (DuckDB): schema migrations and every SQL statement of the engine."""
from .schema import SCHEMA_VERSION
from .store import Store

__all__ = ["Store", "SCHEMA_VERSION"]
