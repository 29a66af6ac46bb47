"""Text encoders: the real transformer :class:`Encoder`, the test :class:`FakeEncoder`, and loaders.

Depends only on torch, transformers, safetensors and numpy.
"""
from .base import Cancel, Progress, ProgressFn, TextEncoder
from .encoder import Encoder, default_model_path, load_encoder, resolve_device, set_max_seq_length
from .fake import FAKE_MARKER, FakeEncoder

__all__ = ["Encoder", "FakeEncoder", "TextEncoder", "load_encoder", "default_model_path", "resolve_device",
           "set_max_seq_length",
           "FAKE_MARKER", "Progress", "ProgressFn", "Cancel"]
