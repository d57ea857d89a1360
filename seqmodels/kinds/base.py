"""The interface every task kind implements, documented in one place.

A kind is one package under ``seqmodels/kinds/`` whose ``__init__`` exposes ``KIND``, an instance of a
:class:`TaskKind` subclass, and one line in :data:`seqmodels.kinds.KINDS`. Everything else (the trainer,
the Parquet stages, the registry and its gate, the pyfunc, the batch flow, the CLI and the Prefect
deployments) goes through this interface and never names a kind.

The pipeline calls a kind in this order, every stage reading and writing files:

``ingest`` (user file -> canonical Parquet table) -> ``preprocess`` (optional: clean / tokenise) -> the
shared split (stratified on ``stratify_column``) -> ``fit`` (vocabularies, label maps, on train) ->
``train`` (shared trainer; the kind's model, batches and validation scorer) -> ``evaluate`` (test report)
-> the gate (``gate_metric``, ``gate_score``, ``baseline_score``, ``higher_is_better``) -> registration
(pyfunc with ``input_columns`` / ``input_example``) -> nightly prediction (``load_predictor``; rows out
with ``output_types`` columns, summarised by ``prediction_counts``).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import pyarrow as pa

from seqmodels.distributed import LaunchConfig
from seqmodels.metrics import higher_is_better
from seqmodels.options import option, options_from
from seqmodels.training import Callback, TrainerConfig, epoch_count



@dataclass
class EvaluationReport:
    """A kind's test report: scalar ``metrics`` (the JSON line, MLflow ``test_*``), ``tables`` (CSV
    artifacts), and a ``confusion`` matrix over ``labels`` when the kind has one (a PNG artifact)."""

    metrics: dict[str, float]
    tables: dict[str, Any] = field(default_factory=dict)  # name -> pandas DataFrame
    confusion: Any = None  # (n_labels, n_labels) counts, true x predicted, or None
    labels: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class InputColumn:
    """One column of the pyfunc's input schema (``type``: ``string`` or ``list[string]``)."""

    name: str
    type: Literal["string", "list[string]"] = "string"
    required: bool = True


@dataclass(frozen=True)
class SplitPolicy:
    """The parts of the training file that become validation and test rows when those files are not given.

    ``contiguous``: the last rows, in order (a text stream); ``group_column``: a seeded split of that column's
    distinct values (no value of the test rows occurs in training); else a seeded shuffle (stratified on the
    kind's ``stratify_column``). ``test`` 0: without a test file the test rows are the validation rows."""

    val: float = 0.15
    test: float = 0.15
    contiguous: bool = False
    group_column: str | None = None  # rows sharing this column's value stay in one part (a seeded split)

    def help(self, part: str) -> str:
        """The option help's default clause for ``part`` (val / test)."""
        where = ("the end of the training file, in order" if self.contiguous else
                 f"a seeded split of the training file that keeps rows of the same {self.group_column} together"
                 if self.group_column else "a seeded split of the training file")
        if part == "test" and not self.test:
            return "default: the validation part"
        return f"default: {round(100 * getattr(self, part))}% of the rows, {where}"


@dataclass
class ExampleRun:
    """A tiny training run of a kind, from data it writes itself: what the contract test trains (one epoch)."""

    options: dict[str, Any]  # option values besides model_name / home / tracking: the train file, small sizes
    texts: list[str]  # lines of an inbox file to predict


class TaskKind(ABC):
    """One task kind: its options and defaults, its stages and how its models are judged and applied.

    Subclasses set the class attributes and implement the abstract methods; the defaults below suit a
    kind that needs no preprocessing step, no stratification and whose metrics are higher-is-better
    unless listed in :data:`seqmodels.metrics.LOWER_IS_BETTER`.
    """

    name: ClassVar[str]  # the registry key and ``seqflow train NAME``
    description: ClassVar[str]  # one line: CLI help, ``seqflow kinds``, the deployment's description
    flow_name: ClassVar[str]  # the Prefect flow and training deployment name
    options: ClassVar[type]  # the flat options dataclass (see :mod:`seqmodels.options`)
    trainer_defaults: ClassVar[TrainerConfig]  # the kind's optimisation defaults
    stratify_column: ClassVar[str | None] = None  # the shared split keeps this column's proportions
    split: ClassVar[SplitPolicy] = SplitPolicy()  # how val / test are cut from train when not given
    input_columns: ClassVar[tuple[InputColumn, ...]] = (InputColumn("text"),)
    input_example: ClassVar[dict[str, list]]  # pyfunc input example, column -> values
    predict_params: ClassVar[dict[str, Any]] = {}  # pyfunc inference parameters and their defaults (params=...)
    output_types: ClassVar[dict[str, pa.DataType]]  # prediction columns of the batch flow's Parquet
    pyfunc_columns: ClassVar[tuple[str, ...] | None] = None  # the pyfunc's output columns; None: output_types

    # ---- configuration ------------------------------------------------------------------------
    @abstractmethod
    def model_config(self, options) -> Any:
        """The model config dataclass (``to_dict`` / ``from_dict``) for these options."""

    def trainer_config(self, options) -> TrainerConfig:
        """The kind's trainer defaults with the run options (epochs at least 1; the budget in seconds)."""
        budget = options.time_budget_minutes
        return dataclasses.replace(self.trainer_defaults, epochs=epoch_count(options.epochs),
                                   batch_size=options.batch_size, lr=options.lr, patience=options.patience,
                                   min_steps=options.min_steps, max_epoch_steps=options.max_epoch_steps,
                                   lr_schedule=options.lr_schedule,
                                   device=options.device, seed=options.seed,
                                   time_budget_s=budget * 60 if budget else None)

    @abstractmethod
    def run_params(self, options) -> dict[str, Any]:
        """The data and preprocessing options recorded as run parameters (MLflow, ``config.json``)."""

    # ---- stages on files --------------------------------------------------------------------------
    @abstractmethod
    def ingest(self, path: str, out_path: str, options) -> Path:
        """Read a user's file into the kind's canonical Parquet table (a ``text`` column and a ``source``)."""

    def preprocess(self, raw_path: str, out_path: str, options) -> str:
        """Clean / tokenise the canonical table into ``out_path``; the default keeps the table as it is
        (returns ``raw_path``, writing nothing)."""
        return raw_path

    @abstractmethod
    def fit(self, train_path: str, out_dir: str, options) -> Path:
        """Fit the preprocessing (vocabularies, label maps) on the training split; JSON files in ``out_dir``."""

    @abstractmethod
    def train(self, splits: dict[str, str], featurizer_dir: str, run_dir: Path, model_config, trainer_config: TrainerConfig,
              options, resume: bool = False, callbacks: tuple[Callback, ...] = ()) -> Path:
        """Train on ``splits["train"]``, select on ``splits["val"]``; the model directory (``run_dir/model``,
        with ``history.json``), checkpoints in ``run_dir/checkpoints``."""

    @abstractmethod
    def evaluate(self, model_dir: str, test_path: str, device: str = "auto") -> EvaluationReport:
        """Predict the test split as a registry consumer would and score it."""

    def baselines(self, splits: dict[str, str], options) -> dict[str, float]:
        """Reference models fitted on the same split, as ``baseline_<metric>`` test metrics beside the
        model's ``<metric>`` (the run reports whether the model beats them); none by default."""
        return {}

    # ---- the gate -----------------------------------------------------------------------------------
    @abstractmethod
    def gate_metric(self, metrics: dict[str, float]) -> str:
        """The metric (a key of ``metrics``) the promotion gate compares."""

    @abstractmethod
    def gate_score(self, model_dir: str, test_path: str, device: str, metric: str) -> float:
        """``metric`` of any saved model of this kind on ``test_path`` (rows neither model trained on)."""

    @abstractmethod
    def baseline_score(self, test_path: str, metric: str) -> float:
        """``metric`` of the best constant predictor on these rows: a model must beat it to be promoted."""

    baseline_name = "always predicting the majority class"  # what baseline_score scores, for the gate's reason

    def higher_is_better(self, metric: str) -> bool:
        """Whether a larger ``metric`` is the better model."""
        return higher_is_better(metric)

    # ---- applying a model -------------------------------------------------------------------------
    @abstractmethod
    def load_predictor(self, model_dir: str | Path, device: str = "auto"):
        """A predictor: ``predict_texts(texts, batch_size)`` and ``predict_frame(frame)`` return one row of
        ``output_types`` columns (and optionally ``reason``) per input."""

    def prediction_counts(self, table: pa.Table) -> dict[str, int]:
        """A summary of a file's predictions for the batch report (e.g. rows per label); none by default."""
        return {}

    # ---- the contract test --------------------------------------------------------------------------
    @abstractmethod
    def example_run(self, folder: Path) -> ExampleRun:
        """Write a tiny data set into ``folder``; the options that train on it in seconds (one epoch)."""


def run_options(trainer: TrainerConfig, data_help: str, split: SplitPolicy, split_help: str = "") -> list[tuple]:
    """The options every kind's training run takes: data files, naming, run control (with the kind's
    trainer defaults and its split policy; ``split_help`` adds to the val / test help)."""
    extra = f", {split_help}" if split_help else ""
    return [
        ("train", str, option(help=f"training file ({data_help})", metavar="FILE", group="data")),
        ("model_name", str, option(help="registered model name in MLflow", group="data")),
        ("val", str | None, option(None, f"validation file; {split.help('val')}{extra}", metavar="FILE",
                                   group="data")),
        ("test", str | None, option(None, f"test file; {split.help('test')}{extra}", metavar="FILE",
                                    group="data")),
        ("epochs", int, option(trainer.epochs, "maximum epochs, at least 1", parse=epoch_count, group="run")),
        ("time_budget_minutes", float | None, option(
            None, "stop training in time to stay within MINUTES, keeping the best checkpoint", flag="time-budget",
            metavar="MINUTES", group="run")),
        ("device", Literal["auto", "cpu", "cuda"], option(
            trainer.device, "auto: CUDA with mixed precision when a GPU is present, else CPU", group="run")),
        ("seed", int, option(trainer.seed, "seed of split, init and batches", group="run")),
        *options_from(LaunchConfig(), ["nproc"], "run"),
    ]


def optimiser_options(trainer: TrainerConfig, batch_help: str = "examples per batch",
                      patience_help: str = "early-stopping patience in epochs") -> list[tuple]:
    """Batch size, learning rate and patience with the kind's defaults."""
    return [
        ("batch_size", int, option(trainer.batch_size, batch_help, group="training options")),
        ("lr", float, option(trainer.lr, "Adam learning rate", group="training options")),
        ("patience", int, option(trainer.patience, patience_help, group="training options")),
        ("min_steps", int, option(trainer.min_steps, "optimisation steps before early stopping may stop training "
                                                     "(small training sets then get more epochs)",
                                  group="training options")),
        *options_from(trainer, ["max_epoch_steps", "lr_schedule"], "training options"),
    ]


def tracking_options() -> list[tuple]:
    """Resume and where runs and the MLflow store live."""
    return [
        ("resume", bool, option(False, "continue the latest unfinished run of model_name from its checkpoint",
                                group="run")),
        ("tracking_uri_override", str | None, option(
            None, "MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite in the data dir)",
            flag="tracking-uri", group="tracking")),
        ("home", str | None, option(
            None, "where runs, Parquet files and the MLflow store go (default: $SEQFLOW_HOME or ./seqflow_data)",
            flag="data-dir", group="tracking")),
    ]
