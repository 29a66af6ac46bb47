"""AppTest of the Tree, Siblings, Map and Learn pages on an empty and on a populated workspace.

UMAP stays out: projections are pre-stored, so the Map page reads them (fragments' run_every never fires
inside AppTest anyway). Plotly charts come back as unknown elements with their JSON in ``.proto.spec``.
"""
from __future__ import annotations

import base64
import json
import os
import re

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from conftest import write_toy_beir

PAGES = os.path.join(os.path.dirname(__file__), "..", "ui", "app_pages")
TIMEOUT = 60


def page(name: str) -> AppTest:
    return AppTest.from_file(os.path.join(PAGES, f"{name}.py"), default_timeout=TIMEOUT)


def charts(at: AppTest) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def n_points(trace: dict) -> int:
    """Points of a plotly trace in JSON (plotly encodes numpy arrays as {"dtype", "bdata"})."""
    x = trace["x"]
    if isinstance(x, dict):
        return len(base64.b64decode(x["bdata"])) // np.dtype(x["dtype"]).itemsize
    return len(x)


def ok(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def app_workspace():
    """The workspace the app opened (st.cache_resource is shared with this process)."""
    from ui.common import get_workspace
    return get_workspace()




def _store_projection(ws, run: int) -> None:
    ids, vecs = ws.store.read_vectors(run)
    ws.store.write_projection(run, ids, (vecs[:, :2] * 10).astype(np.float32))


def _fake_trained_run(ws, corpus: str, model: str) -> int:
    """A finished run of kind "train" (vectors from another fake encoder, its own tree), as the training
    integration stores them."""
    from hce_engine.workspace import doc_text
    cid = ws.store.corpus_id(corpus)
    run = ws.store.create_run(cid, "train", {"signal": "supervised", "negatives": "siblings", "tau": 0.05,
                                             "max_length": 256, "query_max_length": 64, "model": None}, 0,
                              status="running")
    enc = ws.encoder(model)
    df = ws.store.documents(cid)
    texts = [doc_text(t, x) for t, x in zip(df["title"], df["text"])]
    ids = df["doc_id"].to_numpy(np.int64)
    vecs = enc.encode(texts)
    ws.store.write_vectors(run, ids, vecs)
    ws.build_tree(run, vecs, ids, texts, branching=3)
    ws.store.update_run(run, status="done", model_path=model)
    return run


@pytest.fixture
def populated(app_env, tmp_path, tmp_path_factory):
    """toy corpus with a zero-shot baseline (and its map), closed again so the app can open the file."""
    from hce_engine import Workspace
    ws = Workspace(app_env)
    try:
        ws.import_corpus(write_toy_beir(tmp_path / "toy"), name="toy")
        base = ws.encode("toy", branching=3)
        _store_projection(ws, base)
    finally:
        ws.close()
    return {"baseline": base}


@pytest.fixture
def trained(populated, app_env, tmp_path_factory):
    """populated + a "trained" run (another fake encoder) with its map."""
    from hce_engine import Workspace
    from hce_engine.encoder.fake import FakeEncoder
    model = str(tmp_path_factory.mktemp("models") / "trained")
    FakeEncoder(dim=32, seed=7).save(model)
    ws = Workspace(app_env)
    try:
        run = _fake_trained_run(ws, "toy", model)
        _store_projection(ws, run)
    finally:
        ws.close()
    return {**populated, "trained": run}


@pytest.mark.parametrize("name", ["tree", "siblings", "map", "learn"])
def test_pages_on_empty_workspace(app_env, name):
    at = page(name).run()
    ok(at)
    assert any("No corpus yet" in i.value for i in at.info)


def test_tree_page(populated):
    at = page("tree").run()
    ok(at)
    [sun, *_] = charts(at)
    assert sun["data"][0]["type"] == "sunburst" and sun["data"][0]["branchvalues"] == "total"
    # pick a node: level 2, the second node of that level -> its documents and children are listed
    at.selectbox(key="tree_level").set_value(2).run()
    ok(at)
    node_box = at.selectbox(key="tree_node_2")
    second = int(re.search(r"\[#(\d+)\]$", node_box.options[1]).group(1))
    node_box.set_value(second).run()  # AppTest: format_func widgets take the raw value
    ok(at)
    assert any("children" in m.value for m in at.markdown)
    assert any("Documents" in m.value for m in at.markdown) and len(at.dataframe) >= 2
    at.radio(key="tree_kind").set_value("icicle").run()
    ok(at)
    assert charts(at)[0]["data"][0]["type"] == "icicle"
    assert any("Only one tree" in i.value for i in at.info)  # nothing to compare yet


def test_tree_page_compares_two_runs(trained):
    at = page("tree").run()
    ok(at)
    assert at.selectbox(key="tree_run").value == trained["trained"]
    assert [m.label for m in at.metric][:2] == ["ARI, leaf clusters", "ARI, level 1"]
    at.selectbox(key="tree_level").set_value(3).run()  # leaf clusters
    ok(at)
    assert any("Leaf cluster" in m.value for m in at.markdown)


def test_siblings_page_baseline_only(populated):
    at = page("siblings").run()
    ok(at)
    assert any("Only zero-shot runs" in i.value for i in at.info)
    figs = charts(at)  # rank summary + one per level (3) + leaf
    assert len(figs) == 5
    assert any(s.value.startswith("Level 1") for s in at.subheader)
    # pick a document instead of a query
    at.radio(key="sib_mode").set_value("a document").run()
    at.text_input(key="sib_doc_search").input("bread").run()
    ok(at)
    box = at.selectbox(key="sib_doc")
    assert len(box.options) == 6
    ext = re.search(r"\[([^\]]+)\]$", box.options[2]).group(1)
    docs = app_workspace().documents("toy")
    box.set_value(int(docs.loc[docs["ext_id"] == ext, "doc_id"].iloc[0])).run()
    ok(at)
    assert len(charts(at)) == 5 and any("cooking note" in m.value for m in at.markdown)


def test_siblings_page_before_after(trained):
    at = page("siblings").run()
    ok(at)
    assert at.selectbox(key="sib_run").value == trained["trained"]
    assert at.selectbox(key=f"sib_compare_{trained['trained']}").value == trained["baseline"]
    figs = charts(at)
    ranks = figs[0]
    assert [t["name"] for t in ranks["data"]][:2] == [f"before #{trained['baseline']}", f"after #{trained['trained']}"]
    assert all(len([t for t in f["data"] if t["type"] == "bar"]) == 2 for f in figs[1:])  # before | after
    labels = [m.label for m in at.metric]
    assert f"Loss (before #{trained['baseline']})" in labels
    # a query of one's own: the positive becomes its top hit
    at.selectbox(key="sib_query_pick").set_value("✏️ type my own query").run()
    at.text_input(key="sib_query_text").input("violin orchestra").run()
    ok(at)
    assert any("top hit" in c.value for c in at.caption)


def test_map_page(trained):
    at = page("map").run()
    ok(at)
    figs = charts(at)
    assert len(figs) == 2  # before | after, side by side
    assert sum(n_points(t) for t in figs[1]["data"] if t["name"] != "node labels") == 36
    marks = [t for t in figs[1]["data"] if t["name"] == "node labels"]  # node labels: a text trace, no hover
    assert len(marks) == 1 and marks[0]["mode"] == "text" and marks[0]["hoverinfo"] == "skip" and marks[0]["text"]
    at.toggle(key="map_labels").set_value(False).run()
    assert not [t for t in charts(at)[1]["data"] if t["name"] == "node labels"]
    at.number_input(key="map_level").set_value(3).run()
    at.text_input(key="map_query").input("bake bread oven").run()
    ok(at)
    figs = charts(at)
    assert [t["name"] for t in figs[1]["data"]][-2:] == ["query hits", "query"]
    assert len(at.dataframe) >= 1  # the hits table
    at.selectbox(key=f"map_compare_{trained['trained']}").set_value(0).run()  # none
    ok(at)
    assert len(charts(at)) == 1
    # a judged query from the qrels: placed, its relevant documents squared, ranked, and metrics beside the map
    at.text_input(key="map_query").input("").run()
    box = at.selectbox(key="map_judged")
    box.set_value(box.options[0]).run()
    ok(at)
    traces = [t["name"] for t in charts(at)[0]["data"]]
    assert "relevant (qrels)" in traces and traces[-2:] == ["query hits", "query"]
    assert any(m.value.startswith("**Relevant documents**") for m in at.markdown)
    assert any(m.value == "**Retrieval metrics**" for m in at.markdown)


def test_map_page_waits_for_a_missing_projection(populated, app_env, monkeypatch):
    """No stored map: the page starts the background job and says so instead of blocking; once the job
    is done the map is drawn."""
    import time

    import hce_engine.projection as proj
    from hce_engine import Workspace
    ws = Workspace(app_env)
    ws.store.write_projection(populated["baseline"], np.zeros(0, np.int64), np.zeros((0, 2), np.float32))
    ws.close()

    def slow(v, **k):
        time.sleep(0.5)
        return np.asarray(v[:, :2], np.float32)
    monkeypatch.setattr(proj, "project", slow)
    monkeypatch.setattr(proj, "is_warm", lambda: False)
    at = page("map").run()
    ok(at)
    assert not charts(at) and any("Preparing the map engine" in i.value for i in at.info)
    for _ in range(100):
        if app_workspace().projection_status(populated["baseline"]).state == "ready":
            break
        time.sleep(0.05)
    at.run()
    ok(at)
    assert len(charts(at)) == 1


def test_learn_page_walkthrough(populated):
    at = page("learn").run()
    ok(at)
    seen = []
    for i in range(6):
        seen.append(at.radio(key="learn_step").value)
        assert at.header and at.header[0].value[0] == seen[-1][0]
        assert not [m.value for m in at.markdown if ".:" in m.value]  # step 5 once said "terms.:"
        if i < 5:
            at.button(key="learn_next_bottom").click().run()
            ok(at)
    assert at.button(key="learn_next_bottom").disabled
    assert seen == ["1 · Embed", "2 · Cluster", "3 · A path", "4 · Siblings", "5 · The loss", "6 · After training"]
    assert any("Train a run on the Train page" in i.value for i in at.info)


def test_learn_page_after_training(trained):
    at = page("learn").run()
    at.radio(key="learn_step").set_value("6 · After training").run()
    ok(at)
    assert "Tree agreement (leaf ARI)" in [m.label for m in at.metric]
    assert len(charts(at)) == 2


def test_map_selection_lists_exports_and_becomes_a_corpus(populated, app_env):
    at = page("map").run()
    ok(at)
    fig = charts(at)[0]
    spec = fig["data"][0]["customdata"]  # the doc ids, sent as a typed array (base64)
    doc_ids = np.frombuffer(base64.b64decode(spec["bdata"]), dtype=spec["dtype"]).astype(int).tolist()[:5]
    at.session_state["map_main"] = {"selection": {"points": [{"customdata": d} for d in doc_ids],
                                                  "box": [], "lasso": [], "point_indices": []}}
    at.run()
    ok(at)
    assert any("5 selected documents" in m.value for m in at.markdown)
    assert [b.proto.label for b in at.get("download_button")] == ["Download this map (HTML)", "Selection as CSV",
                                                              "Selection as JSONL"]
    at.text_input(key="map_subset_name_main").input("picked")
    at.button[-1].click().run()  # the form's submit button sends the name with it
    ok(at)
    assert any("Created **picked** with 5 documents" in s.value for s in at.success)
    from hce_engine import Workspace
    ws = Workspace(app_env)
    try:
        assert len(ws.documents("picked")) == 5
    finally:
        ws.close()


def test_learn_walkthrough_exports_as_one_offline_page(trained, app_env, tmp_path, capsys):
    from hce_engine.cli import main
    from hce_engine.views.walkthrough import STEPS, TEXT
    out = tmp_path / "learn.html"
    assert main(["--workspace", app_env, "export", "--learn-html", str(out), "--corpus", "toy"]) == 0
    page_text = out.read_text()
    assert page_text.startswith("<!DOCTYPE html>") and "<script src=" not in page_text
    for step in STEPS:  # every step's heading, from the same texts the Learn page shows
        assert TEXT[step][0] in page_text
    assert page_text.count('class="plotly-graph-div"') >= 6 and "<table" in page_text
    assert f"trained run {trained['trained']}" in page_text
    assert main(["--workspace", app_env, "export", "--learn-html", str(out)]) == 1
    assert "--learn-html needs --corpus" in capsys.readouterr().err


# -- the self signal (training without labels): its teacher on the Siblings page, in the Learn walkthrough, its export
ONE_SENTENCE = "lonely note without a second sentence"


@pytest.fixture
def self_trained(app_env, tmp_path):
    """An unjudged corpus "notes" (48 two-sentence documents and one of a single sentence) with a zero-shot
    baseline and a self-signal run (fake encoder), both with their maps."""
    from conftest import TOY_TOPICS
    from hce_engine import Workspace
    texts = [d for ps in TOY_TOPICS.values() for d in ps] * 4
    path = tmp_path / "notes.jsonl"
    path.write_text("".join(f'{{"_id": "d{i}", "title": "{t} {i}", "text": "{t} {i}. A second sentence on {t} '
                            f'number {i}."}}\n' for i, t in enumerate(texts))
                    + f'{{"_id": "solo", "title": "solo", "text": "{ONE_SENTENCE}"}}\n')
    ws = Workspace(app_env)
    try:
        ws.import_corpus(str(path), name="notes")
        run = ws.train("notes", ws.default_config("notes", batch_size=4, siblings=2, branching=3))
        assert ws.run(run).status.value == "done" and ws.run(run).config.signal == "self"
        base = ws.run(run).summary["baseline_run"]
        for r in (base, run):
            _store_projection(ws, r)
        solo = int(ws.documents("notes").set_index("ext_id").loc["solo", "doc_id"])
    finally:
        ws.close()
    return {"baseline": base, "trained": run, "solo": solo}


def test_siblings_page_shows_what_the_teacher_said_for_a_self_run(self_trained):
    run = self_trained["trained"]
    at = page("siblings").run()
    ok(at)
    assert at.selectbox(key="sib_run").value == run and at.toggle(key=f"sib_teacher_{run}").value  # on for self
    assert "What the teacher said (self signal)" in [s.value for s in at.subheader]
    assert any("trained on this pseudo-query with this teacher" in c.value for c in at.caption)
    fig = charts(at)[-1]
    assert [t["name"] for t in fig["data"]] == ["teacher (hybrid)", f"student before #{self_trained['baseline']}",
                                                f"student after #{run}"]
    assert any(m.value.startswith("**Pseudo-query**") for m in at.markdown)
    assert any("KL(teacher ‖ student)" in m.value for m in at.markdown)
    table = at.dataframe[-1].value
    assert {"BM25", "teacher score", "p teacher", "p before", "p after", "rank teacher"} <= set(table.columns)
    assert table["rank teacher"].tolist() == sorted(table["rank teacher"])
    # a document of one sentence yields no pseudo-query: a readable message, the rest of the page stays
    at.radio(key="sib_mode").set_value("a document").run()
    at.text_input(key="sib_doc_search").input("lonely").run()
    at.selectbox(key="sib_doc").set_value(self_trained["solo"]).run()
    assert not at.exception
    assert [e.value for e in at.error] and "it yields no pseudo" in at.error[0].value
    assert len(charts(at)) >= 3  # the siblings' contrasts are still drawn
    at.toggle(key=f"sib_teacher_{run}").set_value(False).run()
    ok(at)


def test_siblings_page_teacher_section_for_another_signal(trained, app_env):
    from hce_engine import Workspace
    ws = Workspace(app_env)
    try:  # a stored training run records the run it started from
        ws.store.update_run(trained["trained"], summary={"baseline_run": trained["baseline"]})
    finally:
        ws.close()
    key = f"sib_teacher_{trained['trained']}"
    at = page("siblings").run()
    ok(at)
    assert not at.toggle(key=key).value and len(charts(at)) == 5  # off for a run of another signal
    at.toggle(key=key).set_value(True).run()
    ok(at)
    assert any("*would* teach" in c.value for c in at.caption)
    assert len(charts(at)) == 6 and len(charts(at)[-1]["data"]) == 3


def test_learn_page_teaches_the_self_signal(self_trained):
    from hce_engine.views.walkthrough import SELF_STEP, STEPS, TEXT
    at = page("learn").run()
    ok(at)
    assert list(at.radio(key="learn_step").options) == STEPS + [SELF_STEP]
    at.radio(key="learn_step").set_value(SELF_STEP).run()
    ok(at)
    assert at.header[0].value == TEXT[SELF_STEP][0] and at.button(key="learn_next_bottom").disabled
    [fig] = charts(at)
    assert [t["name"] for t in fig["data"]][0] == "teacher (hybrid)"
    assert any(m.value.startswith("**Pseudo-query**") for m in at.markdown) and len(at.dataframe) == 1
    # the example document has one sentence: the first document that yields a pseudo-query stands in
    at.selectbox(key="learn_doc").set_value(self_trained["solo"]).run()
    ok(at)
    assert any("showing the first document" in c.value for c in at.caption) and len(charts(at)) == 1
    at.button(key="learn_back_bottom").click().run()
    ok(at)
    assert at.radio(key="learn_step").value == STEPS[-1]


def test_learn_walkthrough_prefers_the_self_run_and_exports_its_step(self_trained, app_env, tmp_path_factory):
    from hce_engine import Workspace, views
    from hce_engine.encoder.fake import FakeEncoder
    from hce_engine.plotting import export
    from hce_engine.views.walkthrough import SELF_STEP, TEXT
    model = str(tmp_path_factory.mktemp("models") / "other")
    FakeEncoder(dim=32, seed=7).save(model)
    ws = Workspace(app_env)
    try:
        w = views.walkthrough(ws, "notes")
        assert w["is_self"] and w["after"].run_id == self_trained["trained"] and w["steps"][-1] == SELF_STEP
        page_text = export.learn_html(ws, "notes")
        assert TEXT[SELF_STEP][0] in page_text and "Pseudo-query" in page_text and "teacher (hybrid)" in page_text
        _fake_trained_run(ws, "notes", model)  # newer, another signal: the unjudged corpus still shows the self run
        assert views.walkthrough(ws, "notes")["after"].run_id == self_trained["trained"]
    finally:
        ws.close()


def test_pages_show_the_first_encode_instead_of_a_dead_end(app_env, tmp_path, monkeypatch):
    """Right after `hce app --sample` the corpus is still being encoded: Tree, Siblings, Map and Learn show the
    encode's live progress (with its cancel button), and the Tree page draws the tree once it is done."""
    import threading

    from hce_engine import Workspace
    from hce_engine.encoder.fake import FakeEncoder
    ws = Workspace(app_env)
    try:
        ws.import_corpus(write_toy_beir(tmp_path / "toy"), name="toy")
    finally:
        ws.close()
    release = threading.Event()
    encode = FakeEncoder.encode

    def held_encode(self, *args, **kwargs):
        assert release.wait(60), "the test never released the encode"
        return encode(self, *args, **kwargs)

    monkeypatch.setattr(FakeEncoder, "encode", held_encode)
    run = app_workspace().start_encode("toy")
    try:
        for name, key in (("tree", "tree"), ("siblings", "sib"), ("map", "map"), ("learn", "learn")):
            at = page(name).run()
            ok(at)
            assert any("being encoded" in i.value for i in at.info), (name, [i.value for i in at.info])
            assert at.get("progress") and at.button(key=f"{key}_cancel_{run}"), name
            assert not charts(at), name
    finally:
        release.set()
    assert app_workspace().wait(run, 60).status == "done"
    at = page("tree").run()
    ok(at)
    assert not any("being encoded" in i.value for i in at.info)
    assert at.selectbox(key="tree_run").value == run and charts(at)


def test_learn_page_uses_a_pseudo_query_without_judged_queries(self_trained):
    """No judged queries: the example pair is a sentence of the document and the document without it, said so;
    the leaf is then a contrast to learn (the document as its own query scores p = 1 there)."""
    from hce_engine.views.walkthrough import STEPS
    at = page("learn").run()
    at.radio(key="learn_step").set_value(STEPS[2]).run()
    ok(at)
    doc = at.selectbox(key="learn_doc").value
    [query] = [m.value for m in at.markdown if m.value.startswith("**Pseudo-query:**")]
    assert "pseudo-query" in " ".join(m.value for m in at.markdown) and "without that sentence" in " ".join(
        m.value for m in at.markdown)
    at.radio(key="learn_step").set_value(STEPS[4]).run()
    ok(at)
    table = at.dataframe[0].value.set_index("level")
    assert table.loc["documents", "p(positive)"] < 0.99, table
    at.selectbox(key="learn_doc").set_value(self_trained["solo"]).run()  # one sentence: no pseudo-query
    ok(at)
    assert at.dataframe[0].value.set_index("level").loc["documents", "p(positive)"] > 0.99
    assert doc != self_trained["solo"] and query
