"""One contract over every registered task kind: a new kind gets these tests by registering.

Each kind trains its own tiny example for one epoch through its real Prefect flow (MLflow on SQLite),
registers it, is loaded through the pyfunc from the registry, predicts an inbox through the batch flow,
and its gate compares in the direction the kind states.
"""

from __future__ import annotations

import dataclasses
import inspect
import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from seqmodels.kinds import get_kind, kind_names

RESULT_KEYS = {"model_name", "model_version", "alias", "model_uri", "version_uri", "gate", "metrics", "run_id",
               "tracking_uri", "run_dir", "files", "preprocessing"}
BATCH_COLUMNS = {"source_file", "row", "text", "model_name", "model_version", "run_id", "reason"}


@pytest.fixture(scope="module", params=kind_names())
def trained(request, prefect_harness, tmp_path_factory) -> dict:
    """A kind's example trained for one epoch and registered, in its own home and MLflow store."""
    from flows.train_flow import training_flow

    kind = get_kind(request.param)
    home = tmp_path_factory.mktemp(f"contract-{kind.name}")
    example = kind.example_run(home)
    result = training_flow(kind.name)(model_name=f"contract-{kind.name}", home=str(home),
                                      tracking_uri_override=f"sqlite:///{home / 'mlflow.db'}", **example.options)
    return {"kind": kind, "home": home, "example": example, "result": result}


def test_training_returns_the_closing_json_line(trained):
    kind, result = trained["kind"], trained["result"]
    assert RESULT_KEYS <= set(result)
    metric = kind.gate_metric(result["metrics"])
    assert metric in result["metrics"] and result["gate"]["metric"] == metric
    assert result["alias"] in ("champion", "challenger")
    assert json.loads(json.dumps(result, default=str))["model_name"] == f"contract-{kind.name}"


def test_pyfunc_predicts_through_the_registry(trained):
    """Loaded from the registry as consumers do (in this process: each kind's own tests load it in a fresh one)."""
    import mlflow

    kind, result = trained["kind"], trained["result"]
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(result["tracking_uri"])
    mlflow.set_registry_uri(result["tracking_uri"])
    try:
        out = mlflow.pyfunc.load_model(result["version_uri"]).predict(pd.DataFrame(kind.input_example))
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    assert set(kind.pyfunc_columns or kind.output_types) <= set(out.columns)
    assert len(out) == len(next(iter(kind.input_example.values())))


def test_batch_flow_writes_the_kinds_columns(trained):
    from flows.batch_flow import batch_predict_flow

    kind, result, home = trained["kind"], trained["result"], trained["home"]
    inbox = home / "inbox"
    inbox.mkdir()
    (inbox / "new.txt").write_text("\n".join(trained["example"].texts) + "\n", encoding="utf-8")
    summary = batch_predict_flow(model_name=result["model_name"], alias=result["alias"], inbox=str(inbox),
                                 output=str(home / "out"), device="cpu", tracking_uri_override=result["tracking_uri"],
                                 home=str(home))
    assert summary["files_written"] == 1 and summary["files_failed"] == 0
    (written,) = (home / "out").glob("date=*/*.parquet")
    schema = pq.read_schema(written)
    assert set(schema.names) == BATCH_COLUMNS | set(kind.output_types)
    for name, arrow_type in kind.output_types.items():
        assert schema.field(name).type == arrow_type, name
    table = pq.read_table(written)
    assert table.num_rows == len(trained["example"].texts)
    assert table.column("reason").to_pylist()[-1] == "empty text"  # the blank line keeps its row


def test_gate_compares_in_the_kinds_direction(trained):
    from tasks.gate import CHALLENGER, CHAMPION, decide

    kind, metrics = trained["kind"], trained["result"]["metrics"]
    metric = kind.gate_metric(metrics)
    higher = kind.higher_is_better(metric)
    good, bad, worst = (0.9, 0.5, 0.1) if higher else (0.5, 0.9, 10.0)
    assert decide(metric, good, bad, "1", worst, higher)[0] == CHAMPION
    assert decide(metric, bad, good, "1", worst, higher)[0] == CHALLENGER
    assert decide(metric, bad, None, None, good, higher)[0] == CHALLENGER  # no better than the baseline
    assert decide(metric, good, None, None, bad, higher)[0] == CHAMPION
    test_rows = trained["result"]["files"]["test"]
    assert isinstance(kind.baseline_score(test_rows, metric), float)


def test_options_round_trip_through_print_config_and_config(trained, tmp_path, capsys):
    """``--print-config`` writes what ``--config`` reads back; flags override the file."""
    from flows.cli import main

    from seqmodels.options import required_options

    kind, example = trained["kind"], trained["example"].options
    flags = {f.name: f.metadata.get("flag", f.name.replace("_", "-")) for f in dataclasses.fields(kind.options)}
    required = [arg for name in required_options(kind.options)
                for arg in (f"--{flags[name]}", str(example.get(name, "m")))]
    assert main(["train", kind.name, *required, "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (tmp_path / "run.json").write_text(json.dumps({**printed, "seed": 7}))
    assert main(["train", kind.name, "--config", str(tmp_path / "run.json"), "--seed", "9", "--print-config"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again == {**printed, "seed": 9}


def test_an_unknown_kind_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="unknown task kind 'poetry'; this seqflow knows 'classify', 'tag', 'generate', 'translate'"):
        get_kind("poetry")


@pytest.mark.parametrize("kind_name", kind_names())
def test_every_kind_implements_the_whole_interface(kind_name):
    """Class attributes set, options with a help text each, a flow whose parameters are exactly the options."""
    from flows.train_flow import training_flow
    from seqmodels.kinds.base import TaskKind

    kind = get_kind(kind_name)
    assert isinstance(kind, TaskKind) and kind.name == kind_name
    for attribute in ("description", "flow_name", "options", "trainer_defaults", "input_example", "output_types"):
        assert getattr(kind, attribute), attribute
    fields = dataclasses.fields(kind.options)
    assert all(f.metadata.get("help") for f in fields), [f.name for f in fields if not f.metadata.get("help")]
    flow = training_flow(kind_name)
    assert flow.name == kind.flow_name
    assert list(inspect.signature(flow.fn).parameters) == [f.name for f in fields]


def test_flows_are_module_attributes_for_prefect_entrypoints():
    import flows.train_flow as module

    for kind_name in kind_names():
        flow = module.training_flow(kind_name)
        name = flow._entrypoint.rsplit(":", 1)[1]
        assert getattr(module, name) is flow
    with pytest.raises(AttributeError):
        module.train_poetry_flow


def test_pyfunc_signature_declares_the_kinds_columns_and_inference_parameters():
    """A kind that takes inference parameters gets them in the signature (MLflow drops undeclared ones)."""
    from types import SimpleNamespace

    from seqmodels.kinds.base import InputColumn
    from tasks.registry import model_signature

    kind = SimpleNamespace(input_columns=(InputColumn("prefix"),), predict_params={"num_chars": 200, "temperature": 0.8})
    signature = model_signature(kind)
    assert signature.inputs.input_names() == ["prefix"]
    assert {p.name: (p.dtype.name, p.default) for p in signature.params.params} == {
        "num_chars": ("long", 200), "temperature": ("double", 0.8)}
    for kind_name in kind_names():
        real = model_signature(get_kind(kind_name))
        assert set(real.inputs.input_names()) == {c.name for c in get_kind(kind_name).input_columns}
