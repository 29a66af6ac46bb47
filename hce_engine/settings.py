"""What the settings dataclasses (``TrainConfig``, ``EncodeConfig``) share: fields that carry their help text and
allowed values, which the app's widgets and the ``hce`` flags are built from."""
from __future__ import annotations

from dataclasses import field
from typing import Any

#: Tree builders (``hce_engine.tree.build_tree``).
BUILDERS = ("agglomerative", "divisive", "auto")


def setting(default: Any, help: str, choices: tuple | None = None) -> Any:
    """A dataclass field with ``help`` (and ``choices``, when given) in its metadata."""
    meta: dict[str, Any] = {"help": help}
    if choices is not None:
        meta["choices"] = choices
    return field(default=default, metadata=meta)
