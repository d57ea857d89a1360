"""The training flow of every task kind: ingest -> preprocess -> split -> fit -> train -> evaluate -> register.

One body, :func:`train`, serves every kind; :func:`training_flow` wraps it as the kind's Prefect flow
(``train-classifier``, ``train-tagger``...) whose keyword parameters are the kind's options, each with its
type, default and description (the Prefect UI's run form). ``train_classifier_flow`` and
``train_tagger_flow`` are those flows, built on first use.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

from prefect import Flow, flow, runtime
from prefect.states import Completed, State

from flows.run_config import check_resume_config, load_prepared, run_config, save_prepared, save_run_config
from seqmodels.kinds import KINDS, get_kind
from seqmodels.options import option_types, options_dict
from seqmodels.preprocess import preprocess_counts
from tasks.prepare import fit_tokenizer, ingest_file, preprocess_file, split_dataset
from tasks.registry import log_evaluation, register_model
from tasks.settings import data_dir, tracking_uri
from tasks.tracking import log_trained_model, report_training, start_tracking
from tasks.train import compare_with_baselines, config_params, evaluate_model, params_before_training, train_model

PARTS = ("train", "val", "test")


def train(kind_name: str, options) -> State:
    """Train a model of kind ``kind_name`` with ``options`` (its options dataclass), track it in MLflow and
    register it behind the promotion gate. A Completed state whose data is the result (the CLI's JSON line)."""
    kind = get_kind(kind_name)
    model_config, trainer_config = kind.model_config(options), kind.trainer_config(options)
    params = {"task": kind.name, **{f"{part}_file": getattr(options, part) for part in PARTS},
              "model_name": options.model_name, "nproc": options.nproc, **kind.run_params(options),
              **config_params(model_config, trainer_config)}
    given = {part: path for part in PARTS if (path := getattr(options, part))}
    home, resume = options.home, options.resume
    uri = tracking_uri(options.tracking_uri_override, home)
    run_dir = _start_run_dir(home, options.model_name, resume, params, given)
    run_id = start_tracking(uri, f"{options.model_name}-{run_dir.name}", params_before_training(params),
                            _tags(run_dir, kind.name), home)
    values = options_dict(options)
    splits, featurizer_dir = (load_prepared(run_dir) if resume  # the split and vocabulary the run started with
                              else _prepare(kind, run_dir, given, values))
    model_dir = train_model(kind.name, splits, featurizer_dir, str(run_dir), asdict(model_config),
                            asdict(trainer_config), values, resume, run_id)
    return _evaluate_and_register(kind.name, model_dir, splits, run_dir, run_id, uri, options)


def _prepare(kind, run_dir: Path, given: dict[str, str], options: dict) -> tuple[dict[str, str], str]:
    """Every given file into the kind's canonical table, preprocessed; the split; the preprocessing fitted
    on train. Recorded in ``prepared.json`` for a resume."""
    raw = {part: ingest_file(kind.name, path, str(run_dir / f"raw_{part}.parquet"), options)
           for part, path in given.items()}
    ready = {part: preprocess_file(kind.name, path, str(run_dir / f"clean_{part}.parquet"), options)
             for part, path in raw.items()}
    splits = split_dataset(ready, str(run_dir / "splits"), options["seed"], kind.stratify_column, kind.split)
    featurizer_dir = fit_tokenizer(kind.name, splits["train"], str(run_dir / "featurizer"), options)
    save_prepared(run_dir, splits, featurizer_dir)
    return splits, featurizer_dir


def _evaluate_and_register(kind_name: str, model_dir: str, splits: dict, run_dir: Path, run_id: str, uri: str,
                           options) -> State:
    """evaluate -> log to MLflow -> register behind the gate -> report; the flow's final state, whose data is
    the result (the CLI's JSON line)."""
    preprocessing = {part: preprocess_counts(path) for part in PARTS
                     if (path := run_dir / f"clean_{part}.parquet").exists()}  # texts: dropped / truncated
    data = log_trained_model(run_id, model_dir, splits, uri, preprocessing)
    evaluation = evaluate_model(kind_name, model_dir, splits["test"], str(run_dir / "evaluation"), options.device)
    evaluation["metrics"].update(compare_with_baselines(kind_name, splits, options_dict(options), evaluation["metrics"]))
    log_evaluation(run_id, evaluation, uri)
    metric = evaluation["gate_metric"]
    registered = register_model(run_id, model_dir, options.model_name, splits["test"], uri,
                                new_score=evaluation["metrics"][metric], gate_metric=metric, device=options.device,
                                metrics=evaluation["metrics"], data=data, home=options.home)
    (run_dir / "DONE").write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))
    result = {**registered, "metrics": evaluation["metrics"], "run_id": run_id, "tracking_uri": uri,
              "run_dir": str(run_dir), "files": {**evaluation["files"], **splits}, "preprocessing": preprocessing}
    return Completed(message=report_training(result), data=result)


def _start_run_dir(home: str | None, model_name: str, resume: bool, params: dict, inputs: dict[str, str]) -> Path:
    """A new run directory with the run's ``config.json``, or with ``resume`` the latest unfinished one, whose
    ``config.json`` must match these parameters."""
    config = run_config(params, inputs)
    run_dir = _run_dir(data_dir(home), model_name, resume)
    if resume:
        check_resume_config(run_dir, config)
    else:
        save_run_config(run_dir, config)
    return run_dir


def _run_dir(home: Path, model_name: str, resume: bool) -> Path:
    """A new run directory, or with ``resume`` the latest unfinished one of this model name."""
    runs = home / "runs" / model_name
    if resume:
        unfinished = sorted(p for p in runs.glob("*") if (p / "checkpoints" / "last.pt").exists() and not (p / "DONE").exists())
        if not unfinished:
            raise FileNotFoundError(f"--resume: no unfinished run of {model_name!r} with a checkpoint under {runs}")
        return unfinished[-1]
    path = runs / time.strftime("%Y%m%d-%H%M%S")
    while path.exists():
        path = path.with_name(path.name + "-1")
    path.mkdir(parents=True)
    return path


def _tags(run_dir: Path, kind_name: str) -> dict:
    return {"prefect_flow_run_id": str(runtime.flow_run.id or ""), "seqflow.task": kind_name, "run_dir": str(run_dir)}


# ---- one Prefect flow per kind, its parameters generated from the kind's options ------------------------
def flow_function_name(kind_name: str) -> str:
    """The module attribute holding a kind's flow: ``train-classifier`` -> ``train_classifier_flow``."""
    return get_kind(kind_name).flow_name.replace("-", "_") + "_flow"


@lru_cache(maxsize=None)
def training_flow(kind_name: str) -> Flow:
    """The Prefect flow training kind ``kind_name``: keyword parameters = the kind's options (typed, with
    defaults and a description each, from the options class)."""
    kind = get_kind(kind_name)
    fields = dataclasses.fields(kind.options)
    hints = option_types(kind.options)

    def run(**values) -> State:
        return train(kind_name, kind.options(**values))

    run.__signature__ = inspect.Signature(
        [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=hints[f.name],
                           default=inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default)
         for f in fields], return_annotation=State)
    run.__annotations__ = {**{f.name: hints[f.name] for f in fields}, "return": State}
    run.__name__ = run.__qualname__ = flow_function_name(kind_name)
    run.__doc__ = _docstring(kind.options.__doc__, fields)
    return flow(name=kind.flow_name, log_prints=True)(run)


def _docstring(summary: str, fields) -> str:
    """A Google-style docstring whose ``Args:`` section describes every option (Prefect shows them in the UI)."""
    args = "\n".join(f"    {f.name}: {' '.join(f.metadata.get('help', '').split())}" for f in fields)
    return f"{summary}\n\nArgs:\n{args}\n\nReturns a Completed state whose data is the result dict (the CLI's JSON line)."


def __getattr__(name: str) -> Flow:
    """``train_classifier_flow``, ``train_tagger_flow``...: each kind's flow, built on first use (it loads the kind)."""
    if name.endswith("_flow") and not name.startswith("_"):
        for kind_name in KINDS:
            if flow_function_name(kind_name) == name:
                return training_flow(kind_name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
