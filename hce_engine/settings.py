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


#: Token limit of documents (and of a zero-shot run's queries) unless a run says otherwise: the encoders'
#: default window (``hce_engine.encoder.encoder.DEFAULT_MAX_LENGTH`` is this constant). Kept here, free of
#: torch, so the workspace, views and settings can name it without loading the encoder.
DEFAULT_MAX_LENGTH = 256

#: Device names the settings accept (``cuda:N`` too); whether the device exists is checked when loading.
DEVICES = ("auto", "cpu", "cuda", "mps")


def device_error(device: Any) -> str | None:
    """Why ``device`` is not a device setting (auto, cpu, cuda, cuda:N or mps), or None when it is one. The one
    rule behind ``TrainConfig``, ``EncodeConfig`` and ``hce_engine.encoder.resolve_device``."""
    if isinstance(device, str) and (device in DEVICES or (device.startswith("cuda:") and device[5:].isdigit())):
        return None
    return f"device must be auto, cpu, cuda, cuda:N or mps (got {device!r})"
