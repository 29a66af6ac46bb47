"""Shared fixtures: a tiny deterministic fake encoder saved as a model folder, and workspaces using it."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: What the tests that use SciFact read from its BEIR folder.
SCIFACT_FILES = ("corpus.jsonl", "queries.jsonl", os.path.join("qrels", "train.tsv"), os.path.join("qrels", "test.tsv"))


def scifact_dir(environ: Mapping[str, str] | None = None, root: Path = ROOT) -> Path:
    """Where the tests (and ``benchmarks/common.py``) look for SciFact in BEIR layout: ``$HCE_SCIFACT`` when it
    is set, else ``../shared/data/scifact`` next to the repository root. SciFact (CC BY-NC 2.0) is not shipped."""
    env = (os.environ if environ is None else environ).get("HCE_SCIFACT")
    return Path(env) if env else root.parent / "shared" / "data" / "scifact"


def scifact_missing(path: str | os.PathLike) -> str | None:
    """None when ``path`` holds what the SciFact tests read, else why not: the reason their skip prints."""
    path = Path(path)
    missing = [name for name in SCIFACT_FILES if not (path / name).is_file()]
    if not missing:
        return None
    detail = "" if not path.is_dir() else f" (no {', '.join(missing)})"
    return f"SciFact not found at {path}{detail}: set HCE_SCIFACT=<folder in BEIR layout> to run this test"


SCIFACT = str(scifact_dir())
#: Marks a test that needs SciFact: it skips, saying where it looked and how to point it elsewhere.
needs_scifact = pytest.mark.skipif(scifact_missing(SCIFACT) is not None, reason=scifact_missing(SCIFACT) or "")

SAMPLE = os.path.join(os.path.dirname(__file__), "..", "sample_corpora", "jargon_file", "corpus.jsonl")

TOY_TOPICS = {
    "space": ["rocket launch orbit", "planet star telescope", "astronaut moon mission", "galaxy nebula light"],
    "cooking": ["bake bread oven", "pasta sauce tomato", "knife chop onion", "soup broth simmer"],
    "music": ["guitar chord melody", "drum rhythm beat", "piano sonata concert", "violin orchestra bow"],
}


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one intra-op thread is much faster than two on a busy 2-core machine."""
    from hce_engine.threads import one_thread_if
    with one_thread_if(True):
        yield


@pytest.fixture(scope="session")
def fake_model(tmp_path_factory) -> str:
    from hce_engine.encoder.fake import FakeEncoder
    path = str(tmp_path_factory.mktemp("models") / "fake")
    FakeEncoder(dim=32, seed=0).save(path)
    return path


def write_toy_beir(folder) -> str:
    """A 36-document BEIR folder in 3 topics with train/test qrels."""
    os.makedirs(os.path.join(folder, "qrels"), exist_ok=True)
    docs, queries, qrels = [], [], {"train": [], "test": []}
    n = 0
    for topic, phrases in TOY_TOPICS.items():
        for i in range(12):
            words = phrases[i % 4].split()
            docs.append({"_id": f"{topic}-{i}", "title": f"{topic} note {i}",
                         "text": f"{phrases[i % 4]} {words[(i // 4) % 3]} {topic} item{i}. Another sentence about "
                                 f"{phrases[(i + 1) % 4]}."})
            if i < 8:
                qid = f"q{n}"
                n += 1
                queries.append({"_id": qid, "text": f"{phrases[i % 4]} {topic}"})
                qrels["train" if i < 5 else "test"].append((qid, f"{topic}-{i}", 1))
    with open(os.path.join(folder, "corpus.jsonl"), "w") as f:
        f.writelines(json.dumps(d) + "\n" for d in docs)
    with open(os.path.join(folder, "queries.jsonl"), "w") as f:
        f.writelines(json.dumps(q) + "\n" for q in queries)
    for split, rows in qrels.items():
        with open(os.path.join(folder, "qrels", f"{split}.tsv"), "w") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            f.writelines(f"{q}\t{d}\t{s}\n" for q, d, s in rows)
    return str(folder)


@pytest.fixture
def toy_beir(tmp_path) -> str:
    return write_toy_beir(tmp_path / "toy")


@pytest.fixture
def workspace(tmp_path, fake_model):
    from hce_engine import Workspace
    ws = Workspace(str(tmp_path / "ws"), default_model=fake_model)
    yield ws
    ws.close()


@pytest.fixture
def toy_ws(workspace, toy_beir, one_torch_thread):
    """The fake-encoder workspace with the toy corpus imported as "toy"."""
    workspace.import_corpus(toy_beir, name="toy")
    return workspace


@pytest.fixture
def app_env(tmp_path, fake_model, monkeypatch):
    """Environment for the app: a fresh workspace folder (yielded), the fake model, no UMAP warm-up; the
    workspace the app opened is closed afterwards."""
    from ui.common import get_workspace
    get_workspace.clear()
    folder = str(tmp_path / "ws")
    monkeypatch.setenv("HCE_WORKSPACE", folder)
    monkeypatch.setenv("HCE_DEFAULT_MODEL", fake_model)
    monkeypatch.setenv("HCE_WARM_UMAP", "0")
    yield folder
    try:
        get_workspace().close()
    except Exception:  # noqa: BLE001 - nothing was opened
        pass
    get_workspace.clear()


@pytest.fixture
def hce(tmp_path, fake_model, monkeypatch, capsys):
    """``hce`` run in this process on a fresh workspace with the fake model: ``hce(*args) -> (code, stdout,
    stderr)``; ``hce.workspace`` is the folder."""
    from hce_engine.cli import main
    monkeypatch.setenv("HCE_DEFAULT_MODEL", fake_model)
    ws = str(tmp_path / "ws")

    def run(*args):
        code = main(["--workspace", ws, *args])
        out = capsys.readouterr()
        return code, out.out, out.err
    run.workspace = ws
    return run
