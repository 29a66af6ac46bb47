"""HCE Explorer's engine: train, explore and search with Hierarchical Corpus Encoders.

The public surface is small: :class:`Workspace` (every verb the app and the ``hce`` command use), the
errors, and the pipeline stages as subpackages (``corpus``, ``store``, ``encoder``, ``tree``, ``training``,
``index``, ``evaluation``, ``projection``). Importing the package loads nothing heavy: the compute core
(encoder, tree, training, evaluation) needs only torch, transformers and numpy; storage and indexes are
imported where used.
"""
import os as _os

# Nothing may download a model or data set at run time.
_os.environ.setdefault("HF_HUB_OFFLINE", "1")
_os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
_os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
_os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no tqdm bars from model loading/saving

from .errors import HCEError, InputError, NotFoundError, WorkspaceBusyError

__all__ = ["Workspace", "Run", "RunStatus", "HCEError", "InputError", "NotFoundError", "WorkspaceBusyError"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "Workspace":
        from .workspace import Workspace
        return Workspace
    if name in ("Run", "RunStatus"):
        from . import runs
        return getattr(runs, name)
    raise AttributeError(name)
