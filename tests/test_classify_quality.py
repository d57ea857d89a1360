"""Classification that holds up: the linear baseline in every run, pretrained vectors, cleaning that keeps signal."""

from __future__ import annotations

import json
from pathlib import Path
from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import WORDS, train_tiny


def test_every_run_reports_the_linear_baseline(trained_classifier):
    from mlflow import MlflowClient

    metrics = trained_classifier["metrics"]
    assert 0.0 <= metrics["baseline_accuracy"] <= 1.0 and metrics["baseline_C"] in (0.1, 0.3, 1.0)
    assert metrics["baseline_accuracy"] > 0.9  # the topic words make the tiny set easy for a linear model too
    client = MlflowClient(trained_classifier["tracking_uri"])
    assert client.get_run(trained_classifier["run_id"]).data.metrics["baseline_accuracy"] == metrics["baseline_accuracy"]


def test_no_baseline_skips_it(trained_classifier):
    result = train_tiny(trained_classifier["home"], "topics-no-baseline", baseline=False, epochs=1)
    assert not any(key.startswith("baseline_") for key in result["metrics"])


def test_baseline_verdict_says_who_wins_and_by_how_much():
    from tasks.train import baseline_verdict

    assert baseline_verdict("accuracy", 0.85, 0.80, True) == "test accuracy 0.8500 beats the linear baseline's 0.8000 by 0.0500"
    worse = baseline_verdict("accuracy", 0.78, 0.80, True)
    assert "is worse than the linear baseline's 0.8000 by 0.0200" in worse and "a linear model does better" in worse


def test_linear_baseline_learns_and_chooses_c_by_cross_validation():
    from seqmodels.kinds.classify.baseline import C_GRID, linear_baseline

    texts = [f"{w} {v}" for topic in WORDS.values() for w in topic for v in topic]
    labels = [name for name, topic in WORDS.items() for _ in topic for _ in topic]
    scores = linear_baseline(texts, labels, ["goal striker", "bank profit"], ["sports", "business"])
    assert scores["baseline_accuracy"] == 1.0 and scores["baseline_C"] in C_GRID


def test_the_run_baseline_learns_from_the_validation_rows_too(tmp_path):
    """The model learns from train + val (the linear member is refitted on both): so does its baseline."""
    from types import SimpleNamespace

    import pyarrow as pa
    import pyarrow.parquet as pq

    from seqmodels.kinds import get_kind

    rows = {"train": [("apple pie", "a"), ("apple tart", "a"), ("banana split", "b"), ("banana bread", "b")],
            "val": [("cherry jam", "c")], "test": [("cherry jam", "c"), ("apple pie", "a")]}
    splits = {}
    for part, pairs in rows.items():
        splits[part] = tmp_path / f"{part}.parquet"
        pq.write_table(pa.table({"text": [t for t, _ in pairs], "label": [y for _, y in pairs]}), splits[part])
    scores = get_kind("classify").baselines(splits, SimpleNamespace(baseline=True, seed=0))
    assert scores["baseline_accuracy"] == 1.0  # "c" occurs only in the validation split


def test_pretrained_vectors_start_the_embeddings_and_stay_frozen(trained_classifier, tmp_path):
    vectors = {"stocks": [0.5, -0.25, 0.125, 1.0], "Goal": [1.0, 2.0, 3.0, 4.0]}
    path = tmp_path / "vectors.vec"
    path.write_text("2 4\n" + "".join(f"{w} {' '.join(map(str, v))}\n" for w, v in vectors.items()))
    result = train_tiny(trained_classifier["home"], "topics-vectors", embeddings=str(path), freeze_embeddings=True,
                        epochs=2, lowercase=False)  # the vocabulary keeps "Stocks" and "Goal" as written
    model_dir = result["run_dir"] + "/model"
    config = json.loads(open(f"{model_dir}/model.json").read())["model_config"]
    assert config["encoder"]["embedding_dim"] == 4  # the file's size, whatever --embedding-dim said
    weights = torch.load(f"{model_dir}/model.pt", weights_only=True)["encoder.embedding.weight"]
    vocab = json.loads(open(f"{model_dir}/vocab.json").read())
    tokens = vocab["tokens"] if isinstance(vocab, dict) else vocab
    for word, vector in (("Stocks", vectors["stocks"]), ("Goal", vectors["Goal"])):  # lower-case fallback, exact
        np.testing.assert_allclose(weights[tokens.index(word)].numpy(), vector)  # frozen: unchanged by training


def test_an_unreadable_vectors_file_fails_naming_its_line(trained_classifier, tmp_path):
    path = tmp_path / "bad.vec"
    path.write_text("stocks 0.1 0.2\nbank 0.3\n")
    with pytest.raises(Exception, match="line 2"):
        train_tiny(trained_classifier["home"], "topics-bad-vectors", embeddings=str(path), epochs=1)


def test_default_cleaning_keeps_negation_and_question_words():
    from seqmodels.cleaning import clean_column
    from seqmodels.kinds.classify.kind import ClassifyOptions, clean_config

    config = clean_config(ClassifyOptions(train="t.csv", model_name="m"))
    assert config.remove_stopwords is False
    cleaned = clean_column(["What is not obvious? Who knows how, and why no one did it"], config)[0].as_py()
    for word in ("what", "is", "not", "who", "how", "why", "no"):
        assert word in cleaned.split()
    removing = clean_column(["What is not obvious?"], replace(config, remove_stopwords=True))[0].as_py()
    assert removing.split() == ["obvious"]  # what the old default did to a question


def test_cli_model_config_is_the_kinds_defaults_with_the_options_over_them(monkeypatch):
    """Defaults without a CLI option (the embedding init) reach the trained model as the benchmarks measured them."""
    from seqmodels.kinds.classify import kind

    options = kind.ClassifyOptions(train="t.csv", model_name="m")
    one_dropout = replace(kind.CLASSIFIER_ENCODER, dropout=kind.CLASSIFIER_MODEL.head_dropout)  # --dropout sets both
    assert kind.ClassifyKind().model_config(options) == replace(kind.CLASSIFIER_MODEL, encoder=one_dropout)
    monkeypatch.setattr(kind, "CLASSIFIER_ENCODER", replace(kind.CLASSIFIER_ENCODER, embedding_init_std=0.25))
    config = kind.ClassifyKind().model_config(replace(options, hidden_dim=7, pooling="mean"))
    assert (config.encoder.embedding_init_std, config.encoder.hidden_dim, config.pooling) == (0.25, 7, "mean")


def _topic_texts():
    texts = [f"{w} {v}" for topic in WORDS.values() for w in topic for v in topic]
    labels = np.array([i for i, topic in enumerate(WORDS.values()) for _ in topic for _ in topic])
    return texts, labels


@pytest.mark.parametrize("classes", [3, 2])
def test_linear_member_saved_without_pickles_scores_the_same_after_loading(tmp_path, classes):
    from seqmodels.kinds.classify.baseline import LINEAR_NPZ, LinearMember

    texts, labels = _topic_texts()
    keep = labels < classes
    member = LinearMember.fit([t for t, k in zip(texts, keep) if k], labels[keep], classes)
    member.weight = 4.0
    member.save(tmp_path)
    loaded = LinearMember.load(tmp_path)
    probe = ["goal striker", "bank profit", "quantum laser", "unseen words!"]
    assert loaded.weight == 4.0 and loaded.C == member.C
    np.testing.assert_allclose(loaded.scores(probe), member.scores(probe), rtol=1e-5, atol=1e-6)
    assert loaded.scores(probe).shape == (4, classes)
    assert list(loaded.scores(probe)[:2].argmax(-1)) == [0, 1]  # sports, business
    np.load(tmp_path / LINEAR_NPZ, allow_pickle=False).close()  # plain arrays: loads without pickle
    assert LinearMember.load(tmp_path / "missing") is None


def test_member_weight_is_chosen_on_validation_accuracy_largest_of_equals():
    from seqmodels.kinds.classify.baseline import choose_weight

    log_probs = np.log(np.array([[0.6, 0.4], [0.6, 0.4], [0.9, 0.1]]))  # the RNN says class 0 three times
    scores = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])  # the SVM says class 1 three times
    weight, accuracy = choose_weight(log_probs, scores, np.array([1, 1, 0]), weights=(0.0, 0.25, 1.0, 4.0))
    # 0: 1/3; 0.25: 1/3 (0.25 < log 1.5); 1: 3/3 (log 1.5 < 1 < log 9); 4: 2/3 -> 1, the best
    assert weight == 1.0 and accuracy[0.0] == pytest.approx(1 / 3) and accuracy[4.0] == pytest.approx(2 / 3)
    weight, accuracy = choose_weight(log_probs, scores, np.array([1, 1, 0]), weights=(0.0, 4.0, 16.0))
    assert weight == 16.0 and accuracy[4.0] == accuracy[16.0] == pytest.approx(2 / 3)  # the larger of equals
    assert choose_weight(log_probs, scores, np.array([0, 0, 0]), weights=(0.0, 1.0, 4.0))[0] == 0.0  # RNN alone


def test_the_model_mixes_its_linear_member_and_reports_the_rnn_alone(trained_classifier):
    from seqmodels.kinds.classify.predictor import ClassifierPredictor

    # a barely trained RNN: the linear member wins on validation and gets a weight
    result = train_tiny(trained_classifier["home"], "topics-weak-rnn", epochs=1, lr=1e-6)
    metrics = result["metrics"]
    assert metrics["linear_weight"] > 0 and metrics["rnn_accuracy"] < 0.9 <= metrics["accuracy"]
    model_dir = Path(result["run_dir"]) / "model"
    predictor = ClassifierPredictor.load(model_dir, "cpu")
    assert predictor.linear is not None and predictor.linear.weight == metrics["linear_weight"]
    texts = ["Coach praises striker after the match", "Stocks rally as bank profit rises"]
    mixed = predictor.predict_texts(texts)
    rnn = predictor.rnn_log_probs(texts)
    expected = rnn + predictor.linear.weight * predictor.linear.scores(texts)
    proba = np.exp(expected - expected.max(-1, keepdims=True))
    proba /= proba.sum(-1, keepdims=True)
    np.testing.assert_allclose(mixed["score"], proba.max(-1), rtol=1e-5)
    assert list(mixed["label"]) == [predictor.labels.labels[i] for i in expected.argmax(-1)]


def test_no_linear_member_leaves_the_rnn_alone(trained_classifier):

    from seqmodels.kinds.classify.baseline import LINEAR_JSON

    result = train_tiny(trained_classifier["home"], "topics-rnn-only", linear_member=False, epochs=1)
    assert result["metrics"]["linear_weight"] == 0.0 and result["metrics"]["rnn_accuracy"] == result["metrics"]["accuracy"]
    assert not (Path(result["run_dir"]) / "model" / LINEAR_JSON).exists()


def test_the_kept_model_is_refitted_on_train_and_validation_for_the_chosen_epochs(trained_classifier):
    import pyarrow.parquet as pq

    from seqmodels.predict import read_history

    history = read_history(Path(trained_classifier["run_dir"]) / "model")
    rows = {part: pq.read_metadata(trained_classifier["files"][part]).num_rows for part in ("train", "val")}
    refit = history["refit"]
    assert refit["rows"] == rows["train"] + rows["val"]  # the validation rows are learnt from
    assert refit["epochs"] == len(refit["history"]) == history["best_epoch"] >= 1  # as many as chosen, no early stop
    assert len(history["history"]) >= history["best_epoch"]  # the selection run's record is kept beside it
    assert trained_classifier["metrics"]["refit_epochs"] == refit["epochs"]


def test_no_refit_keeps_the_model_chosen_on_validation(trained_classifier):
    from seqmodels.predict import read_history

    result = train_tiny(trained_classifier["home"], "topics-no-refit", refit=False, epochs=2)
    assert result["metrics"]["refit_epochs"] == 0
    assert "refit" not in read_history(Path(result["run_dir"]) / "model")


def test_refit_config_takes_the_chosen_epochs_and_the_rest_of_the_time_budget():
    from seqmodels.kinds.classify.stages import refit_config
    from seqmodels.training import TrainerConfig, TrainResult

    selection = TrainResult(history=[{"epoch_time_s": 10.0}] * 5, best_epoch=3, train_time_s=50.0)
    config = refit_config(selection, TrainerConfig(patience=2, min_steps=300), rows_ratio=1.2)
    assert config.epochs == 3 and config.min_steps == 0 and config.patience > 3 and config.time_budget_s is None
    budget = TrainerConfig(time_budget_s=100.0)
    assert refit_config(selection, budget, rows_ratio=1.2).time_budget_s == 50.0  # 3 x 10 s x 1.2 fits in 50 s
    assert refit_config(selection, budget, rows_ratio=2.0) is None  # 60 s does not: skipped, not cut short
    assert refit_config(TrainResult(), TrainerConfig(), rows_ratio=1.2) is None  # no epoch was chosen


def test_an_ensemble_keeps_every_member_refitted_and_predicts_their_mean(trained_classifier):
    from seqmodels.kinds.classify.predictor import ClassifierPredictor
    from seqmodels.predict import member_weights, read_history

    result = train_tiny(trained_classifier["home"], "topics-two-members", rnn_members=2, epochs=2)
    model_dir = Path(result["run_dir"]) / "model"
    history = read_history(model_dir)
    assert result["metrics"]["rnn_members"] == 2 and member_weights(model_dir, 1).exists()
    assert not member_weights(model_dir, 2).exists()
    assert [member["seed"] for member in history["members"]] == [42 + 1000]  # its own seed, its own record
    assert history["member_refits"][0]["epochs"] == history["members"][0]["best_epoch"] >= 1
    first, second = (torch.load(member_weights(model_dir, m), weights_only=True) for m in (0, 1))
    assert any(not torch.equal(first[name], second[name]) for name in first)  # different members
    predictor = ClassifierPredictor.load(model_dir, "cpu")
    alone = [ClassifierPredictor(member, predictor.featurizer, predictor.labels, predictor.device)
             for member in predictor.members]
    texts = ["Coach praises striker after the match", "Stocks rally as bank profit rises"]
    expected = np.mean([member.rnn_log_probs(texts) for member in alone], axis=0)
    np.testing.assert_allclose(predictor.rnn_log_probs(texts), expected, rtol=1e-5, atol=1e-6)


def test_members_are_counted_from_one_and_fit_the_time_budget():
    from seqmodels.kinds.classify.kind import member_count
    from seqmodels.kinds.classify.stages import member_config
    from seqmodels.training import TrainerConfig

    with pytest.raises(ValueError, match="--rnn-members must be at least 1"):
        member_count("0")
    assert member_config(TrainerConfig(seed=7), 2).seed == 2007
    budget = TrainerConfig(time_budget_s=100.0)
    assert member_config(budget, 1, spent_s=40.0, estimate_s=50.0).time_budget_s == 60.0  # the rest of it
    assert member_config(budget, 1, spent_s=60.0, estimate_s=50.0) is None  # cannot hold a member: skipped
