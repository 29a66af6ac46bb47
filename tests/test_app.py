"""AppTest of the app's navigation and the Corpus, Train, Search and Runs pages, with the fake encoder."""
from __future__ import annotations

import json
import os
import re
import zipfile

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from ui.common import get_workspace  # noqa: E402  (st.cache_resource: one Workspace per test, cleared after)

APP = os.path.join(os.path.dirname(__file__), "..", "ui", "app.py")
PAGES = ["corpus", "train", "tree", "siblings", "map", "search", "runs", "learn", "experiments"]
MINE = ["corpus", "train", "search", "runs"]


@pytest.fixture
def app(tmp_path, fake_model, monkeypatch):
    """A fresh AppTest on a temp workspace; closes the workspace afterwards."""
    monkeypatch.setenv("HCE_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("HCE_DEFAULT_MODEL", fake_model)
    monkeypatch.setenv("HCE_WARM_UMAP", "0")
    monkeypatch.delenv("HCE_AUTO_ENCODE", raising=False)
    get_workspace.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    yield at
    get_workspace().close()  # cancels and joins background runs, releases the DuckDB file
    get_workspace.clear()


def ws():
    """The app's (cached) workspace: the same object the pages use."""
    return get_workspace()


def wait_all() -> None:
    for r in ws().runs():
        ws().wait(r.run_id, 120)


def texts(elements) -> list[str]:
    """The elements' text as a reader sees it (user-derived parts are markdown-escaped on the page)."""
    return [re.sub(r"\\(.)", r"\1", e.value) for e in elements]


def charts(at: AppTest) -> list[dict]:
    """Plotly figures on the page (AppTest has no plotly element: the JSON is in proto.spec)."""
    return [json.loads(e.proto.spec) for e in at.get("plotly_chart")]


def chart_titles(at: AppTest) -> list[str]:
    return [c["layout"].get("title", {}).get("text", "") for c in charts(at)]


def goto(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, (page, at.exception)
    return at


def test_every_page_renders_on_an_empty_workspace(app):
    app.run()
    assert not app.exception
    assert app.title[0].value == "Corpus"
    assert app.button(key="load_sample").label == "Load the Jargon File sample"
    assert any("No corpus yet" in t for t in texts(app.info))
    for page in PAGES:
        goto(app, page)
    goto(app, "runs")
    assert any("No runs yet" in t for t in texts(app.info))
    goto(app, "search")
    assert app.title[0].value == "Search" and any("No corpus yet" in t for t in texts(app.info))


def test_sample_in_one_click_then_search_and_runs(app):
    app.run()
    app.button(key="load_sample").click().run()
    assert not app.exception and not app.error
    assert "Imported **jargon**" in app.success[0].value
    assert app.metric[0].label == "Documents" and app.metric[0].value == "2,307"
    assert app.button(key="load_sample").disabled and app.button(key="load_sample").label == "Sample loaded"
    wait_all()
    app.run()
    assert not app.exception
    assert any("Encoded by run #1" in t for t in texts(app.success))
    stats = {m.label: m.value for m in app.metric}
    assert stats["Duplicate texts"].isdigit() and stats["Queries"] == "0"
    assert app.dataframe[-1].value.shape[0] == 20  # the document sample
    assert chart_titles(app) == ["Document length (words)"] and sum(charts(app)[0]["data"][0]["y"]) == 2307
    [long] = [t for t in texts(app.caption) if "longer than the encoder's" in t]
    assert "256 tokens" in long and "more than 182 words at about 1.4 tokens per word" in long

    goto(app, "search")
    app.text_input(key="search_query").input("a program that never ends").run()
    assert not app.exception and not app.error
    heads = texts(app.subheader)
    assert heads == ["Starting encoder", "Trained encoder", "BM25", "Judge these results", "Why this rank?"]
    hits = [t for t in texts(app.markdown) if t.startswith("**1. ")]
    assert len(hits) == 2  # rank 1 of the starting encoder and of BM25 (no trained run yet)
    assert any("No trained run yet" in t for t in texts(app.info))

    goto(app, "runs")
    table = app.dataframe[0].value
    assert list(table["run"]) == [1] and list(table["status"]) == ["done"] and list(table["model"]) == ["fake"]
    app.button(key="prep_vectors_1").click().run()
    assert not app.exception and not app.error
    assert app.get("download_button")[0].proto.label == "Download vectors"
    app.button(key="delete_1").click().run()
    assert any("cannot be undone" in t for t in texts(app.warning))
    app.button(key="delete_yes_1").click().run()
    assert not app.exception and not app.error
    assert not ws().runs()


def test_upload_reports_bad_line_and_imports_a_good_file(app):
    app.run()
    bad = b'{"_id": "a", "text": "fine"}\n{"_id": "b", "text": \n'
    app.file_uploader[0].set_value(("my notes.jsonl", bad, "application/json"))
    app.run()
    app.button(key="upload_import").click().run()
    assert not app.exception
    assert app.error and "my notes.jsonl" in texts(app.error)[0] and "line 2" in texts(app.error)[0]
    good = "id,title,body\n1,Rockets,rocket launch orbit\n2,Bread,bake bread oven\n3,,\n".encode()
    app.file_uploader[0].set_value(("notes.csv", good, "text/csv"))
    app.checkbox(key="upload_encode").uncheck()
    app.text_input(key="upload_name").input("notes")
    app.run()
    app.button(key="upload_import").click().run()
    assert not app.exception and not app.error
    report = {m.label: m.value for m in app.metric[:4]}
    assert report == {"Documents": "2", "Empty, skipped": "1", "Queries": "0", "Qrels": "none"}
    assert any("not encoded yet" in t for t in texts(app.warning))


def test_hce_app_sample_encodes_new_corpora_in_the_background(app, toy_beir, monkeypatch):
    ws().import_corpus(toy_beir, name="toy")  # what `hce app --sample` does before starting the app
    get_workspace().close()
    get_workspace.clear()  # the app opens the workspace anew: as `hce app` does, with auto-encode on
    monkeypatch.setenv("HCE_AUTO_ENCODE", "1")
    app.run()
    assert not app.exception
    run = ws().runs("toy")[0]
    assert run.kind == "baseline"
    if run.status == "running":
        assert app.button(key=f"corpus_cancel_{run.run_id}")
    wait_all()
    app.run()
    assert any("Encoded by run #1" in t for t in texts(app.success)) and len(ws().runs("toy")) == 1


def _toy(toy_beir) -> str:
    """Import the toy BEIR corpus (36 docs, train/test qrels) and encode it, in the app's workspace."""
    w = ws()
    w.import_corpus(toy_beir, name="toy")
    w.encode("toy")
    return "toy"


def test_train_page_defaults_an_unjudged_corpus_to_the_self_signal(app, tmp_path):
    """No judged queries: the unsupervised preset and the self signal, the labels' source said in a sentence,
    the teacher's time in the estimate."""
    from conftest import TOY_TOPICS
    lines = [d for ps in TOY_TOPICS.values() for d in ps] * 4
    path = tmp_path / "notes.jsonl"
    path.write_text("".join(f'{{"_id": "d{i}", "text": "{t} {i}. A second sentence on {t} number {i}."}}\n'
                            for i, t in enumerate(lines)))
    app.run()
    ws().import_corpus(str(path), name="notes")
    ws().encode("notes")
    goto(app, "train")
    assert not app.error, texts(app.error)
    assert app.radio(key="train_preset").value == "unsupervised"
    assert app.selectbox(key="tc_notes_unsupervised_signal").value == "self"
    assert any("hybrid" in t and "No labels needed" in t for t in texts(app.info))
    assert any("teacher" in t for t in texts(app.caption))  # the estimate's parts name the teacher's encode
    keys = {w.key for w in app.number_input}
    assert "tc_notes_unsupervised_seed" in keys and "tc_notes_unsupervised_nproc" not in keys  # CLI only


def test_train_estimate_start_cancel_and_finish(app, toy_beir):
    app.run()
    _toy(toy_beir)
    goto(app, "train")
    assert not app.error
    assert app.radio(key="train_preset").value == "quick"
    assert any("mechanics" in t for t in texts(app.info))
    assert app.metric[0].label == "Estimated time"
    prefix = "tc_toy_quick_"
    assert app.selectbox(key=prefix + "signal").value == "supervised"
    assert app.number_input(key=prefix + "epochs").value == 1
    app.number_input(key=prefix + "epochs").set_value(0).run()
    assert app.error and "epochs" in texts(app.error)[0]  # validated before starting
    app.number_input(key=prefix + "epochs").set_value(200).run()
    app.button(key="train_start").click().run()
    assert not app.exception and not app.error
    run_id = ws().runs("toy")[-1].run_id
    assert texts(app.subheader)[0].startswith(f"Training: #{run_id}"), (texts(app.subheader), ws().run(run_id))
    app.button(key=f"train_cancel_{run_id}").click().run()  # the live panel's cancel button
    assert not app.exception
    run = ws().wait(run_id, 120)
    assert run.status == "cancelled", run
    app.run()
    assert app.selectbox(key=f"train_past_{run_id}").value == run_id
    assert any("The run was cancelled" in t for t in texts(app.markdown))
    assert app.button(key=f"resume_{run_id}")

    app.number_input(key=prefix + "epochs").set_value(2)
    app.number_input(key=prefix + "batch_size").set_value(8).run()
    app.button(key="train_start").click().run()
    assert not app.exception and not app.error
    run_id = ws().runs("toy")[-1].run_id
    run = ws().wait(run_id, 300)
    assert run.status == "done", run
    app.run()
    assert not app.exception and not app.error, texts(app.error)
    assert app.selectbox(key=f"train_past_{run_id}").value == run_id
    words = " ".join(texts(app.markdown))
    assert "than the starting encoder**" in words and "judged queries (test)" in words and "On the test split" in words
    assert {m.label for m in app.metric} >= {"Steps", "Loss", "Pairs/s", "Tree rebuilds"}
    titles = chart_titles(app)
    assert "Training loss" in titles and any(t.startswith("Sibling accuracy") for t in titles)
    assert any("leaf term alone is not logged" in t for t in texts(app.caption))

    goto(app, "search")
    app.text_input(key="search_query").input("rocket launch").run()
    assert not app.exception and not app.error
    assert app.selectbox(key="search_trained_toy").value == run_id
    assert len([t for t in texts(app.markdown) if t.startswith("**1. ")]) == 3
    badges = " ".join(texts(app.markdown))
    assert any(b in badges for b in ("▲", "▼", "=", "new"))
    app.segmented_control(key="search_mode").set_value("hybrid").run()
    assert not app.exception and not app.error, texts(app.error)
    assert texts(app.subheader) == ["Starting encoder + BM25", "Trained encoder + BM25", "BM25", "Judge these results",
                                    "Why this rank?"]
    assert sum("fitted on 15 train queries" in t for t in texts(app.caption)) == 2
    fused = [t for t in texts(app.markdown) if t.startswith("**1. ")]
    assert len(fused) == 3 and all("dense #" in t and "BM25 #" in t for t in fused[:2])
    app.toggle(key="search_tree").set_value(True).run()
    assert not app.exception and not app.error, texts(app.error)
    routes = [e.label for e in app.expander if e.label.startswith("Tree route")]
    assert len(routes) == 2 and all("of an exact search" in r for r in routes)
    assert len([t for t in texts(app.markdown) if t.startswith("**1. ")]) == 3
    first = ws().search("toy", "rocket launch", run=run_id, k=1)[0]
    app.selectbox(key="search_explain").set_value(first.doc_id).run()
    assert not app.exception and not app.error, texts(app.error)
    labels = {m.label for m in app.metric}
    assert {f"Run #{run_id}", "BM25"} <= labels and any(lbl.startswith("Starting encoder (run #") for lbl in labels)
    [path] = [d.value for d in app.dataframe if "its branch" in d.value.columns]
    assert list(path.columns)[:3] == ["level", "its branch", "query similarity"]
    assert len(path) == ws().tree(run_id).tree.depth + 1


def test_runs_compare_and_evaluate(app, toy_beir):
    app.run()
    _toy(toy_beir)
    ws().encode("toy", branching=4, seed=1)
    goto(app, "runs")
    app.multiselect(key="runs_compare").select(1).select(2).run()
    assert not app.exception
    diff = app.dataframe[1].value
    assert set(diff.index) == {"branching", "seed"}
    assert any("No metrics yet" in t for t in texts(app.caption))
    app.checkbox(key="eval_hybrid_2").check().run()
    app.button(key="eval_2").click().run()
    assert not app.exception and not app.error
    assert app.dataframe[0].value.set_index("run").loc[2, "split"] == "test"
    assert {m["system"] for m in ws().store.metrics(2)} == {"dense", "bm25", "hybrid"}
    metrics = app.dataframe[2].value
    assert ("test", "dense", "nDCG@10") in metrics.index and ("test", "bm25", "MRR@10") in metrics.index

    app.button(key="prep_model_2").click().run()
    app.button(key="prep_trec_2").click().run()
    assert not app.exception and not app.error
    assert [b.proto.label for b in app.get("download_button")] == ["Download model .zip", "Download TREC run"]
    with zipfile.ZipFile(app.session_state["export_model_2"]) as z:
        assert any(n.endswith("hce_fake_encoder.json") for n in z.namelist())
    with open(app.session_state["export_trec_2"]) as f:
        assert len(f.readline().split()) == 6  # qid Q0 docid rank score tag


def test_corpus_page_adds_and_removes_documents(app, toy_beir):
    ws().import_corpus(toy_beir, name="toy")
    ws().encode("toy", branching=3)
    app.run()
    assert not app.exception
    adder = next(u for u in app.get("file_uploader") if u.proto.id.endswith("add_upload") or "add_upload" in u.id)
    adder.set_value(("new.jsonl", b'{"_id": "z1", "text": "zither zither strings"}\n', "application/json"))
    app.run()
    app.button(key="add_docs").click().run()
    assert not app.exception and not app.error
    assert any("Added 1 documents" in t for t in texts(app.success))
    assert ws().search("toy", "zither zither strings")[0].ext_id == "z1"
    run = ws().latest_run("toy")  # one unlike document: the tree asks to be rebuilt
    assert any("rebuilding the tree suggested" in t and "unlike" in t for t in texts(app.warning))
    app.button(key=f"rebuild_{run}").click().run()
    assert not app.exception and any("tree rebuilt (rebuild 1)" in t for t in texts(app.success))
    assert not app.warning and ws().freshness(run).added_since_tree == 0
    app.text_area(key="remove_ids").input("z1, space-0").run()
    app.button(key="remove_docs").click().run()
    assert not app.exception and not app.error
    assert any("Removed 2 documents" in t for t in texts(app.success))
    assert "z1" not in [h.ext_id for h in ws().search("toy", "zither zither strings", k=40)]
    app.text_area(key="remove_ids").input("not-there").run()
    app.button(key="remove_docs").click().run()
    assert app.error and "not-there" in texts(app.error)[0]


def test_app_server_starts_encoding_before_any_browser_connects(app, toy_beir, monkeypatch):
    """`hce app --sample` runs ui/server.py: the sample starts encoding when the process starts, not when the
    first page is opened (no AppTest run here: nothing but the server entry has executed)."""
    import sys
    import ui.server
    ws().import_corpus(toy_beir, name="toy")
    get_workspace().close()
    get_workspace.clear()
    monkeypatch.setenv("HCE_AUTO_ENCODE", "1")
    served = []
    monkeypatch.setattr("streamlit.web.cli.main", lambda: served.append(list(sys.argv)) or 0)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    with pytest.raises(SystemExit):
        ui.server.main(["--server.port=9"])
    assert served and served[0][1:3] == ["run", os.path.join(ui.server.ROOT, "ui", "app.py")]
    assert served[0][-1] == "--server.port=9"
    runs = ws().runs("toy")
    assert [r.kind for r in runs] == ["baseline"]
    wait_all()
    assert ws().run(runs[0].run_id).status == "done"


def test_a_worse_run_is_never_the_default_column(app, toy_beir):
    """Search's trained column and the run pickers default to the newest run that is not worse; a worse run,
    picked, carries its verdict in its name."""
    from hce_engine.evaluation import check, outcome
    app.run()
    _toy(toy_beir)
    good = ws().train("toy", {"epochs": 1, "batch_size": 8, "siblings": 2, "branching": 3})
    bad = ws().train("toy", {"epochs": 1, "batch_size": 8, "siblings": 2, "branching": 3, "seed": 1})
    for run, end in ((good, 0.9), (bad, 0.5)):
        summary = ws().run(run).summary
        summary["outcome"] = outcome([check("judged queries (test)", "ndcg_at_10", 0.8, end, 9)])
        ws().store.update_run(run, summary=summary)
    goto(app, "search")
    box = app.selectbox(key="search_trained_toy")
    assert box.value == good
    assert "worse than its start" in box.format_func(bad) and "worse" not in box.format_func(good)
    goto(app, "siblings")
    assert not app.exception
    assert app.selectbox(key="sib_run").value == good


def test_a_lone_worse_run_is_not_the_default_column(app, toy_beir):
    """When the only trained run came out worse, Search shows the starting encoder alone (as the Train page's
    outcome says) and offers the run, named worse, to pick."""
    from hce_engine.evaluation import check, outcome
    app.run()
    _toy(toy_beir)
    bad = ws().train("toy", {"epochs": 1, "batch_size": 8, "siblings": 2, "branching": 3})
    summary = ws().run(bad).summary
    summary["outcome"] = outcome([check("judged queries (test)", "ndcg_at_10", 0.8, 0.5, 9)])
    ws().store.update_run(bad, summary=summary)
    goto(app, "search")
    app.text_input(key="search_query").input("rocket launch").run()
    assert not app.exception and not app.error
    box = app.selectbox(key="search_trained_toy")
    assert box.value is None and box.options == [ws().run(bad).label]
    assert "worse than its start" in box.options[0]
    assert any("came out worse than the starting encoder" in t for t in texts(app.info))
    box.select(bad).run()
    assert not app.exception and not app.error
    assert any(f"run #{bad} ·" in t for t in texts(app.caption))


def test_upload_names_are_data_not_paths(tmp_path):
    """An uploaded file lands in the given folder whatever its name says; the name stays readable."""
    from ui.common import save_upload

    class Upload:
        def __init__(self, name: str):
            self.name = name

        def getbuffer(self):
            return memoryview(b"q1\tsome query\n")

    for name, saved in (("../../etc/evil.tsv", "evil.tsv"), ("..", "queries.tsv"), ("a\\..\\b c;rm.tsv", "b c;rm.tsv"),
                        (".hidden.jsonl", "hidden.jsonl"), ("my queries.jsonl", "my queries.jsonl"),
                        ("![f](x.png)\n.jsonl", "![f](x.png)_.jsonl")):
        folder = tmp_path / f"f{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        path = save_upload(Upload(name), str(folder), "queries.tsv")
        assert os.path.dirname(path) == str(folder) and os.path.basename(path) == saved, (name, path)
        assert open(path, "rb").read() == b"q1\tsome query\n"


def test_corpus_page_imports_judged_queries_and_rejudges(app, toy_beir):
    """A corpus nobody judged: the Runs page names both ways to judge it; on the Corpus page a bad qrels file
    is a one-line error that changes nothing; good files import into the picked split and re-check the run."""
    w = ws()
    w.import_corpus(os.path.join(toy_beir, "corpus.jsonl"), name="notes")  # documents only, no queries
    w.encode("notes", branching=3)
    run = w.train("notes", {"signal": "ict", "epochs": 1, "batch_size": 8, "siblings": 2, "val_fraction": 0.2})
    assert "judged" not in (w.run(run).summary or {}) or not w.run(run).summary["judged"]
    app.run()
    goto(app, "runs")
    app.selectbox(key="runs_action_run").set_value(run).run()
    caption = " ".join(texts(app.caption))
    assert "**Search** page" in caption and "**Corpus** page" in caption and "Add judged queries" in caption

    goto(app, "corpus")
    queries = b'{"_id": "q1", "text": "rocket launch orbit"}\n{"_id": "q2", "text": "bake bread oven"}\n'
    app.file_uploader(key="queries_upload").set_value(("../../my queries.jsonl", queries, "application/json"))
    bad = b"query-id\tcorpus-id\tscore\nq1\tspace-0\t1\nq2\tno-such-doc\t1\n"
    app.file_uploader(key="qrels_upload").set_value(("judged.tsv", bad, "text/tab-separated-values"))
    app.run()
    assert app.segmented_control(key="queries_split").value == "test"
    app.button(key="queries_import").click().run()
    assert not app.exception
    [error] = texts(app.error)
    assert error.startswith("Importing queries: judged.tsv, line 3:") and "no-such-doc" in error and "\n" not in error
    assert w.splits("notes") == {} and next(c for c in w.corpora() if c["name"] == "notes")["queries"] == 0

    good = b"query-id\tcorpus-id\tscore\nq1\tspace-0\t1\nq1\tspace-4\t1\nq2\tcooking-1\t1\n"
    app.file_uploader(key="qrels_upload").set_value(("judged.tsv", good, "text/tab-separated-values"))
    app.run()
    app.button(key="queries_import").click().run()
    assert not app.exception and not app.error, texts(app.error)
    [done] = texts(app.success)[-1:]
    assert "Imported 2 queries (2 new) and 3 judgements into the test split of notes." in done
    assert "1 trained run(s) checked again" in done or f"run #{run}:" in done
    assert w.splits("notes") == {"test": 2}
    assert "test" in w.run(run).summary["judged"]  # the run now has a verdict from real queries

    app.file_uploader(key="qrels_upload").set_value(("train.tsv", b"q2\tcooking-5\t1\n", "text/plain"))
    app.segmented_control(key="queries_split").set_value("train").run()
    app.button(key="queries_import").click().run()
    assert not app.exception and not app.error, texts(app.error)
    assert "Imported 2 queries (0 new) and 1 judgements into the train split" in texts(app.success)[-1]
    assert w.splits("notes") == {"test": 2, "train": 1}


def test_search_tree_route_table_fits_its_column(app, toy_beir):
    """The tree route's table sits in a third of the page: its short numeric columns
    come first and narrow, and the label (the only long one) is last, so no number is cut off."""
    app.run()
    _toy(toy_beir)
    goto(app, "search")
    app.text_input(key="search_query").input("rocket launch").run()
    app.toggle(key="search_tree").set_value(True).run()
    assert not app.exception and not app.error, texts(app.error)
    [route] = [d for d in app.dataframe if list(d.value.columns) == ["leaf", "similarity", "documents", "label"]]
    config = json.loads(route.proto.columns)
    assert {k: config[k]["width"] for k in ("leaf", "similarity", "documents")} == dict.fromkeys(
        ("leaf", "similarity", "documents"), "small")
    assert config["label"]["width"] == "medium" and config["similarity"]["type_config"]["format"] == "%.3f"
