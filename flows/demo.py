"""``make demo``: train on the shipped headline sample and print where everything is."""

from __future__ import annotations

import shlex
import shutil
from importlib import resources
from pathlib import Path

from tasks.settings import data_dir

DEMO_MODEL = "demo-headlines"
PREFECT_SERVER_API = "http://127.0.0.1:4200/api"  # where `prefect server start` listens by default


def demo_file(name: str) -> Path:
    """A file shipped in ``flows/demo_data``."""
    return Path(str(resources.files("flows").joinpath("demo_data", name)))


def run_demo(home: str | None = None) -> dict:
    """Run the training flow on embedded defaults, then print a guide to the results on stderr."""
    from flows.train_flow import train_classifier_flow

    from flows.batch_flow import batch_predict_flow

    home_dir = data_dir(home)
    result = train_classifier_flow(train=str(demo_file("headlines.csv")), text_col="title", label_col="category",
                                   model_name=DEMO_MODEL, home=str(home_dir))
    inbox, output = home_dir / "inbox", home_dir / "predictions"
    inbox.mkdir(exist_ok=True)
    for sample in sorted(demo_file("inbox").iterdir()):
        shutil.copy(sample, inbox / sample.name)
    batch = batch_predict_flow(model_name=DEMO_MODEL, inbox=str(inbox), output=str(output),
                               tracking_uri_override=result["tracking_uri"], home=str(home_dir))
    from tasks.settings import configure_mlflow

    _print_guide(result, batch, home_dir, experiment_id=configure_mlflow(result["tracking_uri"], str(home_dir)))
    return {**result, "batch": batch}


def _print_guide(result: dict, batch: dict, home: Path, experiment_id: str | None = None) -> None:
    """Print where everything is, and commands that work as printed (paths quoted for the shell)."""
    print("\n".join(_results_lines(result, batch) + _servers_lines(result, batch, home, experiment_id)))


def _results_lines(result: dict, batch: dict) -> list[str]:
    """What was trained, registered and predicted, and where it is."""
    metrics = result["metrics"]
    return [
        "",
        "=== seqflow demo: done ===",
        f"test accuracy {metrics['accuracy']:.3f}, macro F1 {metrics['f1_macro']:.3f} on {metrics['num_test']} headlines",
        f"registered:  {result['model_name']} version {result['model_version']} as @{result['alias']}  ({result['model_uri']})",
        f"MLflow run:  {result['run_id']}   store: {result['tracking_uri']}",
        f"run files:   {result['run_dir']}  (Parquet: raw_*.parquet, clean_*.parquet, splits/*.parquet)",
        f"plots:       {result['files']['confusion_matrix']}",
        f"             {result['files']['learning_curves']}",
        "",
        f"nightly batch: {batch['files_written']} inbox files, {batch['rows']} rows -> {batch['output']}/date=YYYY-MM-DD/*.parquet",
        f"  read them:   .venv/bin/python -c \"import glob, pandas as pd; "
        f"print(pd.concat(map(pd.read_parquet, sorted(glob.glob('{batch['output']}/date=*/*.parquet')))))\"",
    ]


def _servers_lines(result: dict, batch: dict, home: Path, experiment_id: str | None) -> list[str]:
    """The MLflow UI, the Prefect UI and the nightly deployment on this demo's store, model and inbox."""
    uri, q = result["tracking_uri"], shlex.quote
    runs_page = f"http://127.0.0.1:5000/#/experiments/{experiment_id or ''}?workflowType=machine_learning"
    serve_env = {"PREFECT_API_URL": PREFECT_SERVER_API, "MLFLOW_TRACKING_URI": uri, "SEQFLOW_HOME": str(home),
                 "SEQFLOW_NIGHTLY_MODEL_NAME": DEMO_MODEL, "SEQFLOW_NIGHTLY_INBOX": str(home / "inbox"),
                 "SEQFLOW_NIGHTLY_OUTPUT": batch["output"]}
    return [
        "",
        "Look at the training runs (MLflow 3 opens on GenAI: this link, or the sidebar's switch, shows model training):",
        f"  MLFLOW_DISABLE_TELEMETRY=true .venv/bin/mlflow ui --backend-store-uri {q(uri)} --port 5000"
        f"   # then open {runs_page}",
        "Serve the nightly batch and training deployments, with the Prefect UI (two terminals):",
        "  PREFECT_SERVER_ANALYTICS_ENABLED=false .venv/bin/prefect server start"
        "   # terminal 1; then open http://127.0.0.1:4200 (this demo's flow runs are there too)",
        "  " + " ".join(f"{name}={q(value)}" for name, value in serve_env.items()) + " .venv/bin/seqflow serve"
        "   # terminal 2",
        "Use the model from Python:",
        f"  MLFLOW_TRACKING_URI={q(uri)} .venv/bin/python -c \"import mlflow, pandas as pd; "
        f"m = mlflow.pyfunc.load_model('models:/{DEMO_MODEL}@champion'); print(m.predict(pd.DataFrame({{'text': ['Stocks rally as oil falls']}})))\"",
        "",
    ]
