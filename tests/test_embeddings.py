"""Pretrained word vectors: reading word2vec (text, binary), fastText .vec and GloVe files, and vocabulary alignment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seqmodels.embeddings import Coverage, Vectors, align, read_vectors

WORDS = ["the", "Cat", "sat"]
MATRIX = np.array([[0.25, -1.5, 3.0, 0.0],
                   [1.0, 2.0, -0.125, 4.5],
                   [-7.0, 0.5, 0.75, 1e-3]], dtype=np.float32)


def text_lines(words: list[str], matrix: np.ndarray) -> list[str]:
    return [w + " " + " ".join(repr(float(x)) for x in row) for w, row in zip(words, matrix)]


def write_text(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_binary(path: Path, words: list[str], matrix: np.ndarray, count: int | None = None,
                 newline: bool = True) -> Path:
    body = f"{len(words) if count is None else count} {matrix.shape[1]}\n".encode()
    for word, row in zip(words, matrix):
        body += word.encode() + b" " + np.asarray(row, dtype="<f4").tobytes() + (b"\n" if newline else b"")
    path.write_bytes(body)
    return path


def assert_reads_back(vectors: Vectors, words: list[str] = WORDS, matrix: np.ndarray = MATRIX) -> None:
    assert vectors.words == words
    assert vectors.dim == matrix.shape[1]
    assert vectors.matrix.dtype == np.float32
    np.testing.assert_array_equal(vectors.matrix, matrix)


# ---------------------------------------------------------------- formats


def test_word2vec_text_with_header(tmp_path):
    path = write_text(tmp_path / "w2v.txt", ["3 4", *text_lines(WORDS, MATRIX)])
    assert_reads_back(read_vectors(path))


def test_fasttext_vec_with_trailing_spaces(tmp_path):
    path = write_text(tmp_path / "wiki.vec", ["3 4", *(line + " " for line in text_lines(WORDS, MATRIX))])
    assert_reads_back(read_vectors(str(path)))


def test_glove_without_header(tmp_path):
    path = write_text(tmp_path / "glove.6B.4d.txt", text_lines(WORDS, MATRIX))
    assert_reads_back(read_vectors(path))


def test_glove_word_with_spaces_takes_last_values(tmp_path):
    lines = text_lines(WORDS, MATRIX)
    lines[1] = ". . . " + lines[1].split(" ", 1)[1]
    vectors = read_vectors(write_text(tmp_path / "glove.txt", lines))
    assert vectors.words == ["the", ". . .", "sat"]
    np.testing.assert_array_equal(vectors.matrix[1], MATRIX[1])


@pytest.mark.parametrize("newline", [True, False])
def test_word2vec_binary(tmp_path, newline):
    path = write_binary(tmp_path / "vectors.bin", WORDS, MATRIX, newline=newline)
    assert_reads_back(read_vectors(path))


def test_binary_header_count_larger_than_file_is_not_an_error(tmp_path):
    path = write_binary(tmp_path / "vectors.bin", WORDS, MATRIX, count=10)
    assert_reads_back(read_vectors(path))


def test_text_header_count_disagreeing_is_not_an_error(tmp_path):
    path = write_text(tmp_path / "w2v.txt", ["100 4", *text_lines(WORDS, MATRIX)])
    assert_reads_back(read_vectors(path))


def test_duplicates_keep_the_first(tmp_path):
    lines = text_lines(WORDS, MATRIX) + text_lines(["the"], MATRIX[2:])
    vectors = read_vectors(write_text(tmp_path / "glove.txt", lines))
    assert vectors.words == WORDS
    np.testing.assert_array_equal(vectors.matrix[0], MATRIX[0])
    binary = read_vectors(write_binary(tmp_path / "dup.bin", ["the", "the", "sat"], MATRIX))
    assert binary.words == ["the", "sat"]
    np.testing.assert_array_equal(binary.matrix, MATRIX[[0, 2]])


def test_max_words(tmp_path):
    text = read_vectors(write_text(tmp_path / "w2v.txt", ["3 4", *text_lines(WORDS, MATRIX)]), max_words=2)
    assert_reads_back(text, WORDS[:2], MATRIX[:2])
    binary = read_vectors(write_binary(tmp_path / "vectors.bin", WORDS, MATRIX), max_words=1)
    assert_reads_back(binary, WORDS[:1], MATRIX[:1])


# ---------------------------------------------------------------- errors


def test_wrong_count_names_file_line_and_first_line(tmp_path):
    lines = text_lines(WORDS, MATRIX)
    lines[2] = "sat 1.0 2.0"
    with pytest.raises(ValueError) as err:
        read_vectors(write_text(tmp_path / "vec.txt", lines))
    message = str(err.value)
    assert "vec.txt" in message and "line 3" in message
    assert "2 values, expected 4 (the dimension of line 1)" in message


def test_too_many_numbers_is_an_error(tmp_path):
    lines = text_lines(WORDS, MATRIX)
    lines[1] += " 9.0"
    with pytest.raises(ValueError, match=r"glove\.txt, line 2: 5 values, expected 4"):
        read_vectors(write_text(tmp_path / "glove.txt", lines))


def test_value_not_a_number(tmp_path):
    lines = ["3 4", *text_lines(WORDS, MATRIX)]
    lines[2] = "Cat 1.0 abc 3.0 4.0"
    with pytest.raises(ValueError, match=r"w2v\.txt, line 3: 'abc' is not a number"):
        read_vectors(write_text(tmp_path / "w2v.txt", lines))


def test_dimension_mismatch_with_header(tmp_path):
    path = write_text(tmp_path / "w2v.txt", ["3 5", *text_lines(WORDS, MATRIX)])
    with pytest.raises(ValueError) as err:
        read_vectors(path)
    assert "w2v.txt, line 2: 4 values, expected 5 (the dimension in the header on line 1)" in str(err.value)


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_bytes(b"the 1.0 2.0\ncaf\xe9 3.0 4.0\n")
    with pytest.raises(ValueError, match=r"glove\.txt, line 2: not UTF-8"):
        read_vectors(path)


@pytest.mark.parametrize("content", [b"", b"\n\n", b"3 4\n"])
def test_empty_or_vectorless_text_file(tmp_path, content):
    path = tmp_path / "empty.vec"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"empty\.vec: no word vectors found"):
        read_vectors(path)


@pytest.mark.parametrize("content", [b"", b"3 4\n"])
def test_empty_or_vectorless_binary_file(tmp_path, content):
    path = tmp_path / "empty.bin"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"empty\.bin: no word vectors found"):
        read_vectors(path)


def test_truncated_binary_names_the_word(tmp_path):
    path = write_binary(tmp_path / "cut.bin", WORDS, MATRIX)
    data = path.read_bytes()
    path.write_bytes(data[:-10])  # cuts into the values of the third word
    with pytest.raises(ValueError, match=r"cut\.bin, word 3 \('sat'\): the file ends after 1 of 4 values"):
        read_vectors(path)
    path.write_bytes(data[: data.index(b"sat") + 2])  # cuts inside the third word
    with pytest.raises(ValueError, match=r"cut\.bin, word 3: the file ends inside the word"):
        read_vectors(path)


def test_binary_bad_header(tmp_path):
    path = tmp_path / "text.bin"
    path.write_text("the 1.0 2.0\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"text\.bin: first line .* is not the 'count dimension' header"):
        read_vectors(path)


def test_max_words_must_be_positive(tmp_path):
    path = write_text(tmp_path / "glove.txt", text_lines(WORDS, MATRIX))
    with pytest.raises(ValueError, match="max_words"):
        read_vectors(path, max_words=0)


# ---------------------------------------------------------------- alignment


def test_align_exact_lowercase_and_missing():
    vectors = Vectors(["the", "cat", "Sat"], MATRIX)
    tokens = ["<pad>", "<unk>", "the", "Cat", "sat", "dog", "The"]
    matrix, coverage = align(tokens, vectors, init_std=0.1, seed=3)
    assert matrix.shape == (7, 4) and matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix[0], np.zeros(4))
    np.testing.assert_array_equal(matrix[2], MATRIX[0])  # exact
    np.testing.assert_array_equal(matrix[3], MATRIX[1])  # "Cat" -> "cat"
    np.testing.assert_array_equal(matrix[6], MATRIX[0])  # "The" -> "the"
    for row in (1, 4, 5):  # <unk>, "sat" (file has only "Sat"), "dog": random
        assert not any(np.array_equal(matrix[row], v) for v in MATRIX)
        assert np.all(np.abs(matrix[row]) < 1.0)
    assert coverage == Coverage(total=5, exact=1, lowercase=2)


def test_align_random_rows_have_the_std_and_the_seed():
    vectors = Vectors(["known"], np.ones((1, 50), dtype=np.float32))
    tokens = ["<pad>", "<unk>", *(f"w{i}" for i in range(400))]
    matrix, coverage = align(tokens, vectors, init_std=0.5, seed=7)
    assert coverage.found == 0 and coverage.total == 400
    assert abs(float(matrix[1:].std()) - 0.5) < 0.02
    assert abs(float(matrix[1:].mean())) < 0.02
    again, _ = align(tokens, vectors, init_std=0.5, seed=7)
    other, _ = align(tokens, vectors, init_std=0.5, seed=8)
    np.testing.assert_array_equal(matrix, again)
    assert not np.array_equal(matrix[1:], other[1:])


def test_align_never_looks_up_specials():
    vectors = Vectors(["<pad>", "<unk>"], MATRIX[:2])
    matrix, coverage = align(["<pad>", "<unk>", "x"], vectors)
    np.testing.assert_array_equal(matrix[0], np.zeros(4))
    assert not np.array_equal(matrix[1], MATRIX[1])
    assert coverage == Coverage(total=1, exact=0, lowercase=0)


def test_coverage_numbers_and_summary():
    coverage = Coverage(total=10_000, exact=7_900, lowercase=223)
    assert coverage.found == 8_123
    assert coverage.fraction == pytest.approx(0.8123)
    assert coverage.summary() == ("pretrained vectors for 8,123 of 10,000 vocabulary words "
                                  "(81.2 %: 7,900 exact, 223 by lower case)")
    assert Coverage(total=0, exact=0, lowercase=0).fraction == 0.0


def test_vectors_reject_mismatched_rows():
    with pytest.raises(ValueError, match="one row per word"):
        Vectors(["a", "b"], np.zeros((3, 2)))
