"""How the tests find SciFact: $HCE_SCIFACT, else ../shared/data/scifact; a skip that says where it looked."""
from __future__ import annotations

import sys
from pathlib import Path

from conftest import ROOT, SCIFACT_FILES, scifact_dir, scifact_missing, write_toy_beir


def test_the_environment_variable_wins(tmp_path):
    assert scifact_dir({"HCE_SCIFACT": str(tmp_path / "mine")}, root=tmp_path / "repo") == tmp_path / "mine"


def test_without_it_the_folder_beside_the_repository(tmp_path):
    expected = tmp_path / "shared" / "data" / "scifact"
    assert scifact_dir({}, root=tmp_path / "repo") == expected
    assert scifact_dir({"HCE_SCIFACT": ""}, root=tmp_path / "repo") == expected  # set but empty: not a path
    assert scifact_dir({}) == ROOT.parent / "shared" / "data" / "scifact"


def test_a_missing_folder_gives_the_skip_message(tmp_path):
    where = tmp_path / "nowhere"
    assert scifact_missing(where) == (f"SciFact not found at {where}: set HCE_SCIFACT=<folder in BEIR layout> "
                                      "to run this test")


def test_a_folder_without_the_beir_files_says_which_are_missing(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "corpus.jsonl").write_text("{}\n")
    reason = scifact_missing(tmp_path / "half")
    assert reason is not None and reason.startswith(f"SciFact not found at {tmp_path / 'half'} (no queries.jsonl")
    assert "set HCE_SCIFACT=<folder in BEIR layout>" in reason


def test_a_beir_folder_is_found(tmp_path):
    folder = Path(write_toy_beir(tmp_path / "toy"))
    assert all((folder / name).is_file() for name in SCIFACT_FILES)
    assert scifact_missing(folder) is None


def test_the_benchmarks_follow_the_same_rule(monkeypatch):
    """benchmarks/common.py reads SciFact from the same place as the tests."""
    bench = str(ROOT / "benchmarks")
    monkeypatch.syspath_prepend(bench)
    monkeypatch.delitem(sys.modules, "common", raising=False)
    import common
    try:
        assert Path(common.SCIFACT) == scifact_dir()
    finally:
        sys.modules.pop("common", None)
