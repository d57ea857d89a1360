"""Registration in the MLflow model registry, behind a promotion gate."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.exceptions import MissingContextError

import seqmodels
from seqmodels.kinds import get_kind
from seqmodels.predict import read_model_meta
from tasks.gate import GateDecision, GateRequest, gate_lock_path, run_gate
from tasks.settings import configure_mlflow

PYFUNC_ENTRY = Path(__file__).with_name("pyfunc_entry.py")
PIP_REQUIREMENTS = ["torch>=2.4,<2.14", "numpy", "pandas", "pyarrow", "nltk", "mlflow>=3,<4"]


def model_signature(kind):
    """The pyfunc signature of a task kind: its ``input_columns``, and its ``predict_params`` (typed by their
    defaults) so that ``predict(..., params=...)`` reaches the predictor."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types import DataType
    from mlflow.types.schema import Array, ColSpec, ParamSchema, ParamSpec, Schema

    types = {"string": DataType.string, "list[string]": Array(DataType.string)}
    inputs = Schema([ColSpec(types[c.type], c.name, required=c.required) for c in kind.input_columns])
    params = [ParamSpec(name, _param_type(default), default)
              for name, default in kind.predict_params.items()]
    return ModelSignature(inputs=inputs, params=ParamSchema(params) if params else None)


def _param_type(default) -> str:
    """MLflow's type name for a parameter default."""
    for python_type, name in ((bool, "boolean"), (int, "long"), (float, "double"), (str, "string")):
        if isinstance(default, python_type):
            return name
    raise TypeError(f"predict parameter default {default!r}: use a bool, int, float or str")


@task
def log_evaluation(run_id: str, evaluation: dict, tracking_uri: str) -> None:
    """Training summary and the evaluation files (plots, tables, metrics.json) onto the MLflow run.

    The ``test_*`` metrics are logged by :func:`register_model`, once, linked to the logged model.
    """
    import mlflow

    configure_mlflow(tracking_uri)
    with mlflow.start_run(run_id=run_id):
        baselines = {k: float(v) for k, v in evaluation["metrics"].items() if k.startswith("baseline_")}
        mlflow.log_metrics({"best_epoch": evaluation["best_epoch"], "train_time_s": evaluation["train_time_s"],
                            **baselines})
        mlflow.set_tag("stop_reason", evaluation["stop_reason"])
        for path in evaluation["files"].values():
            mlflow.log_artifact(path, artifact_path="evaluation")


@task(retries=1, retry_delay_seconds=2)
def register_model(run_id: str, model_dir: str, model_name: str, test_path: str, tracking_uri: str,
                   new_score: float, gate_metric: str = "accuracy", device: str = "auto", metrics: dict | None = None,
                   data: dict | None = None, home: str | None = None) -> dict:
    """Log the pyfunc, register one version of ``model_name`` per run and give it an alias behind the gate.

    Idempotent per run: a retry finds the version this run registered and, once the gate has decided,
    returns its recorded decision. The gate (:mod:`tasks.gate`) scores the new version and the champion on
    test rows neither trained on, refuses anything no better than the majority class, and runs under a
    per-model-name lock. ``new_score`` is the new model's ``gate_metric`` on the whole test split;
    ``metrics`` (test metrics) go onto the logged model; ``data`` (digests, row counts) into the
    version's description.
    """
    from mlflow import MlflowClient

    configure_mlflow(tracking_uri, home)
    client = MlflowClient()
    task_kind = read_model_meta(model_dir)["task"]
    version = version_of_run(client, model_name, run_id) or _log_and_register(run_id, model_dir, model_name, task_kind,
                                                                               metrics or {})
    recorded = client.get_model_version(model_name, version).tags
    if "gate_decision" in recorded:
        decision = GateDecision.from_tags(recorded)
    else:
        request = GateRequest(model_name, version, model_dir, test_path, gate_metric, task_kind, new_score, device)
        decision = run_gate(client, request, gate_lock_path(tracking_uri, model_name, home))
    for key, value in {"task": task_kind, "run_id": run_id}.items():
        client.set_model_version_tag(model_name, version, key, value)
    client.update_model_version(model_name, version, description=version_description(decision, metrics or {},
                                                                                        data or {}))
    client.set_tag(run_id, "mlflow.runName", f"{model_name}-v{version}")
    _log_decision(model_name, version, decision)
    return {"model_name": model_name, "model_version": version, "alias": decision.alias,
            "model_uri": f"models:/{model_name}@{decision.alias}", "version_uri": f"models:/{model_name}/{version}",
            "gate": decision.summary()}


def version_of_run(client, model_name: str, run_id: str) -> str | None:
    """The version of ``model_name`` this run already registered (a retried task), if any."""
    versions = [v for v in client.search_model_versions(f"run_id = '{run_id}'") if v.name == model_name]
    return str(min(int(v.version) for v in versions)) if versions else None


def _log_and_register(run_id: str, model_dir: str, model_name: str, task_kind: str, metrics: dict) -> str:
    """Log the pyfunc into the run, its test metrics onto the logged model; register it; the new version."""
    import mlflow

    kind = get_kind(task_kind)
    example = pd.DataFrame(kind.input_example)
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model", python_model=str(PYFUNC_ENTRY), artifacts={"model_dir": model_dir},
            code_paths=[str(Path(seqmodels.__file__).parent)], pip_requirements=PIP_REQUIREMENTS,
            input_example=example, signature=model_signature(kind))
        numbers = {f"test_{k}": float(v) for k, v in (metrics or {}).items() if not isinstance(v, str)}
        if numbers:
            mlflow.log_metrics(numbers, model_id=info.model_id)
        for key, text in (metrics or {}).items():  # e.g. the sacreBLEU signature beside the BLEU score
            if isinstance(text, str):
                mlflow.set_tag(f"test_{key}", text)
    return str(mlflow.register_model(info.model_uri, model_name).version)


def version_description(decision: GateDecision, metrics: dict, data: dict) -> str:
    """A registered version's description: the gate's decision, its test metrics and its data
    (``{part: {rows, digest, source}}`` from :func:`tasks.tracking.log_trained_model`)."""
    lines = [f"Gate: {decision.alias}. {decision.reason} (on {decision.rows} rows: {decision.basis})."]
    if metrics:
        lines.append("Test metrics: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                                  for k, v in metrics.items()) + ".")
    for part, info in data.items():
        lines.append(f"{part}: {info['rows']} rows, digest {info['digest']}, from {info['source']}.")
    return "\n".join(lines)


def _log_decision(model_name: str, version: str, decision: GateDecision) -> None:
    """One log line for the decision (a plain logger outside a Prefect run)."""
    try:
        logger = get_run_logger()
    except MissingContextError:
        logger = logging.getLogger(__name__)
    logger.info("%s version %s -> %s: %s", model_name, version, decision.alias, decision.reason)
