"""One process against N (torch.distributed, gloo on a CPU): corpus encoding and HCE training, same inputs.

Three measurements, each against the one-process reference of the same run:

* **encode**: ``encode_sharded`` of the first ``--encode-docs`` SciFact documents (title + text, 256 tokens) on
  1 and on N processes: seconds, and the largest difference between the two vector sets.
* **train**: ``train()`` with the ``quick`` preset's settings (supervised SciFact train pairs over a
  ``--docs`` subset, siblings and level losses, gradient caching, bf16 where the CPU has it) for ``--steps``
  steps, ``nproc`` 1 and N, from the same starting tree: seconds per step after the first (warm-up), and how far
  the N-process loss curve and final weights are from the one-process ones (dropout stays on, and each
  process draws its own masks: close, not equal; the exact gradient is the tests' check).
* **communication**: one ``all_reduce`` of a tensor the size of the encoder's parameters (what a step's
  gradient synchronisation moves) between N gloo processes: median seconds of ``--repeats``.

On a 2-core CPU the N processes share the same cores (one thread each instead of two), so no speed-up is
expected: the table says what the synchronisation costs there. Where GPUs are lent, run it with ``--device cuda``.

Usage:
    python benchmarks/distributed.py [--nproc 2] [--docs 2000] [--steps 6] [--encode-docs 1000]
    python benchmarks/distributed.py --smoke          # seconds: toy texts, the fake encoder
    python benchmarks/distributed.py --markdown benchmarks/results/distributed.json

Writes benchmarks/results/distributed.json (with the machine, commit and every setting).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import tempfile
import time
from itertools import pairwise
from pathlib import Path

# common first: it puts the repository on sys.path
from common import RESULTS, SCIFACT, load_beir, machine, write_result


def _comm_rank(rank: int, world: int, port: int, numel: int, repeats: int, out: str) -> None:
    import torch
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        flat = torch.ones(numel)
        times = []
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            dist.all_reduce(flat)
            times.append(time.perf_counter() - t0)
        if rank == 0:
            Path(out).write_text(json.dumps(times[1:]))
    finally:
        dist.destroy_process_group()


def communication(numel: int, world: int, repeats: int) -> dict:
    """Median seconds of an all_reduce of ``numel`` float32 values between ``world`` gloo processes."""
    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "times.json")
        mp.spawn(_comm_rank, args=(world, port, numel, repeats, out), nprocs=world)
        times = json.loads(Path(out).read_text())
    return {"numel": numel, "megabytes": round(numel * 4 / 2**20, 1), "repeats": repeats,
            "median_s": round(statistics.median(times), 4)}


def measure_encode(model: str, texts: list[str], nproc: int) -> dict:
    from hce_engine.encoder.sharded import encode_sharded
    rows, vecs = {}, {}
    for n in (1, nproc):
        t0 = time.perf_counter()
        vecs[n] = encode_sharded(model, texts, n, max_length=256, device="cpu")
        rows[n] = time.perf_counter() - t0
    return {"texts": len(texts), "seconds": {str(k): round(v, 3) for k, v in rows.items()},
            "ratio": round(rows[nproc] / rows[1], 3),
            "max_abs_diff": float(abs(vecs[1] - vecs[nproc]).max())}


def measure_train(model: str, texts: list[str], pairs: list, vectors, nproc: int, steps: int, batch: int) -> dict:
    import numpy as np
    import torch

    from hce_engine.encoder import load_encoder
    from hce_engine.training import TrainConfig, train
    out, weights, losses = {}, {}, {}
    cfg = TrainConfig.preset("quick", signal="supervised", max_pairs=steps * batch, batch_size=batch, epochs=1,
                             val_fraction=0.0, seed=0, device="cpu")
    for n in (1, nproc):
        enc = load_encoder(model, device="cpu", precision="auto")
        stamps: list[float] = []
        loss: list[float] = []

        def on_step(ev, stamps=stamps, loss=loss):
            stamps.append(time.perf_counter())
            loss.append(float(ev.loss))
        t0 = time.perf_counter()
        train(enc, texts, pairs, cfg.replace(nproc=n), initial_vectors=vectors, on_step=on_step)
        total = time.perf_counter() - t0
        per_step = [b - a for a, b in pairwise(stamps)]
        out[str(n)] = {"seconds": round(total, 2), "steps": len(stamps),
                       "seconds_per_step": round(statistics.median(per_step), 3) if per_step else None}
        weights[n] = torch.cat([p.detach().float().reshape(-1) for p in enc.parameters()])
        losses[n] = np.array(loss)
    step_1, step_n = out["1"]["seconds_per_step"], out[str(nproc)]["seconds_per_step"]
    return {"settings": {**cfg.to_dict(), "nproc": None}, "runs": out,
            "step_ratio": round(step_n / step_1, 3) if step_1 and step_n else None,
            "loss_max_rel_diff": float(np.max(np.abs(losses[1] - losses[nproc]) / np.abs(losses[1]))),
            "weights_max_abs_diff": float((weights[1] - weights[nproc]).abs().max())}


def markdown(result: dict) -> str:
    prov, m = result["provenance"], result["machine"]
    n = str(result["nproc"])
    enc, tr, comm = result["encode"], result["train"], result["communication"]
    clean = "" if prov["clean_tree"] else " (uncommitted changes)"
    lines = [f"Commit {prov['commit']}{clean}, {prov['started']}; {m['cpu_model']}, {m['cpus']} cores, "
             f"load {m['load_avg']}; {result['docs']:,} {'toy' if result['smoke'] else 'SciFact'} documents, seed 0.",
             "",
             f"| measurement | 1 process | {n} processes | {n} / 1 | agreement with 1 process |",
             "|---|---|---|---|---|",
             f"| encode {enc['texts']:,} texts (s) | {enc['seconds']['1']:.1f} | {enc['seconds'][n]:.1f} | "
             f"{enc['ratio']:.2f} | max abs diff {enc['max_abs_diff']:.1e} |",
             f"| train, s per step ({tr['runs']['1']['steps']} steps, batch {tr['settings']['batch_size']}) | "
             f"{tr['runs']['1']['seconds_per_step']:.2f} | {tr['runs'][n]['seconds_per_step']:.2f} | "
             f"{tr['step_ratio']:.2f} | loss {tr['loss_max_rel_diff']:.1e} rel, weights "
             f"{tr['weights_max_abs_diff']:.1e} abs |",
             f"| all_reduce of the encoder's gradient ({comm['megabytes']} MB, s) | — | {comm['median_s']:.3f} | — | "
             f"median of {comm['repeats']} |"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(SCIFACT))
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--docs", type=int, default=2000, help="corpus subset for training (train positives first)")
    ap.add_argument("--steps", type=int, default=6, help="training steps per run (the first is warm-up)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--encode-docs", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(RESULTS / "distributed.json"))
    ap.add_argument("--smoke", action="store_true", help="toy texts, the fake encoder (seconds)")
    ap.add_argument("--markdown", metavar="RESULT", help="print a result file as the README's table, run nothing")
    a = ap.parse_args()
    if a.markdown:
        print(markdown(json.loads(Path(a.markdown).read_text())))
        return
    from hce_engine.encoder import default_model_path, load_encoder
    from hce_engine.training import supervised_pairs
    tmp = tempfile.TemporaryDirectory(prefix="hce-dist-")
    if a.smoke:
        from common import smoke_beir

        from hce_engine.encoder.fake import FakeEncoder
        data = load_beir(smoke_beir(Path(tmp.name) / "toy", n_docs=60))
        model = str(Path(tmp.name) / "fake")
        FakeEncoder(dim=32, seed=0).save(model)
    else:
        data, model = load_beir(a.data), default_model_path()
    positives = list(dict.fromkeys(d for judged in data.qrels["train"].values() for d in judged))
    keep = list(dict.fromkeys(positives + data.ids))[:a.docs]
    by_id = dict(zip(data.ids, data.texts, strict=True))
    texts = [by_id[d] for d in keep]
    pairs = supervised_pairs(data.qrels["train"], data.queries, {d: i for i, d in enumerate(keep)})
    enc = load_encoder(model, device="cpu", precision="auto")
    vectors = enc.encode(texts, max_length=256)  # the starting tree of both training runs
    numel = sum(p.numel() for p in enc.parameters())
    del enc
    result = {"nproc": a.nproc, "docs": len(texts), "pairs": len(pairs), "smoke": a.smoke, "seed": 0,
              "machine": machine()}
    result["encode"] = measure_encode(model, data.texts[:a.encode_docs], a.nproc)
    print(f"encode: {result['encode']}", flush=True)
    result["train"] = measure_train(model, texts, pairs, vectors, a.nproc, a.steps, a.batch_size)
    print(f"train: {result['train']['runs']}, step ratio {result['train']['step_ratio']}", flush=True)
    result["communication"] = communication(numel, a.nproc, a.repeats)
    print(f"communication: {result['communication']}", flush=True)
    path = write_result(a.out, result)
    tmp.cleanup()
    print(markdown(json.loads(Path(path).read_text())))


if __name__ == "__main__":
    main()
