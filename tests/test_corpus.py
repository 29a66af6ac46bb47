"""Corpus import: every format, and every bad input gives a clear error and leaves the database unchanged."""
from __future__ import annotations

import json
import os
import zipfile

import pytest

from hce_engine import InputError
from hce_engine.corpus import read_corpus, read_pairs, read_qrels, read_queries


def write(path, content, mode="w"):
    with open(path, mode) as f:
        f.write(content)
    return str(path)


def test_jsonl_fields_and_metadata(tmp_path):
    p = write(tmp_path / "c.jsonl", '{"_id": "a", "title": "T", "text": "hello", "lang": "en"}\n\n'
                                     '{"id": 7, "text": "world"}\n{"_id": "e", "title": "", "text": "  "}\n')
    out = read_corpus(p)
    assert [d.ext_id for d in out.documents] == ["a", "7"]
    assert out.documents[0].metadata == {"lang": "en"} and out.documents[0].title == "T"
    assert out.skipped_empty == 1 and out.format == "jsonl"


def test_csv_autodetect_and_named_columns(tmp_path):
    p = write(tmp_path / "c.csv", 'doc_id,headline,body,extra\n1,"A, title","some ""quoted"" text",x\n2,B,more,y\n')
    out = read_corpus(p)
    assert [(d.ext_id, d.title, d.text) for d in out.documents] == [("1", "A, title", 'some "quoted" text'),
                                                                    ("2", "B", "more")]
    p2 = write(tmp_path / "c2.tsv", "key\tcontent_x\n1\talpha\n2\tbeta\n")
    out = read_corpus(p2, id_col="key", text_col="content_x")
    assert [d.text for d in out.documents] == ["alpha", "beta"]


def test_txt_lines_and_txt_folder(tmp_path):
    out = read_corpus(write(tmp_path / "c.txt", "first doc\n\nsecond doc\n"))
    assert [(d.ext_id, d.text) for d in out.documents] == [("1", "first doc"), ("3", "second doc")]
    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    write(folder / "a.txt", "alpha text\nmore")
    write(folder / "sub" / "b.txt", "beta text")
    out = read_corpus(str(folder))
    assert out.format == "txt-folder"
    assert [(d.ext_id, d.title) for d in out.documents] == [("a.txt", "a"), ("sub/b.txt", "b")]


def test_beir_folder_and_zip(tmp_path, toy_beir):
    out = read_corpus(toy_beir)
    assert out.format == "beir" and len(out.documents) == 36 and len(out.queries) == 24
    assert set(out.qrels) == {"train", "test"} and len(out.qrels["train"]) == 15
    zpath = tmp_path / "toy.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for root, _, files in os.walk(toy_beir):
            for f in files:
                full = os.path.join(root, f)
                z.write(full, os.path.join("toy", os.path.relpath(full, toy_beir)))
    out = read_corpus(str(zpath))
    assert out.format == "zip:beir" and len(out.documents) == 36 and len(out.qrels["test"]) == 9


BAD_INPUTS = {
    "malformed_json": ("c.jsonl", '{"_id": "a", "text": "ok"}\n{"_id": "b", "text": \n', "line 2", "malformed JSON"),
    "missing_text_column": ("c.csv", "id,title\n1,x\n", "line 1", "no text column"),
    "non_utf8": ("c.jsonl", b'{"_id": "a", "text": "ok"}\n{"_id": "b", "text": "caf\xe9"}\n', "line 2", "UTF-8"),
    "binary": ("c.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR", "c.txt", "binary"),
    "empty": ("c.jsonl", "", "c.jsonl", "empty"),
    "duplicate_ids": ("c.jsonl", '{"_id": "a", "text": "x"}\n{"_id": "b", "text": "y"}\n{"_id": "a", "text": "z"}\n',
                      "line 3", "duplicate document id 'a' (first seen on line 1)"),
    "wrong_column_count": ("c.tsv", "id\ttext\n1\tok\n2\tbad\textra\n", "line 3", "expected 2 columns"),
    "not_an_object": ("c.jsonl", '["a", "b"]\n', "line 1", "expected a JSON object"),
    "unsupported": ("c.pdf", "%PDF-1.4", "c.pdf", "unsupported file type"),
    "only_empty_docs": ("c.jsonl", '{"_id": "a", "text": ""}\n', "c.jsonl", "no documents with text"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_names_file_line_problem(tmp_path, case):
    name, content, where, problem = BAD_INPUTS[case]
    p = write(tmp_path / name, content, "wb" if isinstance(content, bytes) else "w")
    with pytest.raises(InputError) as err:
        read_corpus(p)
    msg = str(err.value)
    assert where in msg and problem in msg, msg
    assert name in msg


def test_oversize_text_and_file(tmp_path, monkeypatch):
    from hce_engine.corpus import limits
    monkeypatch.setattr(limits, "MAX_TEXT_CHARS", 50)
    p = write(tmp_path / "c.jsonl", '{"_id": "a", "text": "short"}\n' + json.dumps({"_id": "b", "text": "x" * 60}))
    with pytest.raises(InputError, match=r"c.jsonl, line 2: the text is 60 characters; the limit is 50"):
        read_corpus(p)
    monkeypatch.setattr(limits, "MAX_FILE_BYTES", 10)
    with pytest.raises(InputError, match="the limit is 0 MiB|limit"):
        read_corpus(p)


@pytest.mark.parametrize("member", ["../evil.jsonl", "/abs/evil.jsonl", "a/../../evil.jsonl"])
def test_zip_rejects_unsafe_paths(tmp_path, member):
    zpath = tmp_path / "bad.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr(member, '{"_id": "a", "text": "x"}\n')
    with pytest.raises(InputError, match="unsafe path in archive"):
        read_corpus(str(zpath))
    assert not (tmp_path / "evil.jsonl").exists()


def test_zip_rejects_symlink_and_garbage(tmp_path):
    zpath = tmp_path / "link.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        info = zipfile.ZipInfo("corpus.jsonl")
        info.external_attr = (0o120777 << 16)
        z.writestr(info, "/etc/passwd")
    with pytest.raises(InputError, match="symbolic link"):
        read_corpus(str(zpath))
    with pytest.raises(InputError, match="not a valid ZIP"):
        read_corpus(write(tmp_path / "junk.zip", "not a zip"))


def test_queries_qrels_pairs(tmp_path):
    q = read_queries(write(tmp_path / "q.tsv", "id\ttext\n1\tfirst query\n2\tsecond\n"))
    assert q == {"1": "first query", "2": "second"}
    rows = read_qrels(write(tmp_path / "r.tsv", "query-id\tcorpus-id\tscore\n1\td1\t1\n2\td2\t2\n"))
    assert rows == [("1", "d1", 1), ("2", "d2", 2)]
    assert read_qrels(write(tmp_path / "trec.txt", "1 0 d1 1\n")) == [("1", "d1", 1)]
    with pytest.raises(InputError, match=r"r2.tsv, line 2: the score 'x' is not a number"):
        read_qrels(write(tmp_path / "r2.tsv", "query-id\tcorpus-id\tscore\n1\td1\tx\n"))
    assert read_pairs(write(tmp_path / "p.csv", "query,doc\nwhat is x,d1\n")) == [("what is x", "d1")]
    with pytest.raises(InputError, match="two columns"):
        read_pairs(write(tmp_path / "p3.csv", "a,b,c\n1,2,3\n"))


def test_beir_qrels_unknown_ids_name_the_line(tmp_path, toy_beir):
    with open(os.path.join(toy_beir, "qrels", "train.tsv"), "a") as f:
        f.write("no-such-query\tspace-0\t1\n")
    with pytest.raises(InputError, match=r"toy/qrels/train.tsv, line 17: query id 'no-such-query' has no query text"):
        read_corpus(toy_beir)
