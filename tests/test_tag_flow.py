"""The tagging path for real: the training flow, the registry gate, a fresh-process pyfunc, the nightly flow."""

import json

import pandas as pd
from mlflow import MlflowClient

from conftest import pyfunc_in_a_fresh_process, train_tiny_tagger
from flows.batch_flow import batch_predict_flow

CONTRACT = ["source_file", "row", "text", "tokens", "tags", "entities", "model_name", "model_version", "run_id"]


def test_tagger_registered_then_challenger(trained_tagger):
    first = trained_tagger
    assert first["alias"] == "champion" and first["model_uri"] == "models:/ner@champion"
    assert {"f1", "precision", "recall", "accuracy"} <= set(first["metrics"])
    assert first["metrics"]["f1"] >= 0.9
    assert first["gate"]["metric"] == "f1"

    worse = train_tiny_tagger(first["home"], epochs=1, lr=1e-6)
    assert worse["alias"] == "challenger" and worse["model_version"] == "2"

    client = MlflowClient(tracking_uri=first["tracking_uri"], registry_uri=first["tracking_uri"])
    tags = client.get_model_version("ner", "2").tags
    assert tags["task"] == "tag" and tags["gate_metric"] == "f1"
    assert float(tags["gate_score"]) < float(tags["champion_score_before"])
    run = client.get_run(first["run_id"])
    assert {"val_f1", "val_tag_accuracy", "train_loss", "test_f1", "test_accuracy"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(first["run_id"], "evaluation")}
    assert {"evaluation/confusion_matrix.png", "evaluation/per_tag.csv", "evaluation/per_entity_type.csv"} <= artifacts


def test_pyfunc_in_a_fresh_process_tags_tokens_and_text(trained_tagger):
    outs = pyfunc_in_a_fresh_process("models:/ner@champion", trained_tagger["tracking_uri"], trained_tagger["home"], [
        ({"tokens": [["Angela", "Merkel", "visited", "Paris", "on", "Monday", "."]]}, None),
        ({"text": ["Peter Blackburn visited New York on Monday."]}, None)])
    pretokenised, raw = ({column: values[0] for column, values in out.items()} for out in outs)  # the one row of each
    assert pretokenised["tags"] == ["B-PER", "I-PER", "O", "B-LOC", "O", "O", "O"]
    assert [(e["type"], e["start"], e["end"]) for e in pretokenised["entities"]] == [("PER", 0, 2), ("LOC", 3, 4)]
    assert raw["tokens"] == ["Peter", "Blackburn", "visited", "New", "York", "on", "Monday", "."]
    text = "Peter Blackburn visited New York on Monday."
    spans = {(e["type"], e["text"], text[e["char_start"]:e["char_end"]]) for e in raw["entities"]}
    assert spans == {("PER", "Peter Blackburn", "Peter Blackburn"), ("LOC", "New York", "New York")}


def test_nightly_flow_tags_a_txt_inbox(trained_tagger, tmp_path):
    inbox, output = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    lines = ["Maria Lopez joined Reuters in 1996.", "", "The United Nations met in Berlin today."]
    (inbox / "news.txt").write_text("\n".join(lines) + "\n")
    run = dict(model_name="ner", inbox=str(inbox), output=str(output),
               tracking_uri_override=trained_tagger["tracking_uri"], home=str(trained_tagger["home"]))
    summary = batch_predict_flow(**run)
    assert summary["files_written"] == 1 and summary["rows"] == 3
    table = pd.read_parquet(next(output.glob("date=*/*.parquet")))
    assert CONTRACT == [c for c in table.columns if c in CONTRACT]
    assert table["text"].fillna("").tolist() == lines and table["row"].tolist() == [0, 1, 2]
    assert table.loc[1, "tags"] is None and table.loc[1, "reason"] == "empty text"
    first = table.loc[0]
    assert len(first["tokens"]) == len(first["tags"]) == 7
    assert {(e["type"], e["text"]) for e in first["entities"]} == {("PER", "Maria Lopez"), ("ORG", "Reuters")}
    assert batch_predict_flow(**run)["files"] == 0  # exactly once


def test_cli_train_tag_prints_a_json_last_line(trained_tagger, capsys):
    from flows.cli import main

    home = trained_tagger["home"]
    code = main(["train", "tag", "--train", str(home / "ner.txt"), "--format", "conll2003", "--model-name", "cli-ner",
                 "--epochs", "1", "--data-dir", str(home), "--tracking-uri", f"sqlite:///{home / 'mlflow.db'}",
                 "--embedding-dim", "8", "--hidden-dim", "8", "--no-crf", "--char-encoder", "lstm"])
    assert code == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"model_name", "model_version", "model_uri", "alias", "metrics"} <= set(last)
    assert {"f1", "precision", "recall", "accuracy"} <= set(last["metrics"])


def test_cli_reports_invalid_bio_with_counts(trained_tagger, tmp_path, capsys):
    from flows.cli import main

    bad = tmp_path / "bad.txt"
    bad.write_text("Peter NNP B-NP I-PER\nsaid VBD B-VP O\n\nin IN O O\nParis NNP B-NP I-LOC\n")
    home = trained_tagger["home"]
    code = main(["train", "tag", "--train", str(bad), "--format", "conll2003", "--model-name", "bad",
                 "--data-dir", str(home), "--tracking-uri", f"sqlite:///{home / 'mlflow.db'}"])
    assert code == 1
    err = capsys.readouterr().err
    assert "bad.txt:1" in err and "2 invalid transition(s)" in err
