"""Every malformed input the importers were seen to mishandle: each ends in a clean import or an InputError
naming the file (and line), and what is accepted is stored right."""
from __future__ import annotations

import io
import json
import os
import zipfile

import pytest

from hce_engine import InputError, tempfiles
from hce_engine.corpus import read_corpus, read_qrels
from hce_engine.corpus import limits


def write(path, content):
    mode = "wb" if isinstance(content, bytes) else "w"
    with open(path, mode, **({} if mode == "wb" else {"newline": ""})) as f:
        f.write(content)
    return str(path)


def zip_of(path, members: dict[str, bytes | str], **kw):
    with zipfile.ZipFile(path, "w", **kw) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return str(path)


# -- line endings and CSV ------------------------------------------------------------------------------------
def test_cr_only_line_endings(tmp_path):
    out = read_corpus(write(tmp_path / "c.csv", "id,text\r1,alpha\r2,beta\r"))
    assert [(d.ext_id, d.text) for d in out.documents] == [("1", "alpha"), ("2", "beta")]
    out = read_corpus(write(tmp_path / "c.txt", "first\rsecond\r\rthird"))
    assert [(d.ext_id, d.text) for d in out.documents] == [("1", "first"), ("2", "second"), ("4", "third")]
    out = read_corpus(write(tmp_path / "c.tsv", "id\ttext\r\n1\tx\r\n"))
    assert [d.text for d in out.documents] == ["x"]


def test_quoted_csv_field_keeps_its_line_break(tmp_path):
    out = read_corpus(write(tmp_path / "c.csv", 'id,text\n1,"two\nlines"\n2,"cr\r\nlf"\n'))
    assert [d.text for d in out.documents] == ["two\nlines", "cr\r\nlf"]


def test_header_over_the_field_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_TEXT_CHARS", 10)
    with pytest.raises(InputError, match=r"c.csv, line \d+: malformed CSV header: field larger than field limit"):
        read_corpus(write(tmp_path / "c.csv", '"' + "hhhhh\n" * 20 + '",text\n1,x\n'))


# -- JSON ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("line, problem", [
    ('{"_id": "a", "text": ' + "[" * 1000 + "]" * 1000 + "}", "nested too deeply"),
    ('{"_id": ' + "9" * 5000 + ', "text": "x"}', "unsupported JSON"),
    ('{"_id": NaN, "text": "x"}', "NaN is not a valid JSON value"),
    ('{"_id": "a", "text": "x", "score": Infinity}', "Infinity is not a valid JSON value"),
    ('{"_id": "a", "text": "bad \\ud800 text"}', "lone surrogate"),
    ('{"_id": "\\udfff", "text": "x"}', "the id holds a lone surrogate"),
    ('{"_id": "a", "text": "nul \\u0000 here"}', "the text holds a NUL character"),
    ('{"_id": "a", "text": "x", "meta": {"k": "\\ud800"}}', "lone surrogate"),
])
def test_json_values_that_cannot_be_stored(tmp_path, line, problem):
    p = write(tmp_path / "c.jsonl", '{"_id": "ok", "text": "fine"}\n' + line + "\n")
    with pytest.raises(InputError) as err:
        read_corpus(p)
    assert "c.jsonl, line 2" in str(err.value) and problem in str(err.value), str(err.value)


# -- qrels ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("score, problem", [
    ("inf", "out of range"), ("1e400", "out of range"), (str(2**31), "out of range"), ("-" + str(2**40), "out of range"),
    ("0.5", "not a whole number"), ("nan", "not a whole number"), ("x", "not a number"),
])
def test_qrels_scores(tmp_path, score, problem):
    p = write(tmp_path / "r.tsv", f"query-id\tcorpus-id\tscore\nq1\td1\t{score}\n")
    with pytest.raises(InputError, match=rf"r.tsv, line 2: .*{problem}"):
        read_qrels(p)


def test_qrels_whole_scores_accepted(tmp_path):
    p = write(tmp_path / "r.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t2.0\nq1\td2\t-1\n")
    assert read_qrels(p) == [("q1", "d1", 2), ("q1", "d2", -1)]


def test_beir_keeps_judgements_of_empty_documents(tmp_path):
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    write(folder / "corpus.jsonl", '{"_id": "d1", "text": "alpha"}\n{"_id": "d2", "title": "", "text": ""}\n')
    write(folder / "queries.jsonl", '{"_id": "q1", "text": "a query"}\n')
    write(folder / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t1\n")
    write(folder / "qrels" / ".tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\n")  # hidden: not a split ""
    out = read_corpus(str(folder))
    assert [d.ext_id for d in out.documents] == ["d1"] and out.skipped_empty == 1
    assert out.qrels == {"test": [("q1", "d1", 1), ("q1", "d2", 1)]} and out.empty_judged == 1


# -- folders -------------------------------------------------------------------------------------------------
def test_folder_symlinks(tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("outside the folder")
    folder = tmp_path / "notes"
    folder.mkdir()
    write(folder / "a.txt", "alpha")
    write(folder / "b.txt", "beta")
    os.symlink(folder / "a.txt", folder / "c.txt")  # inside: fine
    assert len(read_corpus(str(folder)).documents) == 3
    os.symlink(outside, folder / "d.txt")
    with pytest.raises(InputError, match="outside the imported folder"):
        read_corpus(str(folder))
    os.remove(folder / "d.txt")
    os.symlink(tmp_path / "missing.txt", folder / "e.txt")
    with pytest.raises(InputError, match="broken symbolic link"):
        read_corpus(str(folder))
    os.remove(folder / "e.txt")
    os.symlink(folder / "loop.txt", folder / "loop.txt")
    with pytest.raises(InputError, match="broken symbolic link"):
        read_corpus(str(folder))


def test_folder_non_utf8_file_name(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    write(folder / "a.txt", "alpha")
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.txt"), "w") as f:
        f.write("beta")
    with pytest.raises(InputError, match="not valid UTF-8; rename it"):
        read_corpus(str(folder))


# -- ZIP archives --------------------------------------------------------------------------------------------
def corrupt(path: str, old: bytes, new: bytes) -> str:
    data = open(path, "rb").read()
    assert old in data
    with open(path, "wb") as f:
        f.write(data.replace(old, new, 1))
    return path


def test_zip_bad_crc_and_corrupt_deflate(tmp_path):
    p = zip_of(tmp_path / "crc.zip", {"c.txt": "hello world\nsecond line\n"})
    corrupt(p, b"hello world", b"jello world")  # stored: the data changes, its CRC does not
    with pytest.raises(InputError, match=r"crc.zip: c.txt: cannot unpack this member \(Bad CRC-32"):
        read_corpus(p)
    p = zip_of(tmp_path / "z.zip", {"c.txt": "hello " * 200}, compression=zipfile.ZIP_DEFLATED)
    data = bytearray(open(p, "rb").read())
    data[40:60] = b"\xff" * 20  # inside the deflate stream
    open(p, "wb").write(bytes(data))
    with pytest.raises(InputError, match="z.zip"):
        read_corpus(p)


@pytest.mark.parametrize("compression", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_zip_corrupt_bz2_and_lzma(tmp_path, compression):
    p = zip_of(tmp_path / "c.zip", {"c.txt": "some text here\n" * 50}, compression=compression)
    data = bytearray(open(p, "rb").read())
    data[45:70] = b"\x00" * 25
    open(p, "wb").write(bytes(data))
    with pytest.raises(InputError, match="c.zip"):
        read_corpus(p)


def test_zip_encrypted_and_unsupported_members(tmp_path):
    p = zip_of(tmp_path / "enc.zip", {"c.txt": "secret\n"})
    data = bytearray(open(p, "rb").read())
    data[6] |= 1  # local header general-purpose flag: encrypted
    cd = data.rindex(b"PK\x01\x02")
    data[cd + 8] |= 1  # central directory flag
    open(p, "wb").write(bytes(data))
    with pytest.raises(InputError, match="encrypted"):
        read_corpus(p)
    p = zip_of(tmp_path / "method.zip", {"c.txt": "text\n"})
    data = bytearray(open(p, "rb").read())
    data[8] = 99  # local compression method
    cd = data.rindex(b"PK\x01\x02")
    data[cd + 10] = 99
    open(p, "wb").write(bytes(data))
    with pytest.raises(InputError, match=r"method.zip: c.txt: cannot unpack"):
        read_corpus(p)
    p = zip_of(tmp_path / "version.zip", {"c.txt": "text\n"})
    data = bytearray(open(p, "rb").read())
    cd = data.rindex(b"PK\x01\x02")
    data[cd + 6] = 99  # version needed to extract: 9.9
    data[4] = 99
    open(p, "wb").write(bytes(data))
    with pytest.raises(InputError, match="version.zip"):
        read_corpus(p)


def test_zip_names(tmp_path):
    dup = tmp_path / "dup.zip"
    with zipfile.ZipFile(dup, "w") as z, pytest.warns(UserWarning):
        z.writestr("c.txt", "first\n")
        z.writestr("c.txt", "second\n")
    with pytest.raises(InputError, match="holds 'c.txt' twice"):
        read_corpus(str(dup))
    p = zip_of(tmp_path / "clash.zip", {"notes/a": "file\n", "notes/a/b.txt": "inside\n"})
    with pytest.raises(InputError, match="a file and a folder both named"):
        read_corpus(p)
    p = zip_of(tmp_path / "long.zip", {"x" * 300 + ".txt": "text\n"})
    with pytest.raises(InputError, match=r"long.zip: x+\.txt: cannot unpack this member \(File name too long"):
        read_corpus(p)
    p = zip_of(tmp_path / "utf8.zip", {"caf\u00e9.txt": "text\n"})  # flag 0x800 set, name UTF-8
    data = open(p, "rb").read().replace("caf\u00e9".encode(), b"caf\xff\xfe")
    open(p, "wb").write(data)
    with pytest.raises(InputError, match="not a valid ZIP"):
        read_corpus(p)


def test_zip_bomb_fails_fast(tmp_path):
    """A ZIP of 256 MiB of newlines (about 250 KiB packed) is refused from its headers, before anything is unpacked."""
    import time
    p = tmp_path / "bomb.zip"
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as z, z.open("c.txt", "w", force_zip64=True) as f:
        block = b"\n" * (1 << 24)
        for _ in range(16):
            f.write(block)
    assert os.path.getsize(p) < 1 << 20
    t0 = time.perf_counter()
    with pytest.raises(InputError, match="looks like a ZIP bomb"):
        read_corpus(str(p))
    assert time.perf_counter() - t0 < 5


def test_document_and_line_limits(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_DOCUMENTS", 100)
    with pytest.raises(InputError, match=r"c.txt, line 101: more than 100 documents.*HCE_MAX_DOCUMENTS"):
        read_corpus(write(tmp_path / "c.txt", "a\n" * 1000))
    monkeypatch.setattr(limits, "MAX_LINES", 50)
    with pytest.raises(InputError, match=r"e.txt, line 51: the file has more than 50 lines"):
        read_corpus(write(tmp_path / "e.txt", "x\n" + "\n" * 1000))


def test_stale_unpack_folders_are_removed(tmp_path):
    import subprocess
    import sys
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    (tmp_path / f"hce-zip-{dead}-abc" / "x").mkdir(parents=True)
    (tmp_path / f"hce-zip-{os.getpid()}-def").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / f"hce-export-{dead}-ghi").mkdir()
    assert tempfiles.remove_stale(str(tmp_path)) == [f"hce-export-{dead}-ghi", f"hce-zip-{dead}-abc"]
    assert sorted(os.listdir(tmp_path)) == sorted([f"hce-zip-{os.getpid()}-def", "other"])


def test_zip_member_with_an_empty_name(tmp_path):
    """Found by the long fuzz run: a name that zipfile reads as empty (it cuts names at a NUL) made
    ``ZipInfo.is_dir()`` raise IndexError."""
    p = zip_of(tmp_path / "empty.zip", {"a.txt": "hello\n"})
    corrupt(p, b"a.txt", b"\x00" * 5)
    corrupt(p, b"a.txt", b"\x00" * 5)  # local header and central directory
    with pytest.raises(InputError, match="empty.zip: the archive holds a member with an empty name"):
        read_corpus(p)
