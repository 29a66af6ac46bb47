"""Workspace storage (DuckDB): schema migrations, every SQL statement of the engine, and the turns processes
take on the file."""
from .schema import SCHEMA_VERSION
from .store import Store

__all__ = ["Store", "SCHEMA_VERSION"]
