"""Registration in the MLflow model registry, behind a promotion gate."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task

import seqmodels
from seqmodels.kinds import get_kind
from seqmodels.predict import read_model_meta
from tasks.settings import configure_mlflow

CHAMPION, CHALLENGER = "champion", "challenger"
PYFUNC_ENTRY = Path(__file__).with_name("pyfunc_entry.py")
PIP_REQUIREMENTS = ["torch>=2.4,<2.14", "numpy", "pandas", "pyarrow", "nltk", "mlflow>=3,<4"]
EXAMPLE_TEXTS = {"classify": ["Stocks rally as oil prices fall", "Team wins the championship final"],
                 "tag": ["Peter Navarro said on Sunday that the EU rejects German calls."]}


def model_signature(task_kind: str, example: pd.DataFrame):
    """The pyfunc input schema: ``text`` for classifiers; ``text`` or pre-tokenised ``tokens`` for taggers."""
    from mlflow.models import infer_signature
    from mlflow.models.signature import ModelSignature
    from mlflow.types import DataType
    from mlflow.types.schema import Array, ColSpec, Schema

    if task_kind != "tag":
        return infer_signature(example)
    return ModelSignature(inputs=Schema([ColSpec(DataType.string, "text", required=False),
                                         ColSpec(Array(DataType.string), "tokens", required=False)]))


@task
def log_evaluation(run_id: str, evaluation: dict, tracking_uri: str) -> None:
    """Test metrics (``test_*``) and the evaluation files (plots, table) onto the MLflow run."""
    import mlflow

    configure_mlflow(tracking_uri)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({f"test_{k}": float(v) for k, v in evaluation["metrics"].items()})
        mlflow.log_metrics({"best_epoch": evaluation["best_epoch"], "train_time_s": evaluation["train_time_s"]})
        mlflow.set_tag("stop_reason", evaluation["stop_reason"])
        for path in evaluation["files"].values():
            mlflow.log_artifact(path, artifact_path="evaluation")


@task(retries=1, retry_delay_seconds=2)
def register_model(run_id: str, model_dir: str, model_name: str, test_path: str, tracking_uri: str,
                   new_score: float, gate_metric: str = "accuracy", device: str = "auto") -> dict:
    """Log the pyfunc, register a new version of ``model_name`` and give it an alias.

    Gate: the new version becomes ``champion`` if there is none yet or it scores at least as well as
    the current champion on this run's test set; otherwise it is the ``challenger``. ``new_score`` is
    the new model's ``gate_metric`` from the evaluation task; the champion is scored here on the same
    test file. Both scores are tagged on the new version.
    """
    import mlflow
    from mlflow import MlflowClient

    logger = get_run_logger()
    configure_mlflow(tracking_uri)
    client = MlflowClient()
    task_kind = read_model_meta(model_dir)["task"]
    champion_score, champion_version = _champion_score(client, model_name, test_path, device, gate_metric)
    example = pd.DataFrame({"text": EXAMPLE_TEXTS[task_kind]})
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model", python_model=str(PYFUNC_ENTRY), artifacts={"model_dir": model_dir},
            code_paths=[str(Path(seqmodels.__file__).parent)], pip_requirements=PIP_REQUIREMENTS,
            input_example=example, signature=model_signature(task_kind, example))
    version = mlflow.register_model(info.model_uri, model_name).version
    promote = champion_score is None or new_score >= champion_score
    alias = CHAMPION if promote else CHALLENGER
    client.set_registered_model_alias(model_name, alias, version)
    tags = {"task": task_kind, "gate_metric": gate_metric, "gate_score": f"{new_score:.6f}", "run_id": run_id,
            "champion_score_before": "none" if champion_score is None else f"{champion_score:.6f}",
            "champion_version_before": champion_version or "none"}
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    logger.info("%s version %s scored %.4f (champion before: %s) -> %s", model_name, version, new_score,
                tags["champion_score_before"], alias)
    return {"model_name": model_name, "model_version": str(version), "alias": alias,
            "model_uri": f"models:/{model_name}@{alias}", "version_uri": f"models:/{model_name}/{version}",
            "gate": {"metric": gate_metric, "score": new_score, "champion_score_before": champion_score,
                     "champion_version_before": champion_version}}


def _champion_score(client, model_name: str, test_path: str, device: str,
                    metric: str) -> tuple[float | None, str | None]:
    """The current champion's score on this test set, from its own artifacts; (None, None) if there is none."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        champion = client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None, None
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(f"models:/{model_name}/{champion.version}", dst_path=tmp)
        model_dir = next(Path(local).glob("artifacts/*/model.json")).parent  # the pyfunc's model_dir artifact
        kind = get_kind(read_model_meta(model_dir)["task"])
        return kind.gate_score(model_dir, test_path, device, metric), str(champion.version)
