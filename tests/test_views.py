"""Explorer views (hce_engine.views) on the toy corpus with the fake encoder."""
from __future__ import annotations

import importlib
import json
import math
import re
import time

import numpy as np
import pandas as pd
import pytest
from conftest import write_toy_beir

from hce_engine import InputError, NotFoundError, Workspace, views
from hce_engine.encoder.fake import FakeEncoder

QUERY = "rocket launch orbit space"


@pytest.fixture(scope="module")
def other_model(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("models") / "fake-seed1")
    FakeEncoder(dim=32, seed=1).save(path)
    return path


@pytest.fixture(scope="module")
def toy_ws(tmp_path_factory, fake_model, other_model):
    """One workspace for the read-only tests: run a (fake encoder seed 0) and run b (seed 1), both b=3."""
    root = tmp_path_factory.mktemp("views")
    ws = Workspace(str(root / "ws"), default_model=fake_model)
    ws.import_corpus(write_toy_beir(root / "toy"), name="toy")
    a = ws.encode("toy", branching=3)
    b = ws.encode("toy", model=other_model, branching=3)
    yield ws, a, b
    ws.close()


def check_ranks(cands: list[dict], score: str = "score", rank: str = "rank") -> None:
    s = np.array([c[score] for c in cands])
    for c in cands:
        assert c[rank] == 1 + int((s > c[score]).sum())


# -- siblings -------------------------------------------------------------------------------------
def test_siblings_view_follows_the_path(toy_ws):
    ws, run, _ = toy_ws
    tree = ws.tree(run).tree
    v = views.siblings_view(ws, run, query=QUERY, max_siblings=100)
    json.dumps(v)  # JSON-friendly
    assert len(v["levels"]) == tree.depth == v["depth"]
    top = ws.search("toy", QUERY, run=run, k=1)[0].doc_id
    assert v["doc"]["doc_id"] == top and v["positive_source"] == "top hit"
    path = tree.path(int(tree.positions_of([top])[0]))
    parent = 0
    for t, lv in enumerate(v["levels"], start=1):
        nodes = [c["node"] for c in lv["candidates"]]
        assert lv["positive"] == path[t - 1] and lv["parent"] == parent
        assert lv["positive"] in nodes and sorted(nodes) == sorted(tree.children(parent).tolist())
        assert [c["node"] for c in lv["candidates"] if c["is_positive"]] == [lv["positive"]]
        assert all(tree.parent[n] == parent for n in nodes)
        check_ranks(lv["candidates"])
        scores = [c["score"] for c in lv["candidates"]]
        assert scores == sorted(scores, reverse=True)
        pos = next(c for c in lv["candidates"] if c["is_positive"])
        assert lv["rank"] == pos["rank"] and 0 < lv["p_positive"] <= 1
        assert math.isclose(lv["loss"], -math.log(lv["p_positive"]), rel_tol=1e-6)
        assert lv["n_candidates"] == len(nodes)
        parent = lv["positive"]
    leaf = v["leaf"]
    members = tree.doc_ids[tree.leaf_docs(parent)].tolist()
    assert leaf["leaf_node"] == parent and sorted(c["doc_id"] for c in leaf["candidates"]) == sorted(members)
    assert leaf["positive"] == top and leaf["rank"] == 1  # the top hit beats its leaf-mates
    check_ranks(leaf["candidates"])
    assert [p["node"] for p in v["path"]] == path


def test_siblings_view_document_anchor_and_limits(toy_ws):
    ws, run, _ = toy_ws
    doc = int(ws.documents("toy")["doc_id"].iloc[7])
    v = views.siblings_view(ws, run, doc_id=doc, max_siblings=2)
    assert v["anchor"] == "document" and v["positive_source"] == "document" and v["query"] is None
    assert v["leaf"]["rank"] == 1
    assert math.isclose(next(c["score"] for c in v["leaf"]["candidates"] if c["is_positive"]), 1.0, abs_tol=1e-5)
    for e in v["levels"] + [v["leaf"]]:  # truncated lists keep the positive; ranks use every candidate
        assert len(e["candidates"]) <= 2 and any(c["is_positive"] for c in e["candidates"])
    with pytest.raises(InputError):
        views.siblings_view(ws, run)
    with pytest.raises(NotFoundError):
        views.siblings_view(ws, run, doc_id=10 ** 9)


def test_siblings_view_compare_run_same_tree(toy_ws):
    ws, a, b = toy_ws
    doc = int(ws.documents("toy")["doc_id"].iloc[3])
    plain = views.siblings_view(ws, a, query=QUERY, doc_id=doc, max_siblings=100)
    v = views.siblings_view(ws, a, query=QUERY, doc_id=doc, compare_run=b, max_siblings=100)
    assert v["compare_run"] == b and v["positive_source"] == "relevant document" and v["doc"]["doc_id"] == doc
    for e0, e in zip(plain["levels"] + [plain["leaf"]], v["levels"] + [v["leaf"]]):
        key = "node" if "node" in e["candidates"][0] else "doc_id"
        assert [c[key] for c in e0["candidates"]] == [c[key] for c in e["candidates"]]  # same tree, same sets
        assert [c["score"] for c in e0["candidates"]] == [c["score"] for c in e["candidates"]]
        check_ranks(e["candidates"], "score_compare", "rank_compare")
        pos = next(c for c in e["candidates"] if c["is_positive"])
        assert e["rank_compare"] == pos["rank_compare"] and "loss_compare" in e
    diffs = [abs(c["score"] - c["score_compare"]) for c in v["leaf"]["candidates"]]
    assert max(diffs) > 1e-3  # another encoder, other scores


def test_query_and_document_helpers(toy_ws):
    ws, a, b = toy_ws
    judged = views.judged_queries(ws, "toy")
    assert len(judged) == 24 and judged[0]["split"] == "train" and judged[0]["query_id"] == "q0"
    docs = ws.documents("toy").set_index("ext_id")
    assert judged[0]["doc_ids"] == [int(docs.loc["space-0", "doc_id"])]
    assert views.doc_queries(ws, "toy", judged[0]["doc_ids"][0])[0]["query_id"] == "q0"
    found = views.find_documents(ws, "toy", "BREAD")
    assert len(found) == 6 and list(found.columns) == ["doc_id", "ext_id", "title"]
    assert views.find_documents(ws, "toy", "music note 1")["ext_id"].iloc[0] == "music-1"  # title match first
    assert views.default_compare_run(ws, a) is None


# -- trees ----------------------------------------------------------------------------------------
def test_compare_trees_self_and_other(toy_ws):
    ws, a, b = toy_ws
    same = views.compare_trees(ws, a, a)
    assert same["ari_leaf"] == pytest.approx(1.0) and same["ari_level1"] == pytest.approx(1.0)
    assert same["mean_jaccard"] == 1.0 and same["unchanged"] == 1.0 and same["n_shared"] == 36
    assert all(r["ari"] == pytest.approx(1.0) for r in same["ari_levels"])
    other = views.compare_trees(ws, a, b, n_moved=5)
    assert -1 <= other["ari_leaf"] < 1 and len(other["moved"]) == 5
    jac = other["moved"]["jaccard"].tolist()
    assert jac == sorted(jac) and all(other["moved"]["title"].str.len() > 0)


def test_compare_rebuilds_and_quality(tmp_path, fake_model, toy_beir):
    ws = Workspace(str(tmp_path / "ws"), default_model=fake_model)
    try:
        ws.import_corpus(toy_beir, name="toy")
        run = ws.encode("toy", branching=3)
        ids, vecs = ws.store.read_vectors(run)
        df = ws.documents("toy")
        texts = [f"{t} {x}" for t, x in zip(df["title"], df["text"])]
        ws.build_tree(run, vecs.copy(), ids, texts, rebuild=1, branching=4, seed=3)  # store arrays are read-only
        assert [r["rebuild"] for r in views.list_rebuilds(ws, run)] == [0, 1]
        cmp = views.compare_trees(ws, run, run, rebuild_a=0, rebuild_b=1)
        assert (cmp["rebuild_a"], cmp["rebuild_b"]) == (0, 1) and cmp["n_shared"] == 36
        q = views.tree_quality(ws, run)
        assert [r["rebuild"] for r in q["rebuilds"]] == [0, 1]
        assert set(q["levels"]["rebuild"]) == {0, 1} and sum(q["leaf_sizes"]) == 36
        assert q["coherence"] is None  # one relevant document per toy query
    finally:
        ws.close()


def test_tree_overview_and_node_detail(toy_ws):
    ws, run, _ = toy_ws
    tree = ws.tree(run).tree
    ov = views.tree_overview(ws, run)
    nodes = ov["nodes"]
    assert ov["depth"] == tree.depth and nodes["node"].iloc[0] == 0 and nodes["parent"].iloc[0] == -1
    kids = nodes[nodes["parent"] >= 0].groupby("parent")["size"].sum()
    for parent, total in kids.items():  # branchvalues="total" holds
        assert total == int(nodes.set_index("node").loc[parent, "size"])
    assert views.tree_overview(ws, run, max_level=1)["nodes"]["level"].max() == 1
    d = views.node_detail(ws, run, 0)
    assert d["size"] == 36 and len(d["docs"]) == 36 and sorted(c["node"] for c in d["children"]) == \
        sorted(tree.children(0).tolist())
    leaf = int(tree.doc_leaf[0])
    d = views.node_detail(ws, run, leaf)
    assert d["is_leaf"] and d["children"] == [] and len(d["docs"]) == tree.size[leaf]
    assert [p["node"] for p in d["path"]] == [0] + tree.path(0)
    cos = d["docs"]["cosine"].tolist()
    assert cos == sorted(cos, reverse=True)


# -- map ------------------------------------------------------------------------------------------
@pytest.fixture
def fake_project(monkeypatch):
    """Replace UMAP with a counted, instant stand-in: the first two coordinates (or the init)."""
    calls = []

    def project(vectors, seed=0, n_neighbors=15, min_dist=0.1, init=None, **kw):
        calls.append(len(vectors))
        if init is not None:  # rotate + shift the starting layout: Procrustes must undo it
            rot = np.array([[0.0, -1.0], [1.0, 0.0]])
            return (np.asarray(init) @ rot * 2 + 5).astype(np.float32)
        return np.asarray(vectors[:, :2] * 10, dtype=np.float32)

    import hce_engine.projection as proj
    monkeypatch.setattr(proj, "project", project)
    return calls


def test_projection_cached_and_aligned(toy_ws, fake_project):
    ws, a, b = toy_ws
    ws.store.write_projection(a, np.zeros(0, np.int64), np.zeros((0, 2), np.float32))  # clear
    ws.store.write_projection(b, np.zeros(0, np.int64), np.zeros((0, 2), np.float32))
    ids, xy = ws.projection(a)
    assert fake_project == [36] and xy.shape == (36, 2) and list(ids) == sorted(ids)
    ids2, xy2 = ws.projection(a)
    assert fake_project == [36] and np.array_equal(ids, ids2) and np.allclose(xy, xy2)  # read from the store
    ids_b, xy_b = ws.projection(b, align_to=a)
    assert fake_project == [36, 36] and xy_b.shape == (36, 2)
    assert np.allclose(xy_b, xy, atol=1e-3)  # started from a's layout, aligned back onto it
    ws.projection(b, align_to=a)
    assert len(fake_project) == 2
    assert ws.projection_status(b, a).state == "ready"


def test_ensure_projection_runs_in_background(tmp_path, fake_model, toy_beir, monkeypatch):
    started = []

    def slow_project(vectors, seed=0, init=None, **kw):
        started.append(1)
        time.sleep(0.3)
        return np.asarray(vectors[:, :2], dtype=np.float32)

    import hce_engine.projection as proj
    monkeypatch.setattr(proj, "project", slow_project)
    ws = Workspace(str(tmp_path / "ws"), default_model=fake_model)
    try:
        ws.import_corpus(toy_beir, name="toy")
        run = ws.encode("toy", branching=3)
        assert ws.projection_status(run).state == "missing"
        t0 = time.monotonic()
        st = ws.ensure_projection(run)
        assert time.monotonic() - t0 < 0.25 and st.state in ("computing", "ready")
        assert ws.ensure_projection(run).state in ("computing", "ready")  # no second thread
        for _ in range(100):
            if ws.projection_status(run).state == "ready":
                break
            time.sleep(0.05)
        assert ws.projection_status(run).state == "ready" and len(started) == 1

        def broken(*a, **k):
            raise RuntimeError("boom")
        monkeypatch.setattr(proj, "project", broken)
        run2 = ws.encode("toy", branching=3)
        ws.ensure_projection(run2)
        for _ in range(100):
            if ws.projection_status(run2).state == "failed":
                break
            time.sleep(0.05)
        s = ws.projection_status(run2)
        assert s.state == "failed" and "boom" in s.error
    finally:
        ws.close()


def test_map_frame_and_place_query(toy_ws, fake_project):
    ws, a, b = toy_ws
    tree = ws.tree(a).tree
    df = views.map_frame(ws, a, level=1)
    assert list(df.columns) == ["doc_id", "ext_id", "title", "x", "y", "node_at_level", "label", "path"]
    assert len(df) == 36 and df["title"].str.len().min() > 0
    pos = tree.positions_of(df["doc_id"].to_numpy())
    assert (df["node_at_level"].to_numpy() == tree.paths()[pos, 0]).all()
    assert df["path"].str.count("›").eq(tree.depth - 1).all()
    deep = views.map_frame(ws, a, level=99)
    assert (deep["node_at_level"].to_numpy() == tree.doc_leaf[pos]).all()
    other = views.map_frame(ws, b, level=1, tree_run=a)  # b's map coloured by a's tree
    assert set(other["node_at_level"]) == set(df["node_at_level"])
    placed = views.place_query(ws, a, QUERY, k=5)
    hits = placed["hits"]
    assert len(hits) == 5 and list(hits["rank"]) == [1, 2, 3, 4, 5]
    assert hits["x"].min() - 1e-6 <= placed["x"] <= hits["x"].max() + 1e-6
    with pytest.raises(InputError):
        views.place_query(ws, a, "  ")


# -- corpus stats ---------------------------------------------------------------------------------
def test_corpus_stats(tmp_path, fake_model, toy_beir, monkeypatch):
    ws = Workspace(str(tmp_path / "ws"), default_model=fake_model)
    try:
        ws.import_corpus(toy_beir, name="toy")
        s = views.corpus_stats(ws, "toy")
        json.dumps(s)
        assert (s["documents"], s["removed"], s["with_title"], s["queries"]) == (36, 0, 36, 24)
        assert s["words"]["min"] == s["words"]["max"] == 15 and sum(s["words_hist"]["counts"]) == 36
        assert s["duplicates"] == {"groups": 0, "documents": 0, "examples": []}
        assert s["splits"] == [{"split": "test", "queries": 9, "qrels": 9, "relevant_per_query": 1.0},
                               {"split": "train", "queries": 15, "qrels": 15, "relevant_per_query": 1.0}]
        path = tmp_path / "dup.jsonl"
        rows = [{"_id": "a", "text": "Same  text here"}, {"_id": "b", "text": "same text HERE"},
                {"_id": "c", "text": "same text here"}, {"_id": "d", "text": "other words " * 200},
                {"_id": "e", "text": "word " * 200}, {"_id": "f", "text": "word " * 180}]  # 200 words: > 256 tokens
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        ws.import_corpus(str(path), name="dup")
        d = views.corpus_stats(ws, "dup")
        assert d["duplicates"]["groups"] == 1 and d["duplicates"]["documents"] == 2
        assert d["duplicates"]["examples"][0]["ext_ids"] == ["a", "b", "c"] and d["long_docs"] == 2
        # tokens against the 256-token window: words are converted at the stated ratio (256 / 1.4 = 182 words)
        assert (d["max_tokens"], d["tokens_per_word"], d["long_words"]) == (256, 1.4, 182)
        assert d["with_title"] == 0 and d["splits"] == [] and d["queries"] == 0
        # Unicode: words are runs of letters, digits and '_' (Python's \w), white space is what str.split() splits
        rows = [{"_id": "u1", "title": "Café ２", "text": "Naïve\u00a0text\u3000HERE x²"},
                {"_id": "u2", "title": "\t", "text": "naïve text\x85here  X²"},
                {"_id": "u3", "text": "naïve-text here x²"}]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        ws.import_corpus(str(path), name="unicode")
        u = views.corpus_stats(ws, "unicode")
        expected = [len(re.findall(r"\w+", r.get("title", ""))) + len(re.findall(r"\w+", r["text"])) for r in rows]
        assert (u["words"]["min"], u["words"]["max"]) == (min(expected), max(expected)) == (4, 6)
        assert u["duplicates"]["examples"] == [{"ext_ids": ["u1", "u2"], "count": 2, "snippet": "Naïve text HERE x²"}]
        assert u["with_title"] == 1
        # the document statistics are saved for the documents' state: read back, recomputed after a removal
        computed = []
        module = importlib.import_module("hce_engine.views.corpus_stats")  # views.corpus_stats is the function
        original = module._document_stats

        def counting(*args):
            computed.append(args[1])
            return original(*args)
        monkeypatch.setattr(module, "_document_stats", counting)
        assert views.corpus_stats(ws, "unicode") == u and computed == []
        ws.remove_documents("unicode", ["u2"])
        after = views.corpus_stats(ws, "unicode")
        assert computed == ["unicode"] and (after["documents"], after["removed"]) == (2, 1)
        assert after["duplicates"]["groups"] == 0
        assert views.corpus_stats(ws, "unicode", bins=5)["words_hist"] and computed == ["unicode"] * 2
    finally:
        ws.close()


def test_map_labels_are_placed_biggest_first_without_overlap():
    import pandas as pd

    from hce_engine.views import map_labels
    rng = np.random.default_rng(0)
    rows = []
    for node, (cx, cy, n) in enumerate([(0, 0, 50), (0.5, 0, 30), (5, 5, 20), (10, 0, 2), (5, -5, 10)], start=1):
        for _ in range(n):
            rows.append({"x": cx + 0.05 * rng.normal(), "y": cy + 0.05 * rng.normal(), "node_at_level": node,
                         "label": f"topic {node} words"})
    frame = pd.DataFrame(rows)
    labels = map_labels(frame, width=600, height=400)
    assert list(labels["node"]) == [1, 2, 3, 5]  # 4 has too few points
    assert labels["font_size"].is_monotonic_decreasing and labels["font_size"].between(11, 18).all()
    one = labels.iloc[0]
    assert abs(one["node_x"] - frame[frame.node_at_level == 1]["x"].median()) < 1e-9 and one["size"] == 50
    assert one["left"] >= 0 and abs(one["y"] - one["node_y"]) < 1e-9  # at the left edge: moved right to stay on the map
    # 2 would overlap 1 (biggest wins): it is written beside its point instead, the boxes apart
    two = labels.iloc[1]
    assert (two["x"], two["y"]) != (two["node_x"], two["node_y"])
    boxes = labels[["left", "right", "top", "bottom"]].to_numpy()
    assert not any(a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]
                   for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert len(map_labels(frame, max_labels=1)) == 1
    assert map_labels(frame.assign(label="")).empty
    # the same frame drawn larger has room for the neighbour's label at its own point
    big = map_labels(frame, width=6000, height=4000).set_index("node")
    assert np.allclose(big.loc[2, ["x", "y"]].astype(float), big.loc[2, ["node_x", "node_y"]].astype(float))


def test_thinning_keeps_sparse_regions_and_selection_stays_exact():
    import pandas as pd

    from hce_engine.views import select_region, thin_for_display
    rng = np.random.default_rng(1)
    dense = rng.normal(0, 0.05, size=(20_000, 2))
    sparse = rng.uniform(5, 10, size=(300, 2))
    xy = np.vstack([dense, sparse])
    frame = pd.DataFrame({"doc_id": np.arange(len(xy)), "x": xy[:, 0], "y": xy[:, 1]})
    drawn = thin_for_display(frame, max_points=2_000)
    assert len(drawn) <= 2_000 and drawn["doc_id"].is_unique
    assert set(range(20_000, 20_300)) <= set(drawn["doc_id"])  # the sparse region is drawn whole
    assert thin_for_display(frame, max_points=2_000)["doc_id"].tolist() == drawn["doc_id"].tolist()  # seeded
    assert thin_for_display(frame.head(100)) is not None and len(thin_for_display(frame.head(100))) == 100
    # a box around the dense core selects every document in it, drawn or not
    got = select_region(frame, box=[{"x": [-1, 1], "y": [1, -1]}])
    assert sorted(got) == list(range(20_000))
    # a lasso triangle: exactly the points inside it
    tri = {"x": [4.0, 11.0, 4.0], "y": [4.0, 4.0, 11.0]}
    want = frame[(frame.x >= 4) & (frame.y >= 4) & (frame.x + frame.y <= 15)]["doc_id"].tolist()
    assert sorted(select_region(frame, lasso=[tri])) == sorted(want) and want


def test_pseudo_queries_and_a_positive_without_its_sentence(toy_ws):
    """A corpus without judged queries teaches with pseudo-queries: a sentence of the document is the query and
    the document without it the positive; the leaf then is a real contrast, not the document finding itself."""
    ws, run, _ = toy_ws
    pseudo = views.pseudo_queries(ws, "toy", limit=5)
    assert len(pseudo) == 5 and [p["ext_id"] for p in pseudo] == list(ws.documents("toy")["ext_id"][:5])
    for p in pseudo:
        assert p["query"] and p["query"] not in p["doc_text"] and len(p["doc_text"]) > 10
    p = pseudo[0]
    stored = views.siblings_view(ws, run, doc_id=p["doc_id"], query=p["query"])
    cut = views.siblings_view(ws, run, doc_id=p["doc_id"], query=p["query"], positive_text=p["doc_text"])
    itself = views.siblings_view(ws, run, doc_id=p["doc_id"])
    score = {name: next(c["score"] for c in v["leaf"]["candidates"] if c["is_positive"])
             for name, v in (("stored", stored), ("cut", cut), ("itself", itself))}
    assert math.isclose(score["itself"], 1.0, abs_tol=1e-5) and score["cut"] < score["stored"] < score["itself"]
    others = [c["score"] for c in cut["leaf"]["candidates"] if not c["is_positive"]]
    assert others == [c["score"] for c in stored["leaf"]["candidates"] if not c["is_positive"]]  # only it changed
    assert views.pseudo_queries(ws, "toy", doc_ids=[p["doc_id"]]) == [p]


def test_walkthrough_example_is_a_pseudo_query_without_judged_queries(tmp_path, fake_model):
    from hce_engine.views.walkthrough import PSEUDO_PAIR
    ws = Workspace(str(tmp_path / "ws"), default_model=fake_model)
    try:
        ws.import_corpus(write_toy_beir(tmp_path / "toy") + "/corpus.jsonl", name="notes")
        ws.encode("notes", branching=3)
        w = views.walkthrough(ws, "notes")
        first = views.pseudo_queries(ws, "notes", limit=1)[0]
        assert w["pair"] == (first["doc_id"], first["query"]) and w["positive_text"] == first["doc_text"]
        assert w["what"] == PSEUDO_PAIR and "pseudo-query" in PSEUDO_PAIR
    finally:
        ws.close()


def test_map_points_describe_only_the_rows_shown(toy_ws, monkeypatch):
    """The Map page's cheap path: every point without texts, texts for the drawn or selected rows only; together
    they give map_frame's rows; a selection over the points lists documents a thinned drawing left out."""
    ws, a, b = toy_ws
    full = views.map_frame(ws, a, level=2)
    pts = views.map_points(ws, a, level=2)
    assert list(pts.columns) == ["doc_id", "x", "y", "node_at_level", "label"]
    assert isinstance(pts["label"].dtype, pd.CategoricalDtype)
    for col in ["doc_id", "x", "y", "node_at_level"]:
        np.testing.assert_array_equal(pts[col].to_numpy(), full[col].to_numpy())
    assert pts["label"].astype(str).tolist() == full["label"].tolist()
    asked = []
    real = ws.store.display_rows
    monkeypatch.setattr(ws.store, "display_rows", lambda cid, ids=None: asked.append(ids) or real(cid, ids))
    drawn = views.describe_points(ws, a, views.thin_for_display(pts, max_points=8, grid=2))
    assert len(asked) == 1 and len(asked[0]) == len(drawn) <= 8  # only the drawn documents were read
    want = full.set_index("doc_id").loc[drawn["doc_id"]].reset_index()
    pd.testing.assert_frame_equal(drawn.reset_index(drop=True)[list(full.columns)], want[list(full.columns)])
    box = [{"x": [pts["x"].min() - 1, pts["x"].max() + 1], "y": [pts["y"].min() - 1, pts["y"].max() + 1]}]
    assert sorted(views.select_region(pts, box)) == sorted(full["doc_id"].tolist())  # all 36, not the 8 drawn
    other = views.map_points(ws, b, level=1, tree_run=a)
    np.testing.assert_array_equal(other["node_at_level"], views.map_frame(ws, b, level=1, tree_run=a)["node_at_level"])
    sizes = views.tree_overview(ws, a)["nodes"].groupby("level").size().to_dict()
    assert views.level_sizes(ws, a) == sizes
    assert (views.describe_points(ws, a, pts, paths=False)["path"] == "").all()


def test_selection_file_exports_the_selected_rows_with_their_texts(toy_ws):
    """The Map page's selection download (built on click): the selected rows only, in order, with text, node
    and path; CSV and JSON lines say the same; an unknown format is refused."""
    import io

    ws, a, _ = toy_ws
    pts = views.map_points(ws, a, level=2)
    sel = views.describe_points(ws, a, pts.iloc[[5, 1, 9]])
    docs = ws.documents("toy").set_index("doc_id")
    csv = pd.read_csv(io.BytesIO(views.selection_file(ws, "toy", sel, "csv")), dtype=str, keep_default_na=False)
    assert list(csv.columns) == ["_id", "title", "text", "node", "path"]
    assert csv["_id"].tolist() == sel["ext_id"].tolist()
    assert csv["text"].tolist() == docs.loc[sel["doc_id"], "text"].tolist()
    assert csv["node"].tolist() == sel["label"].tolist() and csv["path"].tolist() == sel["path"].tolist()
    lines = [json.loads(x) for x in views.selection_file(ws, "toy", sel, "jsonl").decode().splitlines()]
    assert [x["_id"] for x in lines] == csv["_id"].tolist() and [x["text"] for x in lines] == csv["text"].tolist()
    with pytest.raises(InputError, match="unknown selection format"):
        views.selection_file(ws, "toy", sel, "xlsx")


def test_doc_frame_titles_without_reading_every_text(toy_ws):
    from hce_engine.views.map import _doc_frame
    ws, _, _ = toy_ws
    cid = ws.store.create_corpus("blank-titles", "test")
    ids = ws.store.insert_documents(cid, ["t", "u", "v"], ["  A title ", "", " "],
                                    ["text of t", "the text  of u", ""], [None] * 3)
    df = _doc_frame(ws, "blank-titles", ids[::-1])
    assert df["title"].tolist() == ["A title", "the text of u", "v"]  # the title, else a snippet, else the id
    assert df["doc_id"].tolist() == sorted(ids.tolist())


def test_judged_queries_reads_no_document_table(toy_ws, monkeypatch):
    ws, _, _ = toy_ws
    want = views.judged_queries(ws, "toy")
    assert want and all(q["doc_ids"] for q in want)
    monkeypatch.setattr(ws, "documents", lambda *a, **k: pytest.fail("read the whole corpus"))
    assert views.judged_queries(ws, "toy") == want
