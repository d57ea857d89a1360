"""The deployments build with the right schedule and a typed parameter schema."""

from prefect.utilities.callables import parameter_schema

from deployments.serve import NightlySettings, nightly_deployment, training_deployment, training_deployments
from flows.batch_flow import batch_predict_flow
from flows.train_flow import train_classifier_flow, train_tagger_flow


def test_nightly_deployment_schedule_and_parameters():
    deployment = nightly_deployment(NightlySettings(timezone="Europe/Paris", inbox="/data/in", output="/data/out"))
    (schedule,) = deployment.schedules
    assert schedule.schedule.cron == "0 2 * * *" and schedule.schedule.timezone == "Europe/Paris"
    assert deployment.parameters["inbox"] == "/data/in" and deployment.parameters["alias"] == "champion"
    assert deployment.flow_name == "batch-predict"
    schema = parameter_schema(batch_predict_flow)  # what the deployment registers as the UI form
    assert {"model_name", "inbox", "output", "alias", "text_col", "batch_size", "device"} <= set(schema.properties)
    assert schema.properties["batch_size"]["type"] == "integer"
    assert set(schema.properties["device"]["enum"]) == {"auto", "cpu", "cuda"}
    assert set(schema.required) == {"model_name", "inbox", "output"}


def test_nightly_deployment_takes_the_task_runner_and_address(monkeypatch):
    monkeypatch.setenv("SEQFLOW_NIGHTLY_TASK_RUNNER", "dask")
    monkeypatch.setenv("SEQFLOW_NIGHTLY_ADDRESS", "tcp://scheduler:8786")
    monkeypatch.setenv("SEQFLOW_NIGHTLY_WORKERS", "4")
    deployment = nightly_deployment(NightlySettings.from_env())
    assert deployment.parameters["task_runner"] == "dask" and deployment.parameters["workers"] == 4
    assert deployment.parameters["address"] == "tcp://scheduler:8786"
    schema = parameter_schema(batch_predict_flow)
    assert set(schema.properties["task_runner"]["enum"]) == {"local", "dask", "ray"}


def test_training_deployment_has_a_typed_form():
    deployment = training_deployment("classify")
    assert not deployment.schedules
    assert deployment.flow_name == "train-classifier"
    schema = parameter_schema(train_classifier_flow)
    assert schema.properties["epochs"]["type"] == "integer"
    assert schema.properties["lr"]["type"] == "number"
    assert set(schema.properties["cell"]["enum"]) == {"rnn", "gru", "lstm"}
    assert set(schema.required) == {"train", "model_name"}


def test_tagger_training_deployment_has_a_typed_form():
    deployment = training_deployment("tag")
    assert deployment.flow_name == "train-tagger" and not deployment.schedules
    schema = parameter_schema(train_tagger_flow)
    assert set(schema.properties["format"]["enum"]) == {"conll2003", "conllu", "gmb", "tsv"}
    assert schema.properties["crf"]["type"] == "boolean"
    assert set(schema.properties["char_encoder"]["enum"]) == {"cnn", "lstm", "none"}
    assert set(schema.required) == {"train", "model_name"}


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("SEQFLOW_NIGHTLY_CRON", "30 3 * * *")
    monkeypatch.setenv("SEQFLOW_NIGHTLY_MODEL_NAME", "topics")
    settings = NightlySettings.from_env()
    assert settings.cron == "30 3 * * *" and settings.model_name == "topics"


def test_every_kind_has_a_training_deployment_whose_form_describes_every_field():
    from flows.train_flow import training_flow
    from seqmodels.kinds import kind_names

    deployments = training_deployments()
    assert [d.flow_name for d in deployments] == [training_flow(k).name for k in kind_names()]
    for kind_name in kind_names():
        schema = parameter_schema(training_flow(kind_name))
        undescribed = [name for name, spec in schema.properties.items() if not spec.get("description")]
        assert not undescribed, f"{kind_name}: no description for {undescribed}"
        assert {"train", "model_name", "epochs", "device", "seed"} <= set(schema.properties)
