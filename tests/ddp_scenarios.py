"""Trainer scenarios run by ``tests/test_distributed_trainer.py`` in 2 gloo processes under torchrun:

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_scenarios.py OUT_DIR

Each rank writes ``OUT_DIR/<scenario>-rank<N>.json``: how its training ended (stop reason, epochs, optimisation
steps, a digest of its final weights), so the test can check that every rank ended alike.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_training import make_model, toy_data  # noqa: E402

from seqmodels import distributed  # noqa: E402
from seqmodels.batching import BatchLoader  # noqa: E402
from seqmodels.training import (Trainer, TrainerConfig, TrainingStopped, clear_stop_request,  # noqa: E402
                                request_stop, resolve_device)


class SlowOrStopping(BatchLoader):
    """Rank 1's loader may sleep before each batch (it falls behind the time budget first) or ask for a stop at
    its ``stop_at``-th batch of epoch 2 (as a SIGTERM to that rank alone would)."""

    sleep_s: float = 0.0
    stop_at: int | None = None

    def __iter__(self):
        for i, batch in enumerate(super().__iter__()):
            if distributed.rank() == 1:
                time.sleep(self.sleep_s)
                if self.stop_at is not None and self.epoch == 2 and i == self.stop_at:
                    request_stop()
            yield batch


def run(name: str, out: Path, loader_settings: dict, **config) -> None:
    """Train the toy classifier with ``config``; write how it ended."""
    model = make_model()
    steps = [0]
    step = model.step

    def counted(batch):
        steps[0] += model.training  # training steps only (the ranks score unequal shares of validation)
        return step(batch)

    model.step = counted
    loader = SlowOrStopping(toy_data(200), 16, shuffle=True, seed=1)
    for key, value in loader_settings.items():
        setattr(loader, key, value)
    settings = {"epochs": 6, "lr": 1e-2, "batch_size": 16, "patience": 50, "progress": False, **config}
    trainer = Trainer(model, TrainerConfig(**settings), loader, BatchLoader(toy_data(48, seed=1), 16))
    try:
        result = trainer.fit()
        ended = {"stop_reason": result.stop_reason, "epochs": len(result.history), "best_epoch": result.best_epoch,
                 "val_loss": [r["val_loss"] for r in result.history]}
    except TrainingStopped:
        ended = {"stop_reason": "stopped", "epochs": len(trainer.result.history)}
    clear_stop_request()
    digest = hashlib.sha256(b"".join(t.detach().cpu().numpy().tobytes() for t in model.state_dict().values()))
    ended.update(steps=steps[0], weights=digest.hexdigest(), batches_per_epoch=len(trainer.train_loader))
    (out / f"{name}-rank{distributed.rank()}.json").write_text(json.dumps(ended))


def main() -> None:
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    distributed.start_process_group(resolve_device("cpu"))
    try:
        run("early_stopping", out, {}, lr=0.2, patience=1, epochs=30)
        run("time_budget", out, {"sleep_s": 0.05}, epochs=1000, time_budget_s=1.0)
        run("stop", out, {"stop_at": 3})
    finally:
        distributed.stop_process_group()


if __name__ == "__main__":
    main()
