"""Tests for hce_engine.encoder: the real MiniLM Encoder (marked ``model``) and the FakeEncoder."""
from __future__ import annotations

import ast
import json
import os
import pathlib
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest
import torch

from hce_engine.encoder import (FAKE_MARKER, Encoder, FakeEncoder, TextEncoder, default_model_path,
                                load_encoder, resolve_device)

LONG = " ".join(f"Sentence {i} discusses protein folding, gene expression and clinical outcomes." for i in range(60))
TEXTS = [
    "",
    "a",
    "Hello world!",
    "The quick brown fox jumps over the lazy dog.",
    "Aspirin reduces the risk of myocardial infarction in adults.",
    "BRCA1 mutations increase breast cancer susceptibility.",
    "Café crème, naïve façade — déjà vu.",
    "東京は日本の首都です。",
    "Москва — столица России.",
    "🙂🚀 emoji only 🎉",
    "   leading and trailing spaces   ",
    "UPPER CASE TEXT ABOUT VACCINES",
    "numbers 3.14159 2.71828 42 1e-9",
    "x " * 300,  # > 256 tokens of one token
    LONG,  # > 256 tokens, truncated
    LONG[: len(LONG) // 3],
    "Mitochondrial DNA is inherited maternally in most animals.",
    "Line\nbreaks\tand\ttabs",
    "COVID-19 vaccines elicit neutralising antibodies against SARS-CoV-2 spike protein.",
    "short",
    "The cat sat on the mat.",
]

ENCODER_DIR = pathlib.Path(__file__).resolve().parents[1] / "hce_engine" / "encoder"


# ---------------------------------------------------------------------------- real model fixtures
@pytest.fixture(scope="module")
def enc() -> Encoder:
    return Encoder.load(device="cpu")


@pytest.fixture(scope="module")
def st_model():
    st = pytest.importorskip("sentence_transformers")
    return st.SentenceTransformer(default_model_path(), device="cpu")


@pytest.fixture(scope="module")
def ref(st_model) -> np.ndarray:
    return st_model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)


def _assert_protocol(obj) -> None:
    """TextEncoder is not runtime_checkable: check its members by name."""
    for name in ["name_or_path", "max_length", "device", "dim", "encode", "embed", "parameters", "train",
                 "eval", "save"]:
        assert hasattr(obj, name), name
    assert set(TextEncoder.__annotations__) <= set(dir(obj))


def _row_cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(1)


# ---------------------------------------------------------------------------- no-model tests
def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ValueError):
        resolve_device("not-a-device")


def test_default_model_path_is_st_folder():
    p = default_model_path()
    assert os.path.isfile(os.path.join(p, "modules.json"))
    assert os.path.isfile(os.path.join(p, "model.safetensors"))


def test_load_missing_folder_raises(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        Encoder.load(str(tmp_path / "nope"), device="cpu")


def test_subpackage_has_no_app_imports():
    banned = {"streamlit", "duckdb", "faiss", "sentence_transformers"}
    for f in ENCODER_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            assert not {n.split(".")[0] for n in names} & banned, f"{f.name} imports {names}"


# ---------------------------------------------------------------------------- real model
@pytest.mark.model
def test_attributes(enc):
    _assert_protocol(enc)
    assert enc.dim == 384 and enc.max_length == 256 and enc.device == torch.device("cpu")
    assert enc.name_or_path == default_model_path()
    params = list(enc.parameters())
    assert params and all(p.dtype == torch.float32 for p in params)
    assert sum(p.numel() for p in params) > 20_000_000
    assert enc.train() is enc and enc.model.training
    assert enc.eval() is enc and not enc.model.training


@pytest.mark.model
def test_matches_sentence_transformers(enc, ref):
    out = enc.encode(TEXTS, batch_size=4)
    assert out.shape == (len(TEXTS), 384) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    cos = _row_cos(out, ref)
    assert cos.min() > 0.9999, cos


@pytest.mark.model
def test_order_preserved(enc, ref):
    perm = np.random.default_rng(0).permutation(len(TEXTS))
    out = enc.encode([TEXTS[i] for i in perm], batch_size=3)
    assert _row_cos(out, ref[perm]).min() > 0.9999
    single = enc.encode([TEXTS[14]])  # long text alone vs inside a padded batch
    assert _row_cos(single, ref[14:15])[0] > 0.9999


@pytest.mark.model
def test_empty_and_types(enc):
    assert enc.encode([]).shape == (0, 384)
    assert enc.encode([]).dtype == np.float32
    with pytest.raises(TypeError):
        enc.encode("a single string")


@pytest.mark.model
def test_progress_and_cancel(enc):
    calls = []
    enc.encode(TEXTS, batch_size=2, progress=lambda ev: calls.append((ev.done, ev.total)))
    assert calls[-1] == (len(TEXTS), len(TEXTS))
    assert len(calls) >= 3 and [d for d, _ in calls] == sorted(d for d, _ in calls)

    n_batches = []

    def cancel():
        n_batches.append(1)
        return len(n_batches) > 1  # cancel before the second batch

    with pytest.raises(InterruptedError):
        enc.encode(TEXTS, batch_size=5, cancel=cancel)
    with pytest.raises(InterruptedError):
        enc.encode(TEXTS, cancel=lambda: True)


@pytest.mark.model
def test_max_length(enc):
    short = enc.encode([LONG], max_length=16)
    default = enc.encode([LONG])
    assert _row_cos(short, default)[0] < 0.999  # truncation changed the embedding
    with torch.inference_mode():
        e16 = enc.embed([LONG], max_length=16).numpy()
    assert _row_cos(short, e16)[0] > 0.9999


@pytest.mark.model
def test_embed_has_grad(enc, ref):
    enc.train()
    try:
        out = enc.embed(TEXTS[2:6])
        assert out.shape == (4, 384) and out.requires_grad and out.device == enc.device
        out.sum().backward()
        grads = [p.grad for p in enc.parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads)
    finally:
        enc.zero_grad(set_to_none=True)
        enc.eval()
    with torch.no_grad():
        e = enc.embed(TEXTS).numpy()  # eval mode: same as encode/ST
    assert _row_cos(e, ref).min() > 0.9999


@pytest.mark.model
def test_save_roundtrip(enc, ref, tmp_path):
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "saved"
    enc.save(str(out))
    for f in ["model.safetensors", "config.json", "tokenizer.json", "modules.json", "1_Pooling/config.json",
              "sentence_bert_config.json", "config_sentence_transformers.json"]:
        assert (out / f).is_file(), f
    assert json.loads((out / "sentence_bert_config.json").read_text())["max_seq_length"] == 256

    st = SentenceTransformer(str(out), device="cpu")
    assert _row_cos(st.encode(TEXTS, normalize_embeddings=True), ref).min() > 0.9999
    again = load_encoder(str(out), device="cpu")
    assert isinstance(again, Encoder) and again.max_length == 256
    assert _row_cos(again.encode(TEXTS), ref).min() > 0.9999


@pytest.mark.model
def test_fp16_plain_hf_folder(enc, ref, tmp_path):
    """A plain HF folder with fp16 weights loads as float32; save() generates the ST metadata."""
    from safetensors.torch import load_file, save_file
    from sentence_transformers import SentenceTransformer

    src, plain = pathlib.Path(default_model_path()), tmp_path / "plain"
    plain.mkdir()
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"]:
        shutil.copy(src / f, plain / f)
    weights = load_file(str(src / "model.safetensors"))
    save_file({k: v.half() for k, v in weights.items()}, str(plain / "model.safetensors"), metadata={"format": "pt"})

    e16 = Encoder.load(str(plain), device="cpu", max_length=128)
    assert e16.max_length == 128  # explicit value wins
    assert all(p.dtype == torch.float32 for p in e16.parameters())
    assert _row_cos(e16.encode(TEXTS[:8]), ref[:8]).min() > 0.999

    out = tmp_path / "generated"
    e16.save(str(out))
    modules = json.loads((out / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    assert json.loads((out / "1_Pooling/config.json").read_text())["pooling_mode_mean_tokens"] is True
    st = SentenceTransformer(str(out), device="cpu")
    assert st.max_seq_length == 128
    assert _row_cos(st.encode(TEXTS[:8]), e16.encode(TEXTS[:8])).min() > 0.9999


# ---------------------------------------------------------------------------- fake encoder
def test_fake_deterministic():
    a, b = FakeEncoder(seed=3), FakeEncoder(seed=3)
    x, y = a.encode(TEXTS), b.encode(TEXTS)
    assert x.shape == (len(TEXTS), a.dim) and x.dtype == np.float32
    np.testing.assert_array_equal(x, y)
    assert not np.allclose(x, FakeEncoder(seed=4).encode(TEXTS))
    _assert_protocol(a)


def test_fake_save_load_roundtrip(tmp_path):
    a = FakeEncoder(dim=16, seed=7)
    with torch.no_grad():
        a.proj.bias.fill_(0.1)  # a "trained" change that must survive the roundtrip
    a.save(str(tmp_path))
    assert (tmp_path / FAKE_MARKER).is_file()
    b = load_encoder(str(tmp_path))
    assert isinstance(b, FakeEncoder) and b.dim == 16
    np.testing.assert_allclose(a.encode(TEXTS), b.encode(TEXTS), atol=1e-6)


def test_fake_similarity_and_grad():
    f = FakeEncoder()
    v = f.encode(["protein folding in cells", "cells and protein folding dynamics", "stock market prices today"])
    assert v[0] @ v[1] > v[0] @ v[2]
    out = f.embed(["protein folding"])
    assert out.requires_grad
    out.sum().backward()
    calls = []
    f.encode(TEXTS, batch_size=4, progress=lambda ev: calls.append((ev.done, ev.total)))
    assert calls[-1] == (len(TEXTS), len(TEXTS))
    with pytest.raises(InterruptedError):
        f.encode(TEXTS, cancel=lambda: True)
