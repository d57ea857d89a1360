"""The numpy character n-gram TF-IDF gives scikit-learn's values, on texts that stress its preprocessing."""

from __future__ import annotations

import numpy as np
import pytest

from seqmodels.kinds.classify.char_ngrams import CharNgramTfidf

TEXTS = ["Stocks rally as the Fed holds rates", "NASA's probe  reaches\tMars", "a", "", "  ",
         "Émile's café — naïve résumé", "İstanbul ΣΊΣΥΦΟΣ straße", "emoji 🚀🚀 launch\n\nday", "ab ab ab ab",
         "no\tno  no\n", "What is the capital of France ?", "x" * 40]


@pytest.fixture(scope="module")
def fitted():
    from sklearn.feature_extraction.text import TfidfVectorizer

    sklearn = TfidfVectorizer(analyzer="char", ngram_range=(2, 5), sublinear_tf=True).fit(TEXTS[:8])
    vocab = [""] * len(sklearn.vocabulary_)
    for token, index in sklearn.vocabulary_.items():
        vocab[index] = token
    return sklearn, CharNgramTfidf(vocab, sklearn.idf_, 2, 5)


def test_the_same_rows_as_scikit_learn_on_seen_and_unseen_texts(fitted):
    sklearn, ours = fitted
    expected, got = sklearn.transform(TEXTS).toarray(), ours.transform(TEXTS).toarray()
    assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-12
    assert not got[3].any() and not got[4].any()  # nothing to count: a zero row, as scikit-learn gives


def test_an_empty_batch_and_texts_without_a_known_n_gram(fitted):
    _, ours = fitted
    assert ours.transform([]).shape == (0, ours.size)
    assert ours.transform(["qqqq", "z"]).nnz == 0
