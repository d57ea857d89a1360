"""Tests for seqmodels.kinds.tag.readers: the four corpus formats, their errors and the BIO checks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from seqmodels.readers import ReaderError
from seqmodels.kinds.tag.readers import (
    COLUMNS,
    TaggedSentence,
    check_bio,
    frame_to_sentences,
    is_bio_tagset,
    raise_on_invalid_bio,
    read_sentences,
    read_tagged,
    sentences_to_frame,
)

FIX = Path(__file__).parent / "fixtures" / "tagging"


def _raises(path: Path, fmt: str, line: int | None, *words: str, **kwargs) -> ReaderError:
    """Read ``path`` expecting a ReaderError that names the file, ``line`` and ``words``."""
    with pytest.raises(ReaderError) as info:
        read_tagged(path, fmt, **kwargs)
    err = info.value
    message = str(err)
    assert path.name in message
    assert err.line == line
    if line is not None:
        assert f"{path.name}:{line}:" in message
    for word in words:
        assert word in message
    return err


# ------------------------------------------------------------------------------------------------ conll2003


def test_conll2003_reads_ner_and_skips_docstart():
    df = read_tagged(FIX / "conll2003_small.txt", "conll2003")
    assert list(df.columns) == list(COLUMNS)
    assert df["sentence"].tolist() == [0, 1, 2]
    assert df["line"].tolist() == [3, 9, 14]
    assert df["tokens"][0] == ["EU", "rejects", "German", "call", "."]
    assert df["tags"][0] == ["B-ORG", "O", "B-MISC", "O", "O"]
    assert df["tags"][1] == ["B-PER", "I-PER"]
    assert df["tokens"][2] == ["BRUSSELS", "1996-08-22"]
    assert not any("-DOCSTART-" in toks for toks in df["tokens"])


@pytest.mark.parametrize("column, expected", [("pos", ["NNP", "NNP"]), ("chunk", ["B-NP", "I-NP"]),
                                              ("ner", ["B-PER", "I-PER"])])
def test_conll2003_tag_columns(column, expected):
    df = read_tagged(FIX / "conll2003_small.txt", "conll2003", tag_column=column)
    assert df["tags"][1] == expected


def test_conll2003_wrong_column_count_names_file_and_line():
    _raises(FIX / "conll2003_bad_columns.txt", "conll2003", 5, "4 space-separated fields", "found 3")


def test_docstart_only_file_has_no_sentences():
    _raises(FIX / "conll2003_docstart_only.txt", "conll2003", None, "no sentences")


@pytest.mark.parametrize("fmt", ["conll2003", "conllu", "gmb", "tsv"])
def test_empty_file_is_an_error(fmt):
    _raises(FIX / "empty.txt", fmt, None, "empty")


def test_unknown_tag_column_and_format():
    err = _raises(FIX / "conll2003_small.txt", "conll2003", None, "unknown tag column 'upos'", "ner",
                  tag_column="upos")
    assert err.column == "upos"
    _raises(FIX / "conll2003_small.txt", "iob", None, "unknown tagged-corpus format 'iob'")


def test_missing_file():
    _raises(FIX / "no_such_file.txt", "tsv", None, "not found")


# ------------------------------------------------------------------------------------------------ conllu


def test_conllu_skips_comments_ranges_and_empty_nodes():
    df = read_tagged(FIX / "conllu_small.conllu", "conllu")
    assert df["line"].tolist() == [4, 13, 23]
    assert df["tokens"][0] == ["I", "do", "n't", "know", "."]  # words of the 2-3 range kept, range line skipped
    assert df["tags"][0] == ["PRON", "AUX", "PART", "VERB", "PUNCT"]
    assert df["tokens"][1] == ["Sue", "likes", "tea", "and", "Bob", "coffee"]  # empty node 5.1 skipped
    assert df["tags"][2] == ["NOUN", "PUNCT"]


def test_conllu_xpos():
    df = read_tagged(FIX / "conllu_small.conllu", "conllu", tag_column="xpos")
    assert df["tags"][0] == ["PRP", "VBP", "RB", "VB", "."]


def test_conllu_wrong_column_count():
    _raises(FIX / "conllu_bad_columns.conllu", "conllu", 4, "10 tab-separated fields", "found 9")


# ------------------------------------------------------------------------------------------------ gmb


def test_gmb_groups_sentences_and_decodes_latin1():
    df = read_tagged(FIX / "gmb_small.csv", "gmb")
    assert df["line"].tolist() == [2, 10, 13]
    assert df["tokens"][0] == ["Thousands", "of", "demonstrators", "marched", "through", "London", ",", "caf\xe9"]
    assert df["tags"][0] == ["O", "O", "O", "O", "O", "B-geo", "O", "O"]
    assert df["tokens"][1] == ["None", "Smith", "said"]  # "None" stays text, not NaN
    assert df["tags"][1] == ["B-per", "I-per", "O"]
    assert df["tags"][2] == ["B-gpe", "O"]


def test_gmb_pos_column():
    assert read_tagged(FIX / "gmb_small.csv", "gmb", tag_column="pos")["tags"][2] == ["JJ", "NNS"]


def test_gmb_wrong_column_count():
    _raises(FIX / "gmb_bad_columns.csv", "gmb", 4, "4 comma-separated fields", "5 field")


def test_gmb_first_token_without_sentence_marker():
    _raises(FIX / "gmb_no_sentence_marker.csv", "gmb", 2, "Sentence #")


def test_gmb_wrong_header(tmp_path):
    path = tmp_path / "ner.csv"
    path.write_bytes(b"Word,Tag\r\nHello,O\r\n")
    _raises(path, "gmb", 1, "header")


def test_gmb_as_utf8_names_the_undecodable_line():
    _raises(FIX / "gmb_small.csv", "gmb", 9, "utf-8", "0xe9", encoding="utf-8")


# ------------------------------------------------------------------------------------------------ tsv


def test_tsv_reads_sentences():
    sentences = read_sentences(FIX / "tsv_small.tsv", "tsv")
    assert sentences == [
        TaggedSentence(["John", "Smith", "lives", "in", "New", "York"],
                       ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC"], 1),
        TaggedSentence(["Hello", "world"], ["O", "O"], 8),
    ]


def test_tsv_wrong_column_count():
    _raises(FIX / "tsv_bad_columns.tsv", "tsv", 4, "2 tab-separated fields", "found 3")


def test_tsv_invalid_utf8_names_line_and_fix():
    _raises(FIX / "tsv_invalid_utf8.tsv", "tsv", 3, "0xfc", "utf-8", "encoding")


def test_tsv_invalid_utf8_reads_with_the_right_encoding():
    df = read_tagged(FIX / "tsv_invalid_utf8.tsv", "tsv", encoding="latin-1")
    assert df["tokens"][0][2] == "M\xfcller"


def test_crlf_and_trailing_blank_lines(tmp_path):
    path = tmp_path / "crlf.tsv"
    path.write_bytes(b"\r\n\r\nA\tB-X\r\nb\tI-X\r\n\r\n\r\nc\tO\r\n\r\n")
    df = read_tagged(path, "tsv")
    assert df["tokens"].tolist() == [["A", "b"], ["c"]]
    assert df["tags"][0] == ["B-X", "I-X"]
    assert df["line"].tolist() == [3, 7]


def test_frame_and_sentences_round_trip():
    df = read_tagged(FIX / "conll2003_small.txt", "conll2003")
    back = sentences_to_frame(frame_to_sentences(df))
    pd.testing.assert_frame_equal(back, df)


# ------------------------------------------------------------------------------------------------ BIO


def test_is_bio_tagset():
    assert is_bio_tagset(["O", "B-PER", "I-PER", "B-geo-loc"])
    assert not is_bio_tagset(["NOUN", "VERB"])
    assert not is_bio_tagset(["O", "E-PER"])
    assert not is_bio_tagset(["B-"])
    assert not is_bio_tagset([])


def test_check_bio_accepts_valid_files():
    for path, fmt in [("conll2003_small.txt", "conll2003"), ("gmb_small.csv", "gmb"), ("tsv_small.tsv", "tsv")]:
        report = check_bio(read_tagged(FIX / path, fmt))
        assert report.ok, report.summary()
        assert report.invalid_transitions == 0 and report.examples == ()


def test_check_bio_counts_invalid_transitions_with_lines():
    df = read_tagged(FIX / "conll2003_invalid_bio.txt", "conll2003")
    before = df["tags"].tolist()
    report = check_bio(df)
    assert not report.ok
    assert report.invalid_transitions == 2  # <s> -> I-PER (line 6); O -> I-LOC (line 12); I-PER -> I-PER is fine
    assert report.malformed_tags == 0
    assert report.by_type == {"PER": 1, "LOC": 1}
    assert report.by_transition == {"<s> -> I-PER": 1, "O -> I-LOC": 1}
    assert [(e.line, e.previous, e.tag) for e in report.examples] == [(6, "", "I-PER"), (12, "O", "I-LOC")]
    assert df["tags"].tolist() == before  # never repaired


def test_check_bio_counts_malformed_tags():
    df = sentences_to_frame([TaggedSentence(["a", "b", "c"], ["B-X", "E-X", "PER"], 1)])
    report = check_bio(df)
    assert report.malformed_tags == 2 and report.invalid_transitions == 0
    assert report.examples[0].previous == "(malformed)"


def test_check_bio_type_change_is_invalid():
    df = sentences_to_frame([TaggedSentence(["a", "b", "c"], ["B-PER", "I-LOC", "I-LOC"], 1)])
    report = check_bio(df)
    assert report.invalid_transitions == 1
    assert report.by_transition == {"B-PER -> I-LOC": 1}


def test_raise_on_invalid_bio_names_file_counts_and_first_line():
    path = FIX / "conll2003_invalid_bio.txt"
    with pytest.raises(ReaderError) as info:
        raise_on_invalid_bio(path, read_tagged(path, "conll2003"))
    message = str(info.value)
    assert info.value.line == 6
    assert f"{path.name}:6:" in message
    assert "2 invalid transition(s)" in message and "line 12" in message
    raise_on_invalid_bio(FIX / "tsv_small.tsv", read_tagged(FIX / "tsv_small.tsv", "tsv"))  # valid: no error
