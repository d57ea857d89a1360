"""Prediction speed of the classifier's linear member (issue 13) on AG News headlines: its character n-gram
TF-IDF in numpy beside scikit-learn's analyzer with the same vocabulary and idf (the baseline, same script),
the word part, and the member's whole ``scores``; JSON lines, then the ratio.

    .venv/bin/python -m bench.bench_linear_member [--texts 20000]

Nothing else may run on the machine meanwhile (see the README).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd

from bench.classify_suite import DATA


def timed(name: str, work, count: int) -> float:
    """Texts/s of ``work()`` after one warm-up call; prints a JSON line."""
    work()
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    print(json.dumps({"bench": "linear_member", "part": name, "texts": count, "seconds": round(seconds, 2),
                      "texts_per_s": round(count / seconds)}), flush=True)
    return count / seconds


def main(argv: list[str] | None = None) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from seqmodels.kinds.classify.baseline import _CHARS, LinearMember

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=20_000)
    args = parser.parse_args(argv)
    news = pd.read_csv(DATA / "ag_news_titles_10k" / "news.csv")
    texts, labels = news["X"].astype(str).tolist(), pd.factorize(news["y"])[0]
    member = LinearMember.fit(texts[:8000], labels[:8000], int(labels.max()) + 1)
    batch = (texts * (args.texts // len(texts) + 1))[:args.texts]
    scikit = TfidfVectorizer(**_CHARS, vocabulary={t: i for i, t in enumerate(member.char_vocab)})
    scikit.idf_ = member.char_idf
    words, chars = member._vectorizers
    baseline = timed("char n-grams, scikit-learn", lambda: scikit.transform(batch), len(batch))
    ours = timed("char n-grams, numpy", lambda: chars.transform(batch), len(batch))
    timed("word n-grams, scikit-learn", lambda: words.transform(batch), len(batch))
    timed("member scores (words + chars + SVM)", lambda: member.scores(batch), len(batch))
    difference = abs(scikit.transform(batch[:2000]) - chars.transform(batch[:2000])).max()
    print(json.dumps({"bench": "summary", "char_speedup": round(ours / baseline, 2),
                      "max_abs_difference": float(difference), "char_features": len(member.char_vocab),
                      "mean_chars_per_text": round(float(np.mean([len(t) for t in batch])), 1)}), flush=True)


if __name__ == "__main__":
    main()
