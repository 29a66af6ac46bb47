"""The `hce` command contract: subcommands, --json output, errors on stderr with exit code 1."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def test_import_encode_search_eval_runs(hce, toy_beir):
    code, out, _ = hce("import", toy_beir, "--name", "toy", "--json")
    assert code == 0 and json.loads(out)["documents"] == 36
    code, out, _ = hce("corpora")
    assert code == 0 and "toy" in out and "36" in out
    code, out, err = hce("encode", "--corpus", "toy", "--branching", "3")
    assert code == 0 and out.strip() == "1", err
    code, out, _ = hce("search", "--corpus", "toy", "--json", "-k", "3", "guitar", "chord")
    hits = json.loads(out)["hits"]
    assert code == 0 and len(hits) == 3 and hits[0]["ext_id"].startswith("music")
    code, out, _ = hce("search", "--corpus", "toy", "--bm25", "bread oven")
    assert code == 0 and "cooking" in out.splitlines()[0]
    code, out, _ = hce("eval", "--corpus", "toy", "--with-bm25", "--json")
    m = json.loads(out)
    assert code == 0 and {"ndcg_at_10", "recall_at_10", "recall_at_100", "mrr_at_10", "queries"} <= set(m)
    assert m["queries"] == 9 and 0 <= m["ndcg_at_10"] <= 1 and "bm25" in m
    code, out, _ = hce("runs", "--corpus", "toy")
    assert code == 0 and "baseline" in out and "done" in out


def test_search_and_eval_modes(hce, toy_beir):
    hce("import", toy_beir, "--name", "toy")
    code, out, _ = hce("search", "--corpus", "toy", "--mode", "bm25", "--json", "bread", "oven")
    assert code == 0 and json.loads(out)["mode"] == "bm25"
    assert hce("runs", "--json")[1].strip() == "[]"  # BM25 needs no encoded corpus
    code, out, err = hce("search", "--corpus", "toy", "--mode", "hybrid", "guitar", "chord")
    assert code == 0 and out.splitlines()[0].split("[")[1].startswith("music") and "(dense #" in out, err
    code, out, _ = hce("search", "--corpus", "toy", "--mode", "hybrid", "--fusion", "rrf", "--json", "guitar")
    hit = json.loads(out)["hits"][0]
    assert code == 0 and set(hit["ranks"]) == {"dense", "bm25"}
    code, out, _ = hce("eval", "--corpus", "toy", "--mode", "hybrid", "--json")
    m = json.loads(out)
    assert code == 0 and m["mode"] == "hybrid" and {"bm25", "dense"} <= set(m) and m["queries"] == 9
    assert "hybrid" not in m  # its row is the top level
    assert m["fusion"]["split"] == "train" and 0 <= m["fusion"]["weight"] <= 1
    plain = json.loads(hce("eval", "--corpus", "toy", "--json")[1])  # the dense row at the top, as in hybrid's
    assert m["dense"]["ndcg_at_10"] == plain["ndcg_at_10"] and plain["run_id"] == m["run_id"]
    bm25 = json.loads(hce("eval", "--corpus", "toy", "--bm25", "--json")[1])  # --bm25 = --mode bm25, as in search
    assert bm25["mode"] == "bm25" and bm25["ndcg_at_10"] == m["bm25"]["ndcg_at_10"] and "dense" not in bm25
    code, out, _ = hce("eval", "--corpus", "toy", "--mode", "hybrid", "--weight", "0.3")
    assert code == 0 and "hybrid: dense weight 0.30 (given)" in out and out.count("nDCG@10") == 3
    code, out, err = hce("search", "--corpus", "toy", "--mode", "hybrid", "--weight", "3", "guitar")
    assert code == 1 and "between 0 and 1" in err
    code, out, _ = hce("search", "--corpus", "toy", "--index", "tree", "guitar", "chord")
    assert code == 0 and "leaf clusters visited" in out and "% of exact search" in out
    code, out, _ = hce("search", "--corpus", "toy", "--index", "tree", "--json", "guitar")
    route = json.loads(out)["route"]
    assert code == 0 and route["documents"] == 36 and route["leaves"][0]["label"]


def test_export_tree_html(hce, toy_beir, tmp_path):
    hce("import", toy_beir, "--name", "toy")
    hce("encode", "--corpus", "toy", "--branching", "3")
    out = tmp_path / "tree.html"
    code, printed, err = hce("export", "--run", "1", "--tree-html", str(out), "--tree-kind", "icicle")
    assert code == 0 and printed.strip() == str(out), err
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "Plotly" in page and '"type":"icicle"' in page.replace(" ", "")
    assert "<script src=" not in page and "<link" not in page  # everything inline: opens offline


def test_subset(hce, toy_beir, tmp_path):
    hce("import", toy_beir, "--name", "toy")
    ids = tmp_path / "ids.txt"
    ids.write_text("music-1\nmusic-2\n\n")
    code, out, _ = hce("subset", "--corpus", "toy", "--name", "few", "--ids-file", str(ids), "space-0", "--json")
    report = json.loads(out)
    assert code == 0 and report["documents"] == 3 and report["qrels"] == {"train": 3}
    code, out, err = hce("subset", "--corpus", "toy", "--name", "more", "nope")
    assert code == 1 and "nope" in err and "more" not in hce("corpora")[1]
    code, out, err = hce("subset", "--corpus", "toy", "--name", "few", "music-1")
    assert code == 1 and "already exists" in err


def test_eval_without_run_creates_baseline(hce, toy_beir):
    hce("import", toy_beir, "--name", "toy")
    code, out, _ = hce("eval", "--corpus", "toy", "--split", "train", "--json")
    assert code == 0 and json.loads(out)["queries"] == 15
    code, out, _ = hce("runs", "--json")
    assert [r["kind"] for r in json.loads(out)] == ["baseline"]


@pytest.mark.parametrize("args,needle", [
    (("search", "--corpus", "nope", "x"), "no corpus named 'nope'"),
    (("eval", "--corpus", "toy", "--split", "dev"), "no qrels for split 'dev'"),
    (("import", "/no/such/file.jsonl"), "file not found"),
    (("encode", "--corpus", "toy", "--branching", "1"), "branching must be an integer >= 2"),
    (("train",), "--corpus is required (or --resume RUN to continue a run)"),
    (("train", "--resume", "1"), "no run 1"),  # --resume needs no --corpus
])
def test_errors_exit_1_on_stderr(hce, toy_beir, args, needle):
    hce("import", toy_beir, "--name", "toy")
    code, out, err = hce(*args)
    assert code == 1 and needle in err and out == ""


def test_bad_import_leaves_database_unchanged(hce, toy_beir, tmp_path):
    hce("import", toy_beir, "--name", "toy")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_id": "a", "text": "fine"}\n{"_id": "a", "text": "dup"}\n')
    code, _, err = hce("import", str(bad))
    assert code == 1 and "bad.jsonl, line 2: duplicate document id 'a'" in err
    code, out, _ = hce("corpora", "--json")
    assert [c["name"] for c in json.loads(out)] == ["toy"]


def test_console_script_subprocess(tmp_path, fake_model, toy_beir):
    """The installed `hce` entry point, as a user runs it."""
    exe = os.path.join(os.path.dirname(sys.executable), "hce")
    env = dict(os.environ, HCE_DEFAULT_MODEL=fake_model, HCE_WORKSPACE=str(tmp_path / "w"))
    r = subprocess.run([exe, "import", toy_beir, "--name", "toy"], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "36 documents" in r.stdout
    r = subprocess.run([exe, "search", "--corpus", "missing", "q"], env=env, capture_output=True, text=True)
    assert r.returncode == 1 and "no corpus named 'missing'" in r.stderr and "Traceback" not in r.stderr


def test_tree_siblings_export_delete(hce, toy_beir, tmp_path):
    hce("import", toy_beir, "--name", "toy")
    hce("encode", "--corpus", "toy", "--branching", "3")
    code, out, _ = hce("tree", "--corpus", "toy", "--max-level", "1")
    assert code == 0 and "36 documents" in out and "[0]" in out
    code, out, _ = hce("siblings", "--corpus", "toy", "--query", "guitar chord melody", "--json")
    view = json.loads(out)
    assert code == 0 and len(view["levels"]) == view["depth"] and view["doc"]["ext_id"].startswith("music")
    code, out, _ = hce("siblings", "--corpus", "toy", "--doc", "space-1")
    assert code == 0 and "positive ranked" in out
    code, out, err = hce("export", "--run", "1", "--vectors", str(tmp_path / "v.parquet"), "--trec",
                         str(tmp_path / "run.trec"), "--model", str(tmp_path / "model"))
    assert code == 0, err
    import pyarrow.parquet as pq
    assert pq.read_table(tmp_path / "v.parquet").num_rows == 36
    assert len((tmp_path / "run.trec").read_text().splitlines()) == 9 * 36
    assert (tmp_path / "model" / "hce_fake_encoder.json").exists()
    code, _, err = hce("export", "--run", "1")
    assert code == 1 and "say what to export" in err
    code, out, _ = hce("delete-run", "1")
    assert code == 0 and hce("runs", "--json")[1].strip() == "[]"


def _run_in_pty(args: list[str], env: dict, timeout: float = 300) -> tuple[int, str]:
    """Run a command with a pseudo-terminal as stdin/stdout/stderr (as a user's terminal); returns (code, text)."""
    import pty
    import select
    import time
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    code = proc.wait(timeout=max(1.0, deadline - time.time()))
    os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace")


def test_train_and_encode_in_a_terminal(tmp_path, fake_model, toy_beir):
    """`hce encode` and the README's `hce train` under a pty: progress bars drawn, runs finish, outcome shown."""
    exe = os.path.join(os.path.dirname(sys.executable), "hce")
    env = dict(os.environ, HCE_DEFAULT_MODEL=fake_model, HCE_WORKSPACE=str(tmp_path / "w"), TERM="xterm")
    assert subprocess.run([exe, "import", toy_beir, "--name", "small"], env=env, capture_output=True).returncode == 0
    code, text = _run_in_pty([exe, "encode", "--corpus", "small", "--branching", "3"], env)
    assert code == 0 and "Traceback" not in text and "[####" in text, text
    code, text = _run_in_pty([exe, "train", "--corpus", "small", "--signal", "ict", "--epochs", "1", "--siblings",
                              "3", "--max-length", "32", "--batch-size", "8", "--device", "cpu"], env)
    assert code == 0 and "Traceback" not in text, text
    assert "train [" in text and "outcome: " in text and "judged queries (test)" in text, text
    # the time it took beside what was announced, by stage (baseline: this corpus was encoded above)
    assert "estimated time on cpu: about" in text and "(took / estimated)" in text, text
    assert "took " in text and "steps " in text and "baseline" not in text.split("took ")[-1].split("\n")[0], text


def test_train_flags_come_from_the_config(hce, toy_beir):
    hce("import", toy_beir, "--name", "toy")
    code, out, err = hce("train", "--corpus", "toy", "--preset", "standard", "--epochs", "1", "--batch-size", "8",
                         "--siblings", "2", "--branching", "3", "--sibling-max-length", "16", "--precision", "fp32",
                         "--lr-schedule", "linear", "--select", "best", "--val-fraction", "0.2",
                         "--no-level-loss", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["outcome"] in ("better", "no better", "worse") and res["checks"]
    code, out, _ = hce("runs", "--corpus", "toy", "--json")
    cfg = [r for r in json.loads(out) if r["run_id"] == res["run_id"]][0]["config"]
    assert (cfg["sibling_max_length"], cfg["precision"], cfg["lr_schedule"], cfg["select"], cfg["level_loss"]) == \
        (16, "fp32", "linear", "best", False)
    with pytest.raises(SystemExit) as exc:
        hce("train", "--corpus", "toy", "--select", "worst")
    assert exc.value.code == 2


def test_train_on_an_unjudged_corpus_uses_the_self_signal(hce, tmp_path):
    """`hce train` on a corpus without judged queries: the unsupervised preset's self signal, said in a
    sentence, and an outcome from its label-free checks."""
    from conftest import TOY_TOPICS
    lines = [d for ps in TOY_TOPICS.values() for d in ps] * 4
    path = tmp_path / "notes.jsonl"
    path.write_text("".join(f'{{"_id": "d{i}", "text": "{t} {i}. A second sentence on {t} number {i}."}}\n'
                            for i, t in enumerate(lines)))
    assert hce("import", str(path), "--name", "notes")[0] == 0
    code, out, err = hce("train", "--corpus", "notes", "--batch-size", "8", "--branching", "3", "--siblings", "2")
    assert code == 0, err
    assert "signal self. No labels needed" in err and "teacher agreement (held-out pseudo-queries)" in err, err
    took = next(line for line in err.splitlines() if line.startswith("took "))
    assert "(estimated " in took and "baseline " in took and "steps " in took, took  # its first run encodes
    code, out, _ = hce("runs", "--corpus", "notes", "--json")
    cfg = [r for r in json.loads(out) if r["kind"] == "train"][0]["config"]
    assert (cfg["signal"], cfg["max_pairs"], cfg["negatives"], cfg["batching"]) == ("self", 6000, "in-batch", "tree")
