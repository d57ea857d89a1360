"""``make demo``: train on the shipped headline sample and print where everything is."""

from __future__ import annotations

from importlib import resources
import shutil
from pathlib import Path

from tasks.settings import data_dir

DEMO_MODEL = "demo-headlines"


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
    _print_guide(result, batch, home_dir)
    return {**result, "batch": batch}


def _print_guide(result: dict, batch: dict, home: Path) -> None:
    metrics = result["metrics"]
    lines = [
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
        "",
        "Look at it:",
        f"  .venv/bin/mlflow ui --backend-store-uri {result['tracking_uri']} --port 5000   # then open http://127.0.0.1:5000",
        "  .venv/bin/prefect server start                # then open http://127.0.0.1:4200 (flow runs of this demo)",
        "Use the model from Python:",
        f"  MLFLOW_TRACKING_URI={result['tracking_uri']} .venv/bin/python -c \"import mlflow, pandas as pd; "
        f"m = mlflow.pyfunc.load_model('models:/{DEMO_MODEL}@champion'); print(m.predict(pd.DataFrame({{'text': ['Stocks rally as oil falls']}})))\"",
        "",
    ]
    print("\n".join(lines))
