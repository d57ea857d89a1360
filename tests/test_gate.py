"""The promotion gate: majority-class floor, no leak of the champion's training rows, one gate at a time per
model name, idempotent registration, no zero-epoch training."""

import threading
import time

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from conftest import tiny_headlines, train_tiny


def _client(result: dict) -> MlflowClient:
    return MlflowClient(tracking_uri=result["tracking_uri"], registry_uri=result["tracking_uri"])


@pytest.fixture(scope="module")
def constant_run(trained_classifier):
    """A model trained on one text repeated with three labels: it can only predict one class."""
    home = trained_classifier["home"]
    rows = pd.DataFrame({"headline": ["Same Words Every Time"] * 90, "topic": ["sports", "business", "science"] * 30})
    rows.to_csv(home / "constant.csv", index=False)
    state = train_tiny(home, model_name="constant", train=str(home / "constant.csv"), epochs=2, return_state=True)
    return state, state.result()


def test_a_model_no_better_than_the_majority_class_is_never_champion(constant_run):
    _, result = constant_run
    assert result["alias"] == "challenger" and result["model_version"] == "1"
    tags = _client(result).get_model_version("constant", "1").tags
    assert float(tags["gate_score"]) <= float(tags["majority_baseline"])
    assert "majority class" in tags["gate_reason"]
    assert result["gate"]["decision"] == "challenger"


def test_training_leaves_an_artifact_and_a_one_line_final_message(constant_run):
    import httpx
    from prefect.settings import PREFECT_API_URL

    state, result = constant_run
    assert "constant v1 -> challenger" in state.message and "majority class" in state.message
    assert "\n" not in state.message
    # the REST API itself: this Prefect's client sends nulls its own server rejects (422) for artifact filters
    query = {"artifacts": {"flow_run_id": {"any_": [str(state.state_details.flow_run_id)]}}, "limit": 10, "offset": 0}
    response = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter", json=query)
    [report] = [a for a in response.raise_for_status().json() if a["type"] == "markdown"]
    assert report["key"] == "train-constant" and result["run_id"] in report["data"]
    assert "models:/constant/1" in report["data"]
    assert "challenger" in report["data"] and "accuracy" in report["data"]


def test_zero_epochs_is_refused_by_the_flow_and_the_cli(trained_classifier, tmp_path, capsys):
    from flows.cli import main

    with pytest.raises(ValueError, match="epochs"):
        train_tiny(tmp_path, model_name="untrained", epochs=0)
    assert not list((tmp_path / "runs").glob("untrained/*"))
    with pytest.raises(SystemExit):
        main(["train", "classify", "--train", "x.csv", "--text-col", "t", "--label-col", "l", "--model-name", "m",
              "--epochs", "0"])
    assert "--epochs" in capsys.readouterr().err


def test_champion_is_scored_on_rows_it_never_trained_on(trained_classifier, tmp_path):
    """Another seed re-splits the same file: the new test split holds the champion's training rows."""
    from seqmodels.kinds import get_kind

    rows = tiny_headlines(2000, 3)
    rows["headline"] = [f"{h} Item{i}" for i, h in enumerate(rows["headline"])]  # every text distinct
    rows.to_csv(tmp_path / "train.csv", index=False)
    rnn_only = dict(epochs=2, batch_size=64, linear_member=False, baseline=False)  # the gate is what is tested
    first = train_tiny(tmp_path, model_name="leak", seed=1, **rnn_only)
    second = train_tiny(tmp_path, model_name="leak", seed=2, **rnn_only)
    tags = _client(second).get_model_version("leak", second["model_version"]).tags

    first_train = set(pd.read_parquet(first["files"]["train"])["text"])
    test = pd.read_parquet(second["files"]["test"])
    unseen = test[~test["text"].isin(first_train)]
    assert 0 < len(unseen) < len(test)
    assert int(tags["gate_rows"]) == len(unseen)
    unseen.to_parquet(tmp_path / "unseen.parquet")
    champion_dir = f"{first['run_dir']}/model"
    expected = get_kind("classify").gate_score(champion_dir, str(tmp_path / "unseen.parquet"), "cpu", "accuracy")
    assert float(tags["champion_score_before"]) == pytest.approx(expected, abs=1e-6)


def test_a_retried_registration_keeps_one_version_per_run(trained_classifier):
    from prefect.logging import disable_run_logger

    from tasks.registry import register_model

    t = trained_classifier
    client = _client(t)
    run_id = client.create_run(client.get_run(t["run_id"]).info.experiment_id).info.run_id
    args = (run_id, f"{t['run_dir']}/model", "retried", t["files"]["test"], t["tracking_uri"])
    with disable_run_logger():  # the task's body, called as a retry would call it
        first = register_model.fn(*args, new_score=t["metrics"]["accuracy"], home=str(t["home"]))
        again = register_model.fn(*args, new_score=t["metrics"]["accuracy"], home=str(t["home"]))
    assert first["model_version"] == again["model_version"] == "1"
    assert len(client.search_model_versions("name='retried'")) == 1


def _fake_model_dir(path, texts: list[str]) -> str:
    """A model directory the gate can read (task kind, training hashes); its scores are patched in."""
    from seqmodels.digest import write_text_hashes

    path.mkdir()
    (path / "model.json").write_text('{"task": "classify"}')
    write_text_hashes(texts, path)
    return str(path)


def test_two_gates_of_one_model_name_take_turns(tmp_path, monkeypatch):
    """Both runs read 'no champion' at once without a lock; with it the second sees the first's result."""
    import tasks.gate

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    test = tmp_path / "test.parquet"
    pd.DataFrame({"text": [f"t{i}" for i in range(60)], "label": list("abc") * 20}).to_parquet(test)
    better, worse = _fake_model_dir(tmp_path / "better", ["x"]), _fake_model_dir(tmp_path / "worse", ["y"])
    client.create_registered_model("raced")
    versions = {d: client.create_model_version("raced", d).version for d in (better, worse)}
    scores = {better: 0.9, worse: 0.8}

    read_champion = tasks.gate.current_champion

    def slow_read(*args):
        champion = read_champion(*args)
        time.sleep(0.5)  # widens the window between reading the champion and setting the alias
        return champion

    monkeypatch.setattr(tasks.gate, "current_champion", slow_read)
    monkeypatch.setattr(tasks.gate, "score_model", lambda model_dir, *args: scores[str(model_dir)])
    monkeypatch.setattr(tasks.gate, "champion_model_dir", lambda client, name, version, tmp: client.get_model_version(name, version).source)
    results = {}

    def gate(model_dir: str) -> None:
        request = tasks.gate.GateRequest(model_name="raced", version=str(versions[model_dir]), model_dir=model_dir,
                                         test_path=str(test), metric="accuracy", task_kind="classify",
                                         new_score=scores[model_dir], device="cpu")
        results[model_dir] = tasks.gate.run_gate(client, request, tasks.gate.gate_lock_path(uri, "raced", tmp_path))

    threads = [threading.Thread(target=gate, args=(d,)) for d in (worse, better)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert str(client.get_model_version_by_alias("raced", "champion").version) == str(versions[better])
    befores = sorted(str(r.champion_version_before) for r in results.values())
    assert befores[0] in {str(v) for v in versions.values()} and befores[1] == "None"
    assert np.isfinite([r.score for r in results.values()]).all()


def _request(tmp_path, model_dir: str, rows: int):
    """A gate request for a new model over a test split of `rows` distinct texts."""
    import tasks.gate

    test = tmp_path / "test.parquet"
    pd.DataFrame({"text": [f"Text {i}" for i in range(rows)], "label": list("ab") * (rows // 2)}).to_parquet(test)
    return tasks.gate.GateRequest(model_name="m", version="2", model_dir=model_dir, test_path=str(test),
                                  metric="accuracy", task_kind="classify", new_score=0.9, device="cpu")


def test_a_champion_without_training_hashes_is_compared_on_the_full_test_split_saying_so(tmp_path):
    from tasks.gate import GateConfig, compared_rows

    old_champion = tmp_path / "old"
    old_champion.mkdir()
    (old_champion / "model.json").write_text('{"task": "classify"}')
    request = _request(tmp_path, _fake_model_dir(tmp_path / "new", ["text 1"]), 60)
    rows_path, rows, excluded, basis = compared_rows(request, str(old_champion), str(tmp_path), GateConfig(min_rows=5))
    assert (rows_path, rows, excluded) == (request.test_path, 60, 0)
    assert "before seqflow recorded training-data hashes" in basis


def test_too_few_unseen_rows_fall_back_to_the_full_test_split_saying_so(tmp_path):
    from tasks.gate import GateConfig, compared_rows

    request = _request(tmp_path, _fake_model_dir(tmp_path / "new", []), 60)
    champion = _fake_model_dir(tmp_path / "champion", [f"TEXT  {i}" for i in range(50)])  # same after normalising
    _, rows, excluded, basis = compared_rows(request, champion, str(tmp_path), GateConfig(min_rows=20))
    assert (rows, excluded) == (60, 0) and "only 10 of 60 rows are unseen by both models" in basis
    rows_path, rows, excluded, basis = compared_rows(request, champion, str(tmp_path), GateConfig(min_rows=10))
    assert (rows, excluded) == (10, 50) and pd.read_parquet(rows_path)["text"].tolist()[0] == "Text 50"


@pytest.mark.parametrize("higher, better, worse, constant", [(True, 0.9, 0.8, 0.5), (False, 1.9, 2.1, 4.0)])
def test_the_gate_decides_in_the_direction_it_is_given(higher, better, worse, constant):
    """Accuracy-like metrics promote the larger value, perplexity-like ones the smaller; ties keep the newcomer."""
    from tasks.gate import CHALLENGER, CHAMPION, decide

    assert decide("m", better, worse, "3", constant, higher)[0] == CHAMPION
    alias, reason = decide("m", worse, better, "3", constant, higher)
    assert alias == CHALLENGER and f"({'higher' if higher else 'lower'} is better)" in reason
    assert decide("m", better, better, "3", constant, higher)[0] == CHAMPION
    assert decide("m", constant, None, None, constant, higher)[0] == CHALLENGER  # no better than the constant
    assert decide("m", worse, None, None, constant, higher)[0] == CHAMPION


def test_the_direction_defaults_from_the_metric_name():
    from tasks.gate import CHAMPION, decide

    assert decide("perplexity", 3.0, 4.0, "1", 50.0)[0] == CHAMPION
    assert decide("accuracy", 0.9, 0.8, "1", 0.3)[0] == CHAMPION
