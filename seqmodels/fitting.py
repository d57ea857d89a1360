"""Training any seqmodels model on encoded splits and saving it as a model directory (every task kind)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from seqmodels.batching import BatchLoader, SequenceData, TargetCollate, sequence_and_token_targets
from seqmodels.featurize import Featurizer
from seqmodels.predict import save_history, save_model_dir
from seqmodels.training import Callback, Trainer, TrainerConfig, TrainResult
from seqmodels.vocab import LabelMap


def fit_and_save(task: str, model: torch.nn.Module, featurizer: Featurizer, labels: LabelMap, train_data: SequenceData,
                 val_data: SequenceData, model_dir, checkpoint_dir, trainer_config: TrainerConfig, resume: bool = False,
                 callbacks: tuple[Callback, ...] = (), val_scorer: Callable | None = None,
                 eval_batch_size: int = 512, exact_length: bool = False,
                 targets: TargetCollate = sequence_and_token_targets) -> tuple[Path, TrainResult]:
    """Train with length-bucketed batches (``exact_length``: one length per batch; ``targets``: the kind's
    collate of targets), keep the best epoch, save ``model_dir`` (+ ``history.json``)."""
    pin = trainer_config.device != "cpu" and torch.cuda.is_available()
    loaders = {"pin_memory": pin, "exact_length": exact_length, "targets": targets}
    trainer = Trainer(model, trainer_config,
                      BatchLoader(train_data, trainer_config.batch_size, shuffle=True, seed=trainer_config.seed,
                                  **loaders),
                      BatchLoader(val_data, eval_batch_size, **loaders),
                      checkpoint_dir=checkpoint_dir,
                      callbacks=callbacks, val_scorer=val_scorer)
    if resume:
        trainer.resume()
    result = trainer.fit()
    save_model_dir(model_dir, task, trainer.model, featurizer, labels)
    save_history(model_dir, result, trainer_config.monitor)
    return Path(model_dir), result
