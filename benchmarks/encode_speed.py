"""Encoding throughput: hce_engine Encoder.encode (bf16 autocast where fast, and fp32) vs
SentenceTransformer.encode in its default fp32 (same model, texts, device).

    python benchmarks/encode_speed.py [--n 500] [--corpus PATH] [--batch-size N] [--st-batch-size 32]
                                      [--max-length 256] [--repeats 2] [--device auto] [--model PATH] [--out JSON]

Each side runs at its own default batch unless told: the engine's (16 texts on a CPU, 64 elsewhere) and
sentence-transformers' (32).
Texts are the first ``--n`` documents of a corpus file (SciFact's corpus.jsonl by default) as the engine reads
and encodes them (title + " " + text). The encoders are warmed up, then
timed ``--repeats`` times in rotating order; the best time of each is reported, with the ratio of each engine
row to sentence-transformers and the minimum row cosine to the fp32 vectors. Writes JSON
(numbers + hardware) to benchmarks/results/encode_speed.json by default.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

# common first: it puts the repository on sys.path
from common import RESULTS, SCIFACT, encoder_texts, machine, print_tables, read_docs, source_line, write_result

from hce_engine.encoder import Encoder, default_model_path, resolve_device


def hardware(device: torch.device) -> dict:
    import sentence_transformers
    import transformers
    return {**machine(), "device": str(device), "transformers": transformers.__version__,
            "sentence_transformers": sentence_transformers.__version__}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def markdown(result: dict) -> str:
    """A result file as the README's table, with where it comes from."""
    out = [f"{source_line(result)} · torch threads {result['hardware'].get('torch_threads')} · {result['n_docs']} "
           f"SciFact documents at {result['max_length']} tokens, best of {result['repeats']}", "",
           "| encoder | best s | docs/s | CPU s | vs sentence-transformers | min cosine |", "|---|---|---|---|---|---|"]
    for k in result["best_s"]:
        out.append(f"| {k} | {result['best_s'][k]:.2f} | {result['docs_per_s'][k]:.1f} | "
                   f"{min(result['cpu_times_s'][k]):.2f} | {result['ratios_over_st'][k]:.2f}x | "
                   f"{result['min_row_cosine_vs_st_fp32'][k]:.6f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--markdown", nargs="+", metavar="RESULT", help="print result files as tables, run nothing")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--corpus", default=str(SCIFACT / "corpus.jsonl"))
    ap.add_argument("--batch-size", type=int, default=None, help="engine batch (default: the engine's default)")
    ap.add_argument("--st-batch-size", type=int, default=32, help="sentence-transformers batch (its default: 32)")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--model", default=None, help="model folder (default: bundled all-MiniLM-L6-v2)")
    ap.add_argument("--out", default=str(RESULTS / "encode_speed.json"))
    args = ap.parse_args(argv)
    if args.markdown:
        print_tables(args.markdown, markdown)
        return None

    from sentence_transformers import SentenceTransformer

    device = resolve_device(args.device)
    model_path = args.model or default_model_path()
    texts = encoder_texts(read_docs(args.corpus, args.n))
    n = len(texts)
    engine = Encoder.load(model_path, device=str(device), max_length=args.max_length, precision="auto")
    engine32 = Encoder.load(model_path, device=str(device), max_length=args.max_length, precision="fp32")
    st = SentenceTransformer(model_path, device=str(device))
    st.max_seq_length = args.max_length

    runners = {
        f"engine ({engine.precision})": lambda: engine.encode(texts, batch_size=args.batch_size),
        "engine (fp32)": lambda: engine32.encode(texts, batch_size=args.batch_size),
        "sentence_transformers": lambda: st.encode(texts, batch_size=args.st_batch_size, normalize_embeddings=True,
                                                   convert_to_numpy=True, show_progress_bar=False),
    }
    if engine.precision == "fp32":
        runners.pop("engine (fp32)")
    warm = texts[: min(n, 64)]
    engine.encode(warm, batch_size=args.batch_size)
    engine32.encode(warm, batch_size=args.batch_size)
    st.encode(warm, batch_size=args.st_batch_size, show_progress_bar=False)

    times: dict[str, list[float]] = {k: [] for k in runners}
    cpu_times: dict[str, list[float]] = {k: [] for k in runners}  # process CPU time, all threads
    outputs: dict[str, np.ndarray] = {}
    names = list(runners)
    for r in range(args.repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            outputs[name] = runners[name]()
            sync(device)
            times[name].append(time.perf_counter() - t0)
            cpu_times[name].append(time.process_time() - c0)
            print(f"  repeat {r + 1} {name:<22} {times[name][-1]:7.2f} s wall {cpu_times[name][-1]:7.2f} s cpu",
                  flush=True)

    best = {k: min(v) for k, v in times.items()}
    dps = {k: n / v for k, v in best.items()}
    ref = outputs["sentence_transformers"]
    ratios = {k: dps[k] / dps["sentence_transformers"] for k in names}
    cosines = {k: float((outputs[k] * ref).sum(1).min()) for k in names}
    main_row = names[0]

    table = "\n".join([
        f"encode speed: {n} docs, batch engine {args.batch_size or 'default'} / st {args.st_batch_size}, "
        f"max_length {args.max_length}, device {device}, "
        f"torch threads {torch.get_num_threads()}, best of {args.repeats}",
        f"| {'encoder':<22} | {'best s':>7} | {'docs/s':>7} | {'cpu s':>7} | {'vs st':>6} | {'min cos':>8} |",
        f"|{'-' * 24}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 8}|{'-' * 10}|",
        *(f"| {k:<22} | {best[k]:7.2f} | {dps[k]:7.1f} | {min(cpu_times[k]):7.2f} | {ratios[k]:5.2f}x | "
          f"{cosines[k]:8.6f} |" for k in names),
    ])
    print(table)

    result = {
        "n_docs": n, "corpus": args.corpus, "model": model_path, "batch_size": args.batch_size,
        "st_batch_size": args.st_batch_size,
        "max_length": args.max_length, "repeats": args.repeats,
        "times_s": times, "cpu_times_s": cpu_times, "best_s": best, "docs_per_s": dps, "ratio_engine_over_st": ratios[main_row],
        "ratios_over_st": ratios, "min_row_cosine_vs_st_fp32": cosines, "engine_precision": engine.precision,
        "hardware": hardware(device), "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_result(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
