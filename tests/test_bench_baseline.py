"""Smoke tests of the Made-With-ML seed baseline (bench/mwml_baseline.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bench import mwml_baseline as mb

RESULT_KEYS = {"per_epoch_s", "mean_epoch_s", "best_epoch", "wall_to_best_epoch_s", "total_wall_s",
               "test_accuracy", "test_f1_macro", "preprocess_s"}
TOPICS = {"Business": "stocks market shares profit bank", "Sports": "match team cup win coach",
          "World": "minister election war talks border", "Sci/Tech": "software chip internet space phone"}


@pytest.fixture()
def synthetic_csv(tmp_path: Path) -> Path:
    """200 labelled titles, 50 a class, drawn from a few topic words each."""
    rng = np.random.default_rng(0)
    rows = [(label, " ".join(rng.choice(words.split(), size=rng.integers(2, 7))).title())
            for label, words in TOPICS.items() for _ in range(50)]
    path = tmp_path / "news.csv"
    pd.DataFrame(rows, columns=["y", "X"]).to_csv(path, index=False)
    return path


def test_run_baseline_one_epoch(synthetic_csv: Path) -> None:
    run = mb.train_seed_pipeline(epochs=1, data=synthetic_csv)
    result = run.result
    assert RESULT_KEYS <= result.keys()
    assert len(result["per_epoch_s"]) == 1 and result["best_epoch"] == 1
    assert 0.0 <= result["test_accuracy"] <= 1.0 and 0.0 <= result["test_f1_macro"] <= 1.0
    assert result["wall_to_best_epoch_s"] <= result["total_wall_s"]
    preds = mb.seed_inference(["Bank profit beats the market (Reuters)", ""], run.model, run.tokenizer)
    assert preds.shape == (2,) and set(preds.tolist()) <= set(range(4))


def test_tfidf_linear_baseline_accuracies_in_range(synthetic_csv: Path) -> None:
    df = pd.read_csv(synthetic_csv)
    scores = mb.tfidf_linear_baseline(df.X[:150], df.y[:150], df.X[150:], df.y[150:])
    assert set(scores) == {"svm_accuracy", "logreg_accuracy"}
    assert all(0.0 <= v <= 1.0 for v in scores.values())


def test_tfidf_word_char_svm_picks_c_on_validation(synthetic_csv: Path) -> None:
    df = pd.read_csv(synthetic_csv).sample(frac=1.0, random_state=0)
    scores = mb.tfidf_linear_baseline(df.X[:120], df.y[:120], df.X[160:], df.y[160:], df.X[120:160], df.y[120:160])
    assert scores["svm_word_char_C"] in mb.SVM_C_GRID
    assert scores["svm_word_char_accuracy"] > 0.9  # topic words separate the classes


def test_gather_last_relevant_hidden_picks_len_minus_one() -> None:
    hiddens = torch.arange(3 * 5 * 2, dtype=torch.float32).reshape(3, 5, 2)
    seq_lens = torch.tensor([1, 5, 3])
    out = mb.gather_last_relevant_hidden(hiddens, seq_lens)
    assert torch.equal(out, torch.stack([hiddens[0, 0], hiddens[1, 4], hiddens[2, 2]]))


def test_preprocess_matches_lesson_example() -> None:
    assert mb.preprocess("Great week for the NYSE!") == "great week nyse"
    assert mb.preprocess("Wall St. Bears Claw Back Into the Black (Reuters)") == "wall st bears claw back black"


def test_collate_pads_to_longest_in_batch() -> None:
    ds = mb.Dataset(X=[np.array([3, 4, 5]), np.array([6])], y=np.array([1, 0]))
    X, seq_lens, y = ds.collate_fn([ds[0], ds[1]])
    assert X.tolist() == [[3, 4, 5], [6, 0, 0]] and seq_lens.tolist() == [3, 1] and y.tolist() == [1, 0]


def test_classify_splits_summary_means_and_gap() -> None:
    from bench.classify_splits import summarise

    rows = [{"seqflow_accuracy": 0.80, "svm_word_char_accuracy": 0.82, "svm_accuracy": 0.81, "logreg_accuracy": 0.80},
            {"seqflow_accuracy": 0.84, "svm_word_char_accuracy": 0.83, "svm_accuracy": 0.82, "logreg_accuracy": 0.81}]
    out = summarise(rows)
    assert out["seqflow_accuracy_mean"] == 0.82 and out["svm_word_char_accuracy_mean"] == 0.825
    assert out["seqflow_minus_svm_word_char_mean"] == -0.005 and out["seeds_at_or_above_0.84"] == 1
    assert out["seqflow_accuracy_sd"] == round(0.04 / 2 ** 0.5, 4)
    assert "baseline_same_rows_accuracy_mean" not in out  # older rows have no same-rows baseline
    rows[0]["baseline_same_rows_accuracy"], rows[1]["baseline_same_rows_accuracy"] = 0.83, 0.84
    assert summarise(rows)["baseline_same_rows_accuracy_mean"] == 0.835
