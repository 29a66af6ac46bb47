"""Exported-graph runtimes for encoding (ONNX Runtime, OpenVINO; fp32, bf16, int8) against the engine's PyTorch
path, on the same texts, batches and pooling.

    python benchmarks/encode_runtimes.py [--n 500] [--repeats 3] [--runtimes torch-bf16,torch-fp32,...]
    python benchmarks/encode_runtimes.py --markdown benchmarks/results/encode_runtimes.json

Each runtime runs the bundled all-MiniLM-L6-v2's transformer (exported once: ONNX by ``torch.onnx.export``,
OpenVINO by ``openvino.convert_model`` from the same PyTorch module) and the engine's own batching (texts
sorted by length, padded per batch, ``Encoder._plan``), mean pooling and L2 normalisation, so only the
transformer's forward pass differs. The ``torch-*`` rows are ``Encoder.encode`` itself.

Per runtime:
* speed: the first ``--n`` SciFact documents (title + text, 256 tokens), warmed up, timed ``--repeats`` times in
  rotating order, best time; the ratio to ``torch-bf16`` (the engine's path on this CPU) from the same run;
* fidelity: the whole SciFact corpus and its 300 test claims (64 tokens) encoded; the lowest row cosine of the
  corpus vectors to ``torch-fp32``'s, and zero-shot test nDCG@10 by exact search against ``torch-fp32``'s.

Adoption rule (issue 23): a runtime serves encoding only where it is >= 1.5x ``torch-bf16`` and keeps nDCG@10
within 0.002 and the lowest cosine >= 0.99. The table says which rows pass. Runtimes whose package is missing
are listed as skipped (``pip install onnxruntime openvino onnx``). Writes benchmarks/results/encode_runtimes.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

# common first: it puts the repository on sys.path
from common import RESULTS, SCIFACT, exact_ranking, load_beir, machine, print_tables, source_line, write_result

from hce_engine.encoder import Encoder, default_model_path
from hce_engine.evaluation import evaluate

RUNTIMES = ("torch-bf16", "torch-fp32", "onnxruntime-fp32", "onnxruntime-int8", "openvino-fp32", "openvino-bf16")
REFERENCE, SPEED_BASE = "torch-fp32", "torch-bf16"
GOAL_SPEEDUP, MAX_NDCG_DROP, MIN_COSINE = 1.5, 0.002, 0.99
QUERY_TOKENS = 64

Hidden = Callable[[np.ndarray, np.ndarray], np.ndarray]  # int64 ids, mask (b, L) -> float32 (b, L, d)


class _LastHidden(torch.nn.Module):
    """The transformer with positional (ids, mask) inputs and its last hidden state as the one output."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def export_onnx(enc: Encoder, path: str) -> str:
    ids = torch.ones(2, 16, dtype=torch.long)
    axes = {0: "batch", 1: "tokens"}
    torch.onnx.export(_LastHidden(enc.model).eval(), (ids, torch.ones_like(ids)), path,
                      input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
                      dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes},
                      opset_version=17, dynamo=False)
    return path


def onnxruntime_hidden(path: str, threads: int) -> Hidden:
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return lambda ids, mask: sess.run(None, {"input_ids": ids, "attention_mask": mask})[0]


def openvino_hidden(enc: Encoder, precision: str, threads: int) -> Hidden:
    import openvino as ov
    ids = torch.ones(2, 16, dtype=torch.long)
    model = ov.convert_model(_LastHidden(enc.model).eval(), example_input=(ids, torch.ones_like(ids)))
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                      "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()
    return lambda ids, mask: np.asarray(request.infer([ids, mask])[0], dtype=np.float32)


def encode_with(enc: Encoder, hidden: Hidden, texts: list[str], max_length: int) -> np.ndarray:
    """``Encoder.encode``'s batches and pooling around another runtime's forward pass: float32 (n, d)."""
    ids_all, _, batches = enc._plan(enc._prep(texts), *enc._sizes(None, max_length))  # tokenised once, as encode
    pad = enc.tokenizer.pad_token_id or 0
    out = np.empty((len(texts), enc.dim), dtype=np.float32)
    for idx in batches:
        longest = max(len(ids_all[i]) for i in idx)
        ids = np.full((len(idx), longest), pad, dtype=np.int64)
        mask = np.zeros((len(idx), longest), dtype=np.int64)
        for row, i in enumerate(idx):
            ids[row, :len(ids_all[i])], mask[row, :len(ids_all[i])] = ids_all[i], 1
        h = hidden(ids, mask).astype(np.float32)
        pooled = (h * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        out[idx] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    return out


def runners(names: list[str], model_path: str, max_length: int, workdir: str
            ) -> tuple[dict[str, Callable[[list[str], int], np.ndarray]], dict[str, str]]:
    """{name: encode(texts, max_length)} for the runtimes that load, and {name: why skipped} for the others."""
    threads = torch.get_num_threads()
    fp32 = Encoder.load(model_path, device="cpu", max_length=max_length, precision="fp32")
    out: dict[str, Callable[[list[str], int], np.ndarray]] = {}
    skipped: dict[str, str] = {}
    onnx_path = None
    for name in names:
        try:
            if name.startswith("torch-"):
                enc = Encoder.load(model_path, device="cpu", max_length=max_length, precision=name[6:])
                if enc.precision != name[6:]:
                    raise RuntimeError(f"this CPU runs {enc.precision}, not {name[6:]}")
                out[name] = lambda t, m, enc=enc: enc.encode(t, max_length=m)
                continue
            if name.startswith("onnxruntime-"):
                onnx_path = onnx_path or export_onnx(fp32, os.path.join(workdir, "model.onnx"))
                path = onnx_path
                if name.endswith("int8"):
                    from onnxruntime.quantization import QuantType, quantize_dynamic
                    path = os.path.join(workdir, "model-int8.onnx")
                    quantize_dynamic(onnx_path, path, weight_type=QuantType.QInt8, per_channel=True)
                hidden = onnxruntime_hidden(path, threads)
            elif name.startswith("openvino-"):
                hidden = openvino_hidden(fp32, {"fp32": "f32", "bf16": "bf16"}[name.split("-")[1]], threads)
            else:
                raise AssertionError(name)  # main() checked the names
            out[name] = lambda t, m, hidden=hidden: encode_with(fp32, hidden, t, m)
        except ImportError as e:
            skipped[name] = f"not installed: {e.name}"
        except RuntimeError as e:
            skipped[name] = str(e)
    return out, skipped


def markdown(result: dict) -> str:
    out = [f"{source_line(result)} · torch threads {result['threads']} · speed on {result['n_speed']} documents, best of {result['repeats']}; "
           f"fidelity on all {result['n_corpus']:,} SciFact documents and {result['n_queries']} test claims",
           "", f"| runtime | best s | docs/s | vs {result['rule']['speedup_over']} | min cosine to torch-fp32 | nDCG@10 | − torch-fp32 | "
           "adopt? |", "|---|---|---|---|---|---|---|---|"]
    for name, r in result["rows"].items():
        out.append(f"| {name} | {r['best_s']:.2f} | {r['docs_per_s']:.1f} | {r['speedup']:.2f}x | "
                   f"{r['min_cosine']:.6f} | {r['ndcg_at_10']:.4f} | {r['ndcg_change']:+.4f} | "
                   f"{'yes' if r['passes'] else 'no'} |")
    for name, why in result.get("skipped", {}).items():
        out.append(f"| {name} | skipped: {why} | | | | | | |")
    out.append(f"\nA row passes with >= {GOAL_SPEEDUP}x `{result['rule']['speedup_over']}`, nDCG@10 within "
               f"{MAX_NDCG_DROP} of "
               f"`{REFERENCE}` and the lowest cosine >= {MIN_COSINE}.")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=500, help="documents in the speed measurement")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--runtimes", default=",".join(RUNTIMES))
    ap.add_argument("--data", default=str(SCIFACT), help="a BEIR folder with test qrels")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--model", default=None, help="model folder (default: bundled all-MiniLM-L6-v2)")
    ap.add_argument("--out", default=str(RESULTS / "encode_runtimes.json"))
    ap.add_argument("--markdown", nargs="+", metavar="RESULT", help="print result files as tables, run nothing")
    a = ap.parse_args(argv)
    if a.markdown:
        print_tables(a.markdown, markdown)
        return None

    names = [n for n in a.runtimes.split(",") if n]
    if unknown := [n for n in names if n not in RUNTIMES]:
        ap.error(f"unknown runtime(s) {', '.join(unknown)}; known: {', '.join(RUNTIMES)}")
    for must in (REFERENCE, SPEED_BASE):
        if must not in names:
            names.insert(0, must)
    beir = load_beir(a.data)
    texts, doc_ids = beir.texts, beir.ids
    qrels = beir.qrels["test"]
    qids = [q for q in qrels if q in beir.queries]
    queries = [beir.queries[q] for q in qids]
    model_path = a.model or default_model_path()
    work = tempfile.mkdtemp(prefix="hce-runtimes-")
    encode, skipped = runners(names, model_path, a.max_length, work)
    for name, why in skipped.items():
        print(f"skipped {name}: {why}", file=sys.stderr)
    names = list(encode)
    sample = texts[:a.n]

    for name in names:  # warm-up
        encode[name](sample[:32], a.max_length)
    times: dict[str, list[float]] = {k: [] for k in names}
    for r in range(a.repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            encode[name](sample, a.max_length)
            times[name].append(time.perf_counter() - t0)
            print(f"  repeat {r + 1} {name:<18} {times[name][-1]:7.2f} s", file=sys.stderr, flush=True)

    vectors, rankings = {}, {}
    for name in names:
        t0 = time.perf_counter()
        vectors[name] = encode[name](texts, a.max_length)
        qv = encode[name](queries, QUERY_TOKENS)
        rankings[name] = evaluate(exact_ranking(qids, qv, vectors[name], doc_ids), qrels)["ndcg_at_10"]
        print(f"  {name}: corpus encoded in {time.perf_counter() - t0:.1f} s, nDCG@10 {rankings[name]:.4f}",
              file=sys.stderr, flush=True)

    best = {k: min(v) for k, v in times.items()}
    base = SPEED_BASE if SPEED_BASE in best else REFERENCE  # a CPU without bf16: against fp32
    rows = {}
    for name in names:
        speedup = best[base] / best[name]
        cos = float((vectors[name] * vectors[REFERENCE]).sum(1).min())
        change = rankings[name] - rankings[REFERENCE]
        rows[name] = {"best_s": round(best[name], 3), "times_s": [round(t, 3) for t in times[name]],
                      "docs_per_s": round(len(sample) / best[name], 2), "speedup": round(speedup, 3),
                      "min_cosine": round(cos, 6), "ndcg_at_10": round(rankings[name], 4),
                      "ndcg_change": round(change, 4),
                      "passes": bool(speedup >= GOAL_SPEEDUP and change >= -MAX_NDCG_DROP and cos >= MIN_COSINE)}
    packages = {}
    for pkg in ("onnxruntime", "openvino", "onnx"):
        try:
            packages[pkg] = __import__(pkg).__version__
        except ImportError:
            packages[pkg] = None
    result = {"rows": rows, "skipped": skipped, "n_speed": len(sample), "n_corpus": len(texts),
              "n_queries": len(qids), "repeats": a.repeats, "max_length": a.max_length, "query_tokens": QUERY_TOKENS,
              "threads": torch.get_num_threads(), "model": model_path, "data": a.data, "runtime_packages": packages,
              "rule": {"speedup_over": base, "min_speedup": GOAL_SPEEDUP, "max_ndcg_drop": MAX_NDCG_DROP,
                       "min_cosine": MIN_COSINE, "reference": REFERENCE},
              "hardware": machine()}
    write_result(a.out, result)
    print(markdown(json.loads(Path(a.out).read_text())))
    return result


if __name__ == "__main__":
    main()
