"""The translation kind end to end: train through the flow on a toy language, BLEU / chrF with the
sacreBLEU signature, the source-disjoint split, the pyfunc with a beam parameter, the batch flow."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from conftest import pyfunc_in_a_fresh_process

WORDS = ["cat", "dog", "bird", "fox", "sees", "likes", "finds", "the", "a", "one"]


def toy_pairs() -> list[str]:
    """English-like triples and their word-reversed, upper-cased "translation"; each source twice, with
    two translations (as Tatoeba has)."""
    lines = []
    for a in WORDS[:4]:
        for b in WORDS[4:7]:
            for c in WORDS[7:]:
                source = f"{a} {b} {c}"
                target = f"{c} {b} {a}".upper()
                lines += [f"{source}\t{target}", f"{source}\t{target} !"]
    return lines


@pytest.fixture(scope="module")
def translator(prefect_harness, tmp_path_factory) -> dict:
    from flows.train_flow import training_flow

    home = tmp_path_factory.mktemp("translate")
    (home / "pairs.txt").write_text("\n".join(toy_pairs() * 6) + "\n", encoding="utf-8")
    result = training_flow("translate")(train=str(home / "pairs.txt"), model_name="toy", epochs=12, embedding_dim=16,
                                        hidden_dim=32, batch_size=16, lr=1e-2, dropout=0.0, beam=3, home=str(home),
                                        tracking_uri_override=f"sqlite:///{home / 'mlflow.db'}")
    return {**result, "home": home}


def test_the_json_line_holds_bleu_chrf_exact_match_greedy_beside_beam_and_the_signature(translator):
    metrics = translator["metrics"]
    for key in ("bleu", "chrf", "exact_match", "bleu_greedy", "chrf_greedy", "exact_match_greedy", "loss"):
        assert isinstance(metrics[key], float), key
    assert metrics["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert metrics["beam"] == 3 and metrics["chrf"] > 50  # the toy language is learnt
    assert translator["gate"]["metric"] == "bleu" and "copying the source" in translator["gate"]["reason"]


def test_without_val_and_test_no_test_source_occurs_in_training(translator):
    files = translator["files"]
    sources = {part: set(pq.read_table(files[part]).column("text").to_pylist()) for part in ("train", "val", "test")}
    assert sources["test"] and not sources["test"] & sources["train"] and not sources["val"] & sources["train"]


def test_each_epoch_logs_sample_translations(translator):
    from mlflow import MlflowClient

    files = [f.path for f in MlflowClient(translator["tracking_uri"]).list_artifacts(translator["run_id"], "epochs")]
    assert files[0] == "epochs/epoch_001.csv" and len(files) == len(json.loads(
        open(translator["run_dir"] + "/model/history.json").read())["history"])


def test_the_pyfunc_translates_with_a_beam_parameter_in_a_fresh_process(translator):
    texts = {"text": ["cat sees the", "fox finds one", ""]}
    outs = pyfunc_in_a_fresh_process("models:/toy@champion", translator["tracking_uri"], translator["home"],
                                     [(texts, {"beam": 1}), (texts, {"beam": 4})])
    for out in outs:
        assert out["translation"][0].startswith("THE SEES CAT") and out["translation"][2] == ""


def test_the_batch_flow_writes_a_translation_column(translator):
    from flows.batch_flow import batch_predict_flow

    home = translator["home"]
    (home / "inbox").mkdir()
    (home / "inbox" / "new.txt").write_text("dog likes a\n\nbird sees the\n", encoding="utf-8")
    summary = batch_predict_flow(model_name="toy", inbox=str(home / "inbox"), output=str(home / "out"), device="cpu",
                                 tracking_uri_override=translator["tracking_uri"], home=str(home))
    assert summary["files_written"] == 1
    (written,) = (home / "out").glob("date=*/*.parquet")
    table = pq.read_table(written).to_pydict()
    assert table["translation"][0].startswith("A LIKES DOG") and table["translation"][1] is None
    assert table["reason"][1] == "empty text"


def test_seqflow_translate_writes_one_translation_a_line(translator, tmp_path, capfd):
    from flows.cli import main

    options = ["translate", "--model-name", "toy", "--data-dir", str(translator["home"]), "--tracking-uri",
               translator["tracking_uri"]]
    given = subprocess.run([sys.executable, "-m", "flows.cli", *options, "cat sees the", "dog likes a", "--beam", "2"],
                           capture_output=True, text=True, timeout=180)
    assert given.returncode == 0, given.stderr[-2000:]
    lines = given.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("THE SEES CAT") and lines[1].startswith("A LIKES DOG")
    (tmp_path / "in.txt").write_text("bird finds one\n\nfox sees a\n", encoding="utf-8")  # the rest in this process
    assert main([*options, "--input", str(tmp_path / "in.txt"), "--beam", "1"]) == 0
    from_file = capfd.readouterr().out.splitlines()
    assert from_file[1] == "" and len(from_file) == 3
    assert main(options) != 0 and "as arguments or with --input FILE" in capfd.readouterr().err
