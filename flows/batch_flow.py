"""The nightly batch flow: new inbox files -> registered model -> Parquet, exactly once."""

from __future__ import annotations

import time
from typing import Literal

from prefect import flow
from prefect.states import Completed

from seqmodels.inbox import exclusive_run
from tasks.batch import fetch_model, find_new, predict_one_file, report_run
from tasks.settings import tracking_uri


@flow(name="batch-predict", log_prints=True)
def batch_predict_flow(
    model_name: str,
    inbox: str,
    output: str,
    alias: str = "champion",
    text_col: str = "text",
    batch_size: int = 512,
    device: Literal["auto", "cpu", "cuda"] = "auto",
    tracking_uri_override: str | None = None,
    home: str | None = None,
):
    """Predict every new file of ``inbox`` (whatever task the model does) into ``output/date=YYYY-MM-DD/`` with ``models:/NAME@ALIAS``."""
    started = time.monotonic()
    model = fetch_model(model_name, alias, tracking_uri(tracking_uri_override, home), home)
    with exclusive_run(output):
        outcomes = [predict_one_file(item, output, model, text_col, batch_size, device) for item in find_new(inbox, output)]
    summary = report_run(outcomes, model, time.monotonic() - started)
    summary.update(model_name=model["model_name"], model_version=model["model_version"], output=output)
    message = (f"{summary['files_written']} files / {summary['rows']} rows written, "
               f"{summary['files_failed']} files quarantined, {summary['files_skipped']} skipped (deleted meanwhile)")
    return Completed(message=message, data=summary)
