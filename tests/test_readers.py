"""Readers: every format into the canonical table, and clear errors naming file, line and column."""

import json

import pandas as pd
import pytest

from seqmodels.readers import ReaderError, ReadSpec, iter_chunks, read_labeled, read_table

SPEC = ReadSpec(text_col="title", label_col="topic")


def write(path, text: str | bytes):
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_csv_tsv_jsonl_parquet_give_the_same_table(tmp_path):
    rows = [("Stocks rally, oil falls", "business"), ("Team wins final", "sports")]
    frame = pd.DataFrame(rows, columns=["title", "topic"])
    frame.to_csv(tmp_path / "a.csv", index=False)
    frame.to_csv(tmp_path / "a.tsv", index=False, sep="\t")
    write(tmp_path / "a.jsonl", "".join(json.dumps({"title": t, "topic": l}) + "\n" for t, l in rows))
    frame.to_parquet(tmp_path / "a.parquet")
    for name in ("a.csv", "a.tsv", "a.jsonl", "a.parquet"):
        table = read_labeled(tmp_path / name, SPEC)
        assert table["text"].tolist() == [r[0] for r in rows], name
        assert table["label"].tolist() == [r[1] for r in rows], name
        assert table["row"].tolist() == [0, 1], name


def test_plain_text_is_one_text_per_line_and_keeps_na_strings(tmp_path):
    table = read_table(write(tmp_path / "t.txt", "first line\nNA\nthird\n"), ReadSpec())
    assert table["text"].tolist() == ["first line", "NA", "third"]


def test_chunks_number_rows_continuously(tmp_path):
    path = write(tmp_path / "t.txt", "".join(f"line {i}\n" for i in range(10)))
    chunks = list(iter_chunks(path, ReadSpec(chunk_rows=4)))
    assert [len(c) for c in chunks] == [4, 4, 2]
    assert pd.concat(chunks)["row"].tolist() == list(range(10))


def test_missing_column_names_file_and_column(tmp_path):
    path = write(tmp_path / "bad.csv", "headline,topic\nx,a\ny,b\n")
    with pytest.raises(ReaderError, match=r"bad\.csv:1: column 'title': no such column.*headline"):
        read_labeled(path, SPEC)


def test_undecodable_bytes_name_line_and_encoding(tmp_path):
    path = write(tmp_path / "latin.csv", b"title,topic\ngood,a\ncaf\xe9,b\n")
    with pytest.raises(ReaderError, match=r"latin\.csv:3: .*utf-8"):
        read_labeled(path, SPEC)


def test_binary_file_is_refused(tmp_path):
    path = write(tmp_path / "blob.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    with pytest.raises(ReaderError, match=r"blob\.txt:3: .*binary"):
        read_table(path, ReadSpec())


def test_empty_file(tmp_path):
    with pytest.raises(ReaderError, match=r"empty\.csv.*empty"):
        read_labeled(write(tmp_path / "empty.csv", ""), SPEC)


def test_empty_texts_are_reported_with_their_lines(tmp_path):
    path = write(tmp_path / "gaps.csv", 'title,topic\nok,a\n"",b\n   ,a\nfine,b\n')
    with pytest.raises(ReaderError, match=r"gaps\.csv:3: column 'title': 2 empty value\(s\) at line\(s\) 3, 4"):
        read_labeled(path, SPEC)


def test_single_class_is_refused(tmp_path):
    path = write(tmp_path / "one.csv", "title,topic\nx,a\ny,a\n")
    with pytest.raises(ReaderError, match=r"one\.csv: column 'topic': has a single class"):
        read_labeled(path, SPEC)


def test_malformed_jsonl_names_the_line(tmp_path):
    path = write(tmp_path / "f.jsonl", '{"title": "a", "topic": "x"}\n{"title": oops}\n')
    with pytest.raises(ReaderError, match=r"f\.jsonl:2: invalid JSON"):
        read_labeled(path, SPEC)


def test_unknown_suffix_asks_for_a_format(tmp_path):
    with pytest.raises(ReaderError, match="cannot tell the format"):
        read_table(write(tmp_path / "x.xlsx", "a"), ReadSpec())


def test_unquoted_comma_in_first_row_is_an_error_not_an_index(tmp_path):
    path = write(tmp_path / "shift.csv", "id,title\n1,Stocks rally, oil falls\n2,Team wins final\n")
    with pytest.raises(ReaderError, match=r"shift\.csv:2: .*3 fields.*header has 2.*[Qq]uote"):
        read_table(path, ReadSpec(text_col="title"))


def test_row_with_too_many_fields_names_its_physical_line(tmp_path):
    path = write(tmp_path / "late.csv", 'id,title\n1,ok\n2,"spans\ntwo lines"\n3,bad, row\n4,fine\n')
    with pytest.raises(ReaderError, match=r"late\.csv:5: .*3 fields.*header has 2"):
        read_table(path, ReadSpec(text_col="title", chunk_rows=2))


def test_training_file_with_shifted_first_row_is_refused(tmp_path):
    path = write(tmp_path / "train.csv", "title,topic\nStocks rally, oil falls,business\nTeam wins,sports\n")
    with pytest.raises(ReaderError, match=r"train\.csv:2: "):
        read_labeled(path, SPEC)


@pytest.mark.parametrize("values, kind", [([1, 2], "int64"), ([1.5, 2.0], "double"), ([["a"], ["b"]], "list"),
                                           ([{"w": "a"}, {"w": "b"}], "struct")])
def test_non_string_parquet_text_column_is_refused(tmp_path, values, kind):
    path = tmp_path / "nums.parquet"
    pd.DataFrame({"title": values}).to_parquet(path)
    with pytest.raises(ReaderError, match=rf"nums\.parquet: column 'title': .*{kind}.*string"):
        read_table(path, ReadSpec(text_col="title"))


@pytest.mark.parametrize("value, kind", [(7, "int"), (2.5, "float"), (["a", "b"], "list"), ({"w": "a"}, "object")])
def test_non_string_jsonl_text_names_the_line(tmp_path, value, kind):
    path = write(tmp_path / "f.jsonl", json.dumps({"title": "fine"}) + "\n" + json.dumps({"title": value}) + "\n")
    with pytest.raises(ReaderError, match=rf"f\.jsonl:2: column 'title': .*JSON {kind}.*string"):
        read_table(path, ReadSpec(text_col="title"))


def test_string_parquet_text_column_with_nulls_still_reads(tmp_path):
    path = tmp_path / "ok.parquet"
    pd.DataFrame({"title": ["a", None]}).to_parquet(path)
    assert read_table(path, ReadSpec(text_col="title"))["text"].tolist() == ["a", None]
