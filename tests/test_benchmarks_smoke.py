"""Smoke runs of the growth, incremental and UMAP placement benchmarks (--smoke: tiny data, fake encoder), so
they cannot rot.

They check the scripts run end to end and write well-formed results, not the numbers.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")


def run_script(name: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": ROOT, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, os.path.join(BENCH, name), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_growth_smoke(tmp_path):
    out = tmp_path / "growth.json"
    proc = run_script("growth.py", "--smoke", "--out", str(out))
    assert "hnsw p50/p95" in proc.stdout and "add_1000_overhead_s" in proc.stdout
    data = json.loads(out.read_text())
    assert data["meta"]["smoke"] is True
    (row,) = data["results"]
    assert row["n_docs"] == 600
    for key in ("divisive_s", "agglomerative_s", "flat_build_s", "hnsw_build_s", "hnsw_recall_at_10",
                "encode_query_p50_ms", "exact_search_p50_ms", "hnsw_search_p95_ms", "ws_search_p50_ms",
                "db_write_vectors_s", "db_read_vectors_s", "add_s", "add_encode_s", "add_overhead_s",
                "peak_rss_mib"):
        assert isinstance(row[key], (int, float)), key
    assert 0.0 <= row["hnsw_recall_at_10"] <= 1.0
    assert row["add_s"] >= row["add_encode_s"] >= 0
    assert row["umap_measured"] is False  # skipped in smoke runs (numba compiles for a minute)
    assert "add_1000_overhead_s" in data["targets"]


def test_growth_helpers():
    sys.path.insert(0, BENCH)
    try:
        import growth
    finally:
        sys.path.remove(BENCH)
    x, q, lab, sub_top = growth.synthetic(300, n_queries=7, d=16)
    assert x.shape == (300, 16) and q.shape == (7, 16)
    assert abs(float((x ** 2).sum(1).mean()) - 1.0) < 1e-4
    texts = growth.synthetic_texts(lab, sub_top)
    assert len(texts) == 300 and all(len(t.split()) == 8 for t in texts)
    rows = [{"n_docs": 1000, "umap_measured": True, "umap_fit_sample": 1000, "umap_fit_s": 2.0,
             "umap_place_ms_per_doc": None},
            {"n_docs": 50_000, "umap_measured": True, "umap_fit_sample": 20_000, "umap_fit_s": 60.0,
             "umap_place_ms_per_doc": 1.0},
            {"n_docs": 200_000, "umap_measured": False}]
    growth.extrapolate_umap(rows)
    assert rows[2]["umap_s_extrapolated"] == pytest.approx(60.0 + 180.0)


def test_growth_judges_each_size_by_its_own_targets():
    sys.path.insert(0, BENCH)
    try:
        import growth
    finally:
        sys.path.remove(BENCH)
    big = {"n_docs": 1_000_000, "hnsw_search_p50_ms": 24.0, "hybrid_search_p50_ms": 51.0,
           "hnsw_recall_at_10": 0.985, "divisive_s": 100.0, "add_overhead_s": 0.5, "peak_rss_mib": 9000.0}
    small = {"n_docs": 200_000, "hnsw_search_p50_ms": 26.0, "divisive_s": 10.0, "add_overhead_s": 1.2}
    t = growth.judge([small, big])
    assert t["search_p50_at_1000000"]["met"] and not t["search_p50_at_200000"]["met"]
    assert not t["hybrid_p50_at_1000000"]["met"] and t["hybrid_p50_at_1000000"]["margin"] == pytest.approx(-1.0)
    assert not t["hnsw_recall_at_10_at_1000000"]["met"]  # >= 0.99 asked
    assert "serving_peak_rss_at_1000000" not in t and "umap_at_1000000" not in t  # not measured: not judged
    assert t["add_1000_overhead_s"] == {"target": "<= 1.0 s (every N)", "value": 1.2, "at_n": 200_000,
                                        "met": False, "margin": -0.2}
    md = growth.markdown({"meta": {"seed": 0}, "targets": t, "results": [small | {
        k: 0.0 for k in ("exact_search_p50_ms", "exact_search_p95_ms", "hnsw_search_p95_ms", "first_search_cold_s",
                         "db_write_vectors_s", "db_read_vectors_s")}]})
    assert "| hybrid_p50_at_1000000 < 50 ms | 1000000 | 51.0 | **no** | -1.0 |" in md


def test_incremental_smoke(tmp_path):
    out, png = tmp_path / "incremental.json", tmp_path / "drift.png"
    proc = run_script("incremental.py", "--smoke", "--out", str(out), "--plot", str(png))
    assert "hold-out:" in proc.stdout
    data = json.loads(out.read_text())
    hold = data["holdout"]
    assert hold["held_out"] == round(0.10 * hold["documents"])
    assert hold["queries"]["new"] > 0 and hold["queries"]["old"] > 0
    assert hold["freshness"]["added_since"] == hold["held_out"]
    foreign = hold["foreign"]  # the Jargon File sample added as another domain
    assert foreign["documents"] == 500 and "foreign documents added" in proc.stdout
    for run in ("incremental", "zero_shot"):
        assert foreign[run]["cos_leaf_foreign"] < foreign[run]["cos_leaf_original"]
    for system in ("incremental", "retrained_full", "zero_shot"):
        for group in ("new", "old"):
            m = hold[system][group]
            assert 0.0 <= m["ndcg_at_10"] <= 1.0 and 0.0 <= m["recall_at_10"] <= 1.0
    shares = [p["freshness"]["share_new"] for p in data["drift"]]
    assert shares[0] == 0.0 and shares == sorted(shares) and shares[-1] == pytest.approx(0.5, abs=0.02)
    assert [p["share_new_target"] for p in data["drift"]] == [0.0, 0.10, 0.25, 0.50]
    assert data["drift"][-1]["tree"]["cos_leaf_added"] is not None
    assert "retrain_share" in data["recommendation"]
    assert png.stat().st_size > 10_000
    table = run_script("incremental.py", "--markdown", str(out)).stdout
    gap = hold["gap_incremental_minus_retrained"]["new"]["ndcg_at_10"]
    assert f"| incremental − retrained | {gap:+.4f} |" in table and "| 50% |" in table


def test_incremental_holdout_choice():
    sys.path.insert(0, BENCH)
    try:
        import incremental
    finally:
        sys.path.remove(BENCH)
    docs = [f"d{i}" for i in range(100)]
    test = {f"q{i}": {f"d{i}": 1} for i in range(20)} | {"q-shared": {"d0": 1, "d50": 1}}
    held = incremental.choose_holdout(docs, test, share=0.10, new_query_share=0.5, seed=3)
    assert len(held) == len(set(held)) == 10
    assert held == incremental.choose_holdout(docs, test, share=0.10, new_query_share=0.5, seed=3)
    groups = incremental.query_groups(test, set(docs), set(docs) - set(held))
    assert set(groups["new"]) | set(groups["old"]) == set(groups["all"]) == set(test)
    assert all(test[q].keys() & set(held) for q in groups["new"])
    # a query is answerable only once all its relevant documents are live
    partial = incremental.query_groups(test, set(docs) - {"d50"}, set(docs) - {"d50"})
    assert "q-shared" not in partial["all"]


def test_umap_placement_smoke(tmp_path):
    out = tmp_path / "umap.json"
    proc = run_script("umap_placement.py", "--smoke", "--out", str(out))
    assert "knn10_kept_placed" in proc.stdout
    data = json.loads(out.read_text())
    assert [r["method"] for r in data["rows"]] == ["knn", "transform"]
    for r in data["rows"]:
        assert r["placed"] == 300 and 0.0 <= r["knn10_kept_placed"] <= 1.0 and r["seconds"] >= 0


def test_quality_and_train_speed_smoke(tmp_path, fake_model):
    """The quality table and the training-speed lever table on a toy BEIR folder with the fake encoder."""
    from conftest import write_toy_beir
    data = write_toy_beir(tmp_path / "toy")
    out = tmp_path / "quality.json"
    proc = run_script("quality_scifact.py", "--preset", "standard", "--rows", "zero-shot,in-batch,hce", "--seeds",
                      "0", "--data", data, "--model", fake_model, "--out", str(out))
    assert "-in-batch" in proc.stdout and "-zero-shot" in proc.stdout
    rows = {r["row"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"zero-shot", "in-batch", "hce"}
    assert rows["hce"]["n_train_pairs"] == 15 and rows["hce"]["outcome"] in ("unknown", "better", "no better",
                                                                              "worse")
    table = run_script("quality_scifact.py", "--markdown", str(out)).stdout.splitlines()
    assert [line.split(" | ")[0] for line in table[2:]] == ["| zero-shot", "| in-batch", "| hce"]
    assert table[3].split(" | ")[7] == "+0.0000" and json.loads(out.read_text())["provenance"]["commit"] in table[2]
    speed = tmp_path / "speed.json"
    proc = run_script("train_speed.py", "--data", data, "--docs", "36", "--batch-size", "4", "--steps", "2",
                      "--levers", "main,bf16+sib128", "--model", fake_model, "--out", str(speed))
    res = json.loads(speed.read_text())
    assert [r["lever"] for r in res["rows"]] == ["main", "bf16+sib128"]
    assert res["rows"][0]["ratio_vs_main"] == 1.0 and res["rows"][1]["pairs_per_s"] > 0
    table = run_script("train_speed.py", "--markdown", str(speed)).stdout
    assert "| main: fp32, negatives at 256 tokens (= `full`) |" in table and "| 1.00x |" in table


def test_import_fuzz_smoke(tmp_path):
    out = tmp_path / "fuzz.json"
    proc = run_script("import_fuzz.py", "--examples", "15", "--importers", "jsonl", "zip", "--out", str(out))
    assert "| jsonl" in proc.stdout and "| zip" in proc.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [r["importer"] for r in rows] == ["jsonl", "zip"]
    assert all(r["cases"] >= 10 and r["failure"] == 0 for r in rows), rows


def test_hybrid_smoke(tmp_path):
    out = tmp_path / "hybrid.json"
    proc = run_script("hybrid.py", "--smoke", "--out", str(out))
    assert "RRF" in proc.stdout and "scifact-titles" in proc.stdout
    data = json.loads(out.read_text())
    assert data["smoke"] is True and [r["collection"] for r in data["rows"]] == ["scifact", "scifact-titles"]
    for row in data["rows"]:
        for system in ("bm25", "dense", "hybrid_fitted", "hybrid_default", "rrf"):
            assert 0.0 <= row[system]["ndcg_at_10"] <= 1.0, system
        assert row["fit"]["split"] == "train" and len(row["test_sweep"]) == 21
    table = run_script("hybrid.py", "--markdown", str(out)).stdout  # the README's table, from the file alone
    nd = data["rows"][1]["hybrid_default"]["ndcg_at_10"]
    assert "| scifact-titles | zero-shot |" in table and f"{nd:.4f} (0.80)" in table


def test_tree_index_smoke(tmp_path):
    out = tmp_path / "tree_index.json"
    proc = run_script("tree_index.py", "--smoke", "--out", str(out))
    assert "tree (defaults)" in proc.stdout
    (res,) = json.loads(out.read_text())["results"]
    assert set(res["rows"]) == {"exact", "hnsw", "ivf", "tree", "tree (defaults)"}
    assert res["rows"]["exact"]["recall_at_10"] == 1.0 and res["rows"]["exact"]["share_of_exact"] == 1.0
    for row in res["rows"].values():
        assert 0.0 <= row["recall_at_10"] <= 1.0 and row["dist_per_query"] > 0 and row["p50_ms"] > 0
    table = run_script("tree_index.py", "--markdown", str(out)).stdout
    assert "| synthetic 3k | exact |" in table and "the tree's sweep" in table


def test_tree_index_on_a_workspace_run(tmp_path, toy_ws):
    """``--workspace W --corpus C``: every finished run of the corpus, its stored vectors and tree, its judged
    queries encoded by the run's own encoder."""
    toy_ws.encode("toy")
    toy_ws.close()
    out = tmp_path / "tree_index_ws.json"
    run_script("tree_index.py", "--sizes", "--workspace", str(tmp_path / "ws"), "--corpus", "toy",
               "--queries", "20", "--latency-queries", "3", "--out", str(out))
    (res,) = json.loads(out.read_text())["results"]
    assert res["label"] == "toy run 1 (baseline)"
    assert res["rows"]["exact"]["recall_at_10"] == 1.0


@pytest.mark.browser
def test_map_draw_smoke(tmp_path):
    from benchmarks.app_browser import CHROMIUM
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium missing")
    out = tmp_path / "map_draw.json"
    run_script("map_draw.py", "--sizes", "1500", "--repeats", "1", "--out", str(out), timeout=600)
    (row,) = json.loads(out.read_text())["rows"]
    assert row["n_docs"] == 1500 and row["points_drawn"] == 1500 and row["errors_shown"] == 0 and row["draw_s"] > 0
    assert row["labels_drawn"] >= 2  # the labelled map, drawn in the real browser


def test_unsupervised_smoke(tmp_path):
    """The label-free benchmark: trains on the unjudged corpus, then judges dev and test, and records provenance."""
    out = tmp_path / "unsup.json"
    proc = run_script("unsupervised.py", "--smoke", "--arms", "self,ict", "--work", str(tmp_path / "w"),
                      "--out", str(out))
    assert "dev dense" in proc.stdout
    data = json.loads(out.read_text())
    assert data["commit"] and isinstance(data["clean_tree"], bool) and data["hardware"]["cpus"]
    assert [(r["arm"], r["seed"]) for r in data["rows"]] == [("self", 0), ("ict", 0)]
    for row in data["rows"]:
        assert row["config"]["signal"] == ("self" if row["arm"] == "self" else "ict")
        assert row["started"] <= row["ended"] and row["estimated_seconds"] > 0
        assert row["verdict"] in ("better", "no better", "worse") and row["checks"]
        assert not any(c["name"].startswith("judged") for c in row["checks"])  # no label while training
        for split in ("dev", "test"):
            m = row["metrics"][split]
            assert 0 <= m["start"]["dense"]["ndcg_at_10"] <= 1 and 0 <= m["trained"]["hybrid"]["ndcg_at_10"] <= 1
    table = run_script("unsupervised.py", "--markdown", str(out)).stdout
    assert table.count("\n| self | 0 |") == 1 and "| ict | 0 |" in table


def test_experiments_smoke(tmp_path):
    """The recipes benchmark: runs a recipe through the engine, writes results with provenance, a plot and
    markdown that the --markdown mode prints again from the file."""
    out = tmp_path / "exp.json"
    proc = run_script("experiments.py", "--smoke", "--recipes", "negatives,coherence", "--seeds", "0", "1",
                      "--boot", "100", "--work", str(tmp_path / "w"), "--out", str(out))
    data = json.loads(out.read_text())
    assert data["provenance"]["commit"] and set(data["recipes"]) == {"negatives", "coherence"}
    neg = data["recipes"]["negatives"]
    assert [a["arm"] for a in neg["arms"]] == ["random", "siblings", "in-batch"]
    assert [c["arm"] for c in neg["comparisons"]] == ["siblings", "in-batch"] and neg["queries"] == 20
    assert all(len(r["ndcg_at_10"]) == 20 and r["provenance"]["commit"] for r in neg["runs"].values())
    assert "subtrees" in data["recipes"]["coherence"]["coherence"]
    assert (tmp_path / "exp_negatives.png").stat().st_size > 1000
    again = run_script("experiments.py", "--markdown", str(out)).stdout
    assert "| siblings | 2 |" in again and again in proc.stdout


def test_estimates_smoke(tmp_path):
    """The estimate benchmark: estimate then train per preset, stage times beside the estimate's, a table."""
    out = tmp_path / "est.json"
    run_script("estimates.py", "--smoke", "--presets", "quick,unsupervised", "--work", str(tmp_path / "w"),
               "--out", str(out))
    data = json.loads(out.read_text())
    assert data["provenance"]["commit"] and [r["preset"] for r in data["rows"]] == ["quick", "unsupervised"]
    first, second = data["rows"]
    for row in data["rows"]:
        assert row["estimate_s"] > 0 and row["actual_s"] > 0
        assert set(row["stages_estimate_s"]) == set(row["stages_actual_s"]) == {"baseline", "prepare", "steps",
                                                                                  "finish"}
    # the first run of the corpus encodes the baseline; the second reuses it
    assert first["stages_actual_s"]["baseline"] > 0 and second["stages_actual_s"]["baseline"] == 0
    assert first["stages_estimate_s"]["baseline"] > 0 and second["stages_estimate_s"]["baseline"] == 0
    table = run_script("estimates.py", "--markdown", str(out)).stdout
    assert table.count("| smoke |") == 2 and "estimates within 25%" in table


def test_distributed_smoke(tmp_path):
    """1 against 2 gloo processes: encode, train and all_reduce measured; the 2-process vectors and weights are
    the 1-process ones; the README table comes from the file alone."""
    out = tmp_path / "distributed.json"
    run_script("distributed.py", "--smoke", "--docs", "40", "--steps", "3", "--encode-docs", "30", "--repeats", "2",
               "--out", str(out))
    data = json.loads(out.read_text())
    assert data["smoke"] and data["nproc"] == 2 and data["encode"]["max_abs_diff"] < 1e-5
    assert data["train"]["runs"]["2"]["steps"] == data["train"]["runs"]["1"]["steps"] >= 2
    assert data["train"]["weights_max_abs_diff"] < 1e-4 and data["communication"]["median_s"] > 0
    table = run_script("distributed.py", "--markdown", str(out)).stdout
    assert "| encode 30 texts (s) |" in table and "toy documents" in table


def test_hnsw_ef_smoke(tmp_path):
    out = tmp_path / "hnsw.json"
    proc = run_script("hnsw_ef.py", "--sizes", "1500", "--ef", "8", "64", "--queries", "30", "--out", str(out))
    (size,) = json.loads(out.read_text())["sizes"]
    assert [r["ef_search"] for r in size["rows"]] == [8, 64] and size["ef_construction"] == 64
    assert 0 <= size["rows"][0]["recall_at_10"] <= size["rows"][1]["recall_at_10"] <= 1
    assert "| 1,500 | 64 (" in proc.stdout


@pytest.mark.model
def test_encode_runtimes_smoke(tmp_path):
    sys.path.insert(0, BENCH)
    try:
        import common
    finally:
        sys.path.remove(BENCH)
    data = common.smoke_beir(tmp_path / "beir", n_docs=24)
    out = tmp_path / "rt.json"
    proc = run_script("encode_runtimes.py", "--data", data, "--n", "8", "--repeats", "1",
                      "--runtimes", "torch-bf16,torch-fp32", "--out", str(out), timeout=600)
    result = json.loads(out.read_text())
    assert result["rows"]["torch-fp32"]["min_cosine"] == 1.0 and result["rows"]["torch-fp32"]["ndcg_change"] == 0
    assert result["n_corpus"] == 24 and "A row passes with" in proc.stdout
    bad = subprocess.run([sys.executable, os.path.join(BENCH, "encode_runtimes.py"), "--runtimes", "tensorrt"],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "unknown runtime(s) tensorrt" in bad.stderr
