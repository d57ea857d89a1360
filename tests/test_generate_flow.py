"""The generation kind end to end: train through the flow, the contiguous split, the pyfunc with sampling
parameters in a fresh process, ``seqflow generate`` streaming, and lines scored by the batch flow."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import pyfunc_in_a_fresh_process

LINES = ["the cat sat on the mat", "the dog sat on the log", "a bird sang in the tree"]


@pytest.fixture(scope="module")
def language_model(prefect_harness, tmp_path_factory) -> dict:
    """A small LSTM language model trained on a repeated rhyme and registered as ``rhymes@champion``."""
    from flows.train_flow import training_flow

    home = tmp_path_factory.mktemp("generate")
    (home / "rhymes.txt").write_text("\n".join(LINES * 150) + "\n", encoding="utf-8")
    result = training_flow("generate")(train=str(home / "rhymes.txt"), model_name="rhymes", epochs=8,
                                       embedding_dim=16, hidden_dim=64, num_layers=1, batch_size=8, seq_len=32,
                                       lr=1e-2, dropout=0.0, home=str(home),
                                       tracking_uri_override=f"sqlite:///{home / 'mlflow.db'}")
    return {**result, "home": home}


def test_the_json_line_holds_nats_bits_and_perplexity_and_the_model_beats_character_frequencies(language_model):
    metrics = language_model["metrics"]
    for key in ("val_nats_per_char", "val_bits_per_char", "val_perplexity", "nats_per_char"):
        assert key in metrics
    assert metrics["val_bits_per_char"] == pytest.approx(metrics["val_nats_per_char"] / 0.6931471805599453)
    assert metrics["val_nats_per_char"] < 0.5  # the rhyme is learnt: the unigram baseline is ~2.6 nats
    gate = language_model["gate"]
    assert gate["decision"] == "champion" and gate["majority_baseline"] > 2.0
    assert "character frequencies" in gate["reason"] and gate["metric"] == "nats_per_char"


def test_each_epoch_logs_its_samples_and_curves_to_mlflow(language_model):
    from mlflow import MlflowClient

    client = MlflowClient(language_model["tracking_uri"])
    epochs = len(json.loads(open(language_model["run_dir"] + "/model/history.json").read())["history"])
    files = [f.path for f in client.list_artifacts(language_model["run_id"], "epochs")]
    assert epochs >= 2 and files == [f"epochs/epoch_{epoch:03d}.txt" for epoch in range(1, epochs + 1)]
    sample = client.download_artifacts(language_model["run_id"], files[-1])
    assert "--- temperature 0.5 ---" in open(sample, encoding="utf-8").read()
    curve = client.get_metric_history(language_model["run_id"], "val_nats_per_char")
    assert sorted(m.step for m in curve) == list(range(1, epochs + 1))


def test_without_val_the_last_tenth_of_the_text_validates_and_tests(language_model):
    files = language_model["files"]
    train = pq.read_table(files["train"]).column("text").to_pylist()
    val = pq.read_table(files["val"]).column("text").to_pylist()
    assert train + val == LINES * 150  # contiguous, in order, nothing shuffled or lost
    assert len(val) == 45 and files["test"] == files["val"]


def test_contiguous_split_with_a_given_val_cuts_nothing_else(tmp_path):
    from seqmodels.kinds.generate.kind import GENERATE_SPLIT
    from tasks.prepare import split_dataset

    path = tmp_path / "train.parquet"
    pq.write_table(pa.table({"text": [str(i) for i in range(20)]}), path)
    out = split_dataset.fn({"train": str(path), "val": "v.parquet"}, str(tmp_path / "s"), 0, None, GENERATE_SPLIT)
    assert out == {"train": str(path), "val": "v.parquet", "test": "v.parquet"}
    out = split_dataset.fn({"train": str(path)}, str(tmp_path / "s"), 0, None, GENERATE_SPLIT)
    assert pq.read_table(out["val"]).column("text").to_pylist() == ["18", "19"]


def test_the_pyfunc_continues_prefixes_with_sampling_parameters(language_model):
    greedy, seeded, seeded_again, stopped = pyfunc_in_a_fresh_process(
        "models:/rhymes@champion", language_model["tracking_uri"], language_model["home"],
        [({"prefix": ["the cat", "a bi"]}, {"num_chars": 17, "temperature": 0.0}),
         ({"prefix": ["the "]}, {"num_chars": 40, "temperature": 1.5, "seed": 3}),
         ({"prefix": ["the "]}, {"num_chars": 40, "temperature": 1.5, "seed": 3}),
         ({"prefix": ["the dog"]}, {"num_chars": 100, "temperature": 0.0, "stop": "log"})])
    assert greedy["text"][0].startswith("the cat sat on the") and len(greedy["text"][0]) == len("the cat") + 17
    assert greedy["text"][1] == "a bird sang in the tr"  # 4 + 17 characters
    assert seeded == seeded_again
    assert stopped["text"] == ["the dog sat on the log"]


def _cli(language_model, *args: str) -> list[str]:
    home = language_model["home"]
    return ["generate", "--model-name", "rhymes", "--data-dir", str(home), "--tracking-uri",
            language_model["tracking_uri"], *args]


def test_seqflow_generate_writes_the_text_to_stdout_and_logs_to_stderr(language_model, tmp_path, capfd):
    from flows.cli import main

    greedy = subprocess.run([sys.executable, "-m", "flows.cli",
                             *_cli(language_model, "--prefix", "a bird", "--num-chars", "17", "--sampler", "greedy")],
                            capture_output=True, text=True, timeout=180)
    assert greedy.returncode == 0, greedy.stderr[-2000:]
    assert greedy.stdout == "a bird sang in the tree\n"
    (tmp_path / "prefix.txt").write_text("the dog", encoding="utf-8")  # the other options in this process
    assert main(_cli(language_model, "--prefix-file", str(tmp_path / "prefix.txt"), "--temperature", "0", "--stop",
                     "log")) == 0
    assert capfd.readouterr().out == "the dog sat on the log\n"
    assert main(_cli(language_model, "--top-p", "0")) != 0
    assert "top_p must be in (0, 1]" in capfd.readouterr().err


def test_the_batch_flow_scores_each_line_in_nats_per_character(language_model):
    from flows.batch_flow import batch_predict_flow

    home = language_model["home"]
    (home / "inbox").mkdir()
    (home / "inbox" / "lines.txt").write_text("the cat sat on the log\nqzx vvk jjw\n\n", encoding="utf-8")
    summary = batch_predict_flow(model_name="rhymes", inbox=str(home / "inbox"), output=str(home / "out"),
                                 device="cpu", tracking_uri_override=language_model["tracking_uri"], home=str(home))
    assert summary["files_written"] == 1
    (written,) = (home / "out").glob("date=*/*.parquet")
    table = pq.read_table(written).to_pydict()
    familiar, garbled, blank = table["nats_per_char"]
    assert familiar < 1.0 < garbled and blank is None and table["reason"][2] == "empty text"
    assert table["text"][:2] == ["the cat sat on the log", "qzx vvk jjw"]


def test_a_command_of_another_kind_refuses_the_language_model_naming_both_kinds(language_model, capfd):
    from flows.cli import main

    code = main(["translate", "to be", "--model-name", "rhymes", "--data-dir", str(language_model["home"]),
                 "--tracking-uri", language_model["tracking_uri"]])
    assert code == 1 and "is a 'generate' model, not a 'translate' one" in capfd.readouterr().err
