"""Every result file in benchmarks/results says where its figures came from: the commit of a clean checkout
(written by the benchmark through ``common.write_result``), or it is marked legacy and named as not
replayable in benchmarks/README.md."""
from __future__ import annotations

import glob
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = sorted(glob.glob(os.path.join(ROOT, "benchmarks", "results", "*.json")))


@pytest.mark.parametrize("path", FILES, ids=os.path.basename)
def test_result_file_has_provenance(path):
    with open(path) as f:
        data = json.load(f)
    prov = data.get("provenance")
    assert isinstance(prov, dict), f"{os.path.basename(path)} has no provenance: write it with common.write_result"
    if prov.get("legacy"):
        with open(os.path.join(ROOT, "benchmarks", "README.md")) as f:
            readme = f.read()
        section = readme.split("## Not replayable", 1)
        assert len(section) == 2 and os.path.basename(path) in section[1].split("\n## ", 1)[0], \
            f"{os.path.basename(path)} is legacy: name it under '## Not replayable' in benchmarks/README.md"
        return
    assert prov.get("commit") and prov.get("clean_tree") is True, \
        f"{os.path.basename(path)} was not written from a clean checkout (commit {prov.get('commit')})"
    assert prov.get("started")


def test_write_result_stamps_provenance(tmp_path, monkeypatch):
    import sys
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    common = __import__("common")
    out = common.write_result(tmp_path / "r.json", {"rows": [1]})
    prov = json.loads(out.read_text())["provenance"]
    assert prov["commit"] == common.git_commit() and isinstance(prov["clean_tree"], bool)
    assert prov["packages"]["torch"] and prov["started"] <= prov["written"] and "python" in prov["command"]
    assert sys.modules["common"] is common


def test_generated_readme_tables_match_their_result_files():
    """Every table framed as generated in benchmarks/README.md is exactly what its benchmark prints from its result
    file (``python benchmarks/readme_tables.py`` rewrites them)."""
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "readme_tables.py"), "--check"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_rewritten_result_file_leaves_the_tree_clean(tmp_path):
    """A benchmark writing its own result file (tracked) does not make its checkout 'dirty'; a code change does."""
    import subprocess

    from hce_engine.provenance import clean_tree

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "r.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    assert clean_tree(tmp_path)
    (tmp_path / "benchmarks" / "results" / "r.json").write_text('{"a": 1}')
    assert clean_tree(tmp_path)
    (tmp_path / "code.py").write_text("x = 2\n")
    assert not clean_tree(tmp_path)
