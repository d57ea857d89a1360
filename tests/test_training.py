"""The trainer: it can overfit a tiny batch, resume exactly from a checkpoint, and respect a time budget
(checked with a clock that moves per training step, never against wall time)."""

import numpy as np
import pytest
import torch

from seqmodels.batching import BatchLoader, SequenceData, bucketed_batches, pad_batch
from seqmodels.kinds.classify.model import ClassifierConfig, RNNClassifier
from seqmodels.models.encoder import EncoderConfig
from seqmodels.training import Trainer, TrainerConfig, seed_everything


def toy_data(n=64, seed=0) -> SequenceData:
    """Class = whether token 2 or token 3 appears; lengths 1..6."""
    rng = np.random.default_rng(seed)
    seqs, targets = [], []
    for _ in range(n):
        label = int(rng.integers(2))
        seq = list(rng.integers(4, 20, size=int(rng.integers(0, 6))))
        seq.insert(int(rng.integers(len(seq) + 1)), 2 + label)
        seqs.append(seq)
        targets.append(label)
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in seqs])])
    return SequenceData(np.concatenate(seqs).astype(np.int64), offsets, np.array(targets, dtype=np.int64))


def make_model(seed=0) -> RNNClassifier:
    seed_everything(seed)
    encoder = EncoderConfig(vocab_size=20, embedding_dim=16, hidden_dim=16)
    return RNNClassifier(ClassifierConfig(encoder=encoder, num_classes=2, head_hidden_dim=16, head_dropout=0.0))


def make_trainer(model, tmp_path=None, **overrides) -> Trainer:
    config = TrainerConfig(**{"epochs": 4, "lr": 1e-2, "batch_size": 16, "patience": 50, "progress": False, **overrides})
    data = toy_data()
    return Trainer(model, config, BatchLoader(data, 16, shuffle=True, seed=1), BatchLoader(toy_data(32, seed=1), 32),
                   checkpoint_dir=tmp_path)


def test_padding_and_buckets():
    data = toy_data(10)
    tokens, lengths = pad_batch(data, np.array([0, 3]))
    assert tokens.shape == (2, int(lengths.max()))
    assert tokens[0, : lengths[0]].tolist() == data.ids[data.offsets[0] : data.offsets[1]].tolist()
    batches = bucketed_batches(np.array([5, 1, 4, 2, 3, 6]), batch_size=2, shuffle=True, seed=0)
    assert sorted(np.concatenate(batches).tolist()) == list(range(6))


def test_overfits_a_tiny_batch():
    trainer = make_trainer(make_model(), epochs=40)
    trainer.train_loader = trainer.val_loader = BatchLoader(toy_data(16), 16)
    trainer.fit()
    scores = trainer.evaluate(trainer.val_loader)
    assert scores["accuracy"] == 1.0 and scores["loss"] < 0.05


def test_resume_continues_exactly(tmp_path):
    straight = make_trainer(make_model(), tmp_path / "a", epochs=4)
    straight.fit()
    interrupted = make_trainer(make_model(), tmp_path / "b", epochs=2)
    interrupted.fit()
    resumed = make_trainer(make_model(seed=99), tmp_path / "b", epochs=4)
    assert resumed.resume() and resumed.start_epoch == 3
    resumed.fit()
    assert [r["val_loss"] for r in resumed.result.history] == pytest.approx([r["val_loss"] for r in straight.result.history])
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value)
    assert (tmp_path / "b" / "best.pt").exists() and (tmp_path / "b" / "last.pt").exists()


class StepClock:
    """A stand-in for ``time`` in the trainer whose clock moves only when the model takes a step, so the
    time budget is tested on behaviour (which epochs run) rather than on this machine's speed."""

    def __init__(self, seconds_per_step: float):
        self.now, self.seconds_per_step = 0.0, seconds_per_step

    def monotonic(self) -> float:
        return self.now

    def tick(self) -> None:
        self.now += self.seconds_per_step


def clocked_trainer(monkeypatch, tmp_path, seconds_per_step: float, **overrides) -> tuple[Trainer, StepClock]:
    """A trainer on toy data (4 training batches + 1 validation batch per epoch) timed by a :class:`StepClock`."""
    import seqmodels.training as training

    clock = StepClock(seconds_per_step)
    monkeypatch.setattr(training, "time", clock)
    trainer = make_trainer(make_model(), tmp_path, **overrides)
    step = trainer.model.step

    def timed_step(batch):
        clock.tick()
        return step(batch)

    trainer.model.step = timed_step
    return trainer, clock


def test_time_budget_skips_an_epoch_that_would_overrun_and_keeps_the_best(monkeypatch, tmp_path):
    # 5 steps of 0.1 s = 0.5 s per epoch: epochs 1 and 2 fit a 1.2 s budget, a third (to 1.5 s) would not
    trainer, clock = clocked_trainer(monkeypatch, tmp_path, 0.1, epochs=1000, time_budget_s=1.2)
    result = trainer.fit()
    assert result.stop_reason == "time_budget"
    assert [r["epoch"] for r in result.history] == [1, 2]
    assert result.best_epoch in (1, 2) and (tmp_path / "best.pt").exists()
    assert result.train_time_s == pytest.approx(clock.now) and clock.now == pytest.approx(1.0)


def test_time_budget_stops_inside_an_epoch_that_runs_past_the_deadline(monkeypatch, tmp_path):
    # 1 s per step: the first epoch passes the 2.5 s budget after its third batch; no epoch is recorded
    trainer, clock = clocked_trainer(monkeypatch, tmp_path, 1.0, epochs=5, time_budget_s=2.5)
    result = trainer.fit()
    assert result.stop_reason == "time_budget" and result.history == [] and result.best_epoch == 0
    assert clock.now == pytest.approx(3.0)


def training_lrs(trainer: Trainer) -> list[float]:
    """The learning rate of every training step ``trainer`` takes (filled as it trains)."""
    lrs, step = [], trainer.model.step

    def recording(batch):
        if trainer.model.training:
            lrs.append(trainer.optimizer.param_groups[0]["lr"] / trainer.config.lr)
        return step(batch)

    trainer.model.step = recording
    return lrs


def test_linear_lr_schedule_falls_to_zero_over_the_epochs(tmp_path):
    trainer = make_trainer(make_model(), tmp_path, epochs=4, lr_schedule="linear", lr_patience=50)
    lrs = training_lrs(trainer)
    trainer.fit()
    assert lrs == pytest.approx([1 - k / 16 for k in range(16)])  # 4 epochs x 4 steps
    assert [r["lr"] for r in trainer.result.history] == pytest.approx([1e-2 * (1 - k / 16) for k in (3, 7, 11, 15)])


def test_linear_lr_schedule_cuts_its_peak_when_the_metric_stalls_and_resumes_with_it(tmp_path):
    """lr_patience 0: the epoch-3 validation loss (worse than epoch 2's) halves the line from epoch 4 on; the
    cut line is in the checkpoint, so a resumed run goes on under it."""
    def scripted(trainer, losses):
        trainer.evaluate = lambda loader: {"loss": losses.pop(0) if losses else 0.5}

    trainer = make_trainer(make_model(), tmp_path, epochs=4, lr_schedule="linear", lr_patience=0, lr_factor=0.5)
    scripted(trainer, [1.0, 0.9, 0.95, 0.8])
    lrs = training_lrs(trainer)
    trainer.fit()
    assert lrs == pytest.approx([1 - k / 16 for k in range(12)] + [0.5 * (1 - k / 16) for k in range(12, 16)])
    assert trainer.result.history[2]["lr"] == pytest.approx(1e-2 * 0.5 * (1 - 11 / 16))

    resumed = make_trainer(make_model(), tmp_path, epochs=5, lr_schedule="linear", lr_patience=0, lr_factor=0.5)
    scripted(resumed, [0.4])
    assert resumed.resume()
    lrs = training_lrs(resumed)
    resumed.fit()
    assert lrs == pytest.approx([0.5 * (1 - k / 20) for k in range(16, 20)])  # epoch 5 of 5, under the cut peak


def test_linear_lr_schedule_follows_the_time_budget_when_it_ends_first(monkeypatch, tmp_path):
    # 5 s an epoch (4 training steps + 1 validation step of 1 s) in a 20 s budget of 1,000 epochs: epoch 1 knows
    # no epoch time yet (steps' progress only: ~0); epoch e > 1 starts at (e - 1) / 4 of the budget, each step 1/16
    trainer, clock = clocked_trainer(monkeypatch, tmp_path, 1.0, epochs=1000, time_budget_s=20, lr_schedule="linear")
    lrs = training_lrs(trainer)
    result = trainer.fit()
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4] and result.stop_reason == "time_budget"
    assert lrs[:4] == pytest.approx([1 - k / 4000 for k in range(4)])
    assert lrs[4:] == pytest.approx([1 - k / 16 for k in range(4, 16)])


def test_early_stopping_restores_the_best_epoch(tmp_path):
    trainer = make_trainer(make_model(), tmp_path, epochs=60, patience=2, lr=0.05)
    result = trainer.fit()
    best = min(result.history, key=lambda r: r["val_loss"])
    assert result.best_epoch == best["epoch"]
    loss = trainer.evaluate(trainer.val_loader)["loss"]
    assert loss == pytest.approx(best["val_loss"], rel=1e-5)


def test_weight_averaging_validates_and_keeps_the_averaged_weights():
    from seqmodels.training import Trainer, TrainerConfig

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    x, y = torch.randn(64, 3), torch.randn(64, 1)

    def step(batch):
        loss = torch.nn.functional.mse_loss(model(batch["x"]), batch["y"])
        return {"loss": loss, "count": torch.tensor(len(batch["x"]))}

    model.step = step
    batches = [{"x": x[i:i + 8], "y": y[i:i + 8]} for i in range(0, 64, 8)]
    seen = []

    def scorer(m):  # validation runs on the averaged weights, not the trained ones
        assert torch.equal(m.weight, trainer.average[0])
        seen.append(m.weight.detach().clone())
        return {"val_w": float(len(seen) == 2)}  # epoch 2 scores best

    trainer = Trainer(model, TrainerConfig(epochs=3, lr=0.1, ema_decay=0.9, patience=5, progress=False, monitor="val_w"),
                      batches, batches, val_scorer=scorer)
    raw = []
    trainer.callbacks.append(type("Raw", (), {"on_epoch_end": lambda self, t, r: raw.append(model.weight.detach().clone())})())
    trainer.fit()
    assert len(seen) == 3 and not torch.allclose(seen[2], raw[2])  # the average lags the trained weights
    assert torch.allclose(model.weight, seen[1])  # the best epoch's averaged weights are kept


@pytest.fixture
def stop_request_cleared():
    """A stop request is process-wide: clear it after the test."""
    from seqmodels.training import clear_stop_request

    clear_stop_request()
    yield
    clear_stop_request()


def counting_steps(model, on_step) -> list:
    """Wrap ``model.step`` so every training step is counted and ``on_step(count)`` runs after it."""
    steps, step = [], model.step

    def counted(batch):
        out = step(batch)
        if model.training:
            steps.append(len(steps) + 1)
            on_step(len(steps))
        return out

    model.step = counted
    return steps


def test_a_stop_request_ends_training_at_the_next_batch(tmp_path, stop_request_cleared):
    from seqmodels.training import TrainingStopped, request_stop

    model = make_model()
    steps = counting_steps(model, lambda n: request_stop() if n == 3 else None)
    trainer = make_trainer(model, tmp_path, epochs=1000)
    with pytest.raises(TrainingStopped, match="stop"):
        trainer.fit()
    assert len(steps) == 3 and not trainer.result.history  # no batch after the request, no epoch finished


def test_a_stop_request_from_another_thread_ends_training_in_a_worker_thread(stop_request_cleared):
    """Prefect may run a sync task in a worker thread: the signal handler (main thread) must still stop it."""
    import threading

    from seqmodels.training import TrainingStopped, request_stop

    model = make_model()
    training_started = threading.Event()
    steps = counting_steps(model, lambda n: training_started.set())
    trainer, outcome = make_trainer(model, epochs=10**6), []

    def train() -> None:
        try:
            trainer.fit()
        except TrainingStopped as stopped:
            outcome.append(stopped)

    worker = threading.Thread(target=train, daemon=True)
    worker.start()
    assert training_started.wait(timeout=120)
    request_stop()
    worker.join(timeout=120)  # a guard against a hang, not a timing assertion
    assert not worker.is_alive() and len(outcome) == 1 and len(steps) < 10**6


def test_evaluation_sums_whatever_counts_the_step_returns():
    """A step's extra outputs are counts over ``count``: the trainer reports each as a mean, names unchanged."""
    model = torch.nn.Linear(1, 1)
    model.step = lambda batch: {"loss": batch["n"].float(), "count": batch["n"], "hits": batch["n"] - 1,
                                "spans": torch.tensor(2)}
    batches = [{"n": torch.tensor(2)}, {"n": torch.tensor(4)}]
    trainer = Trainer(model, TrainerConfig(progress=False), batches, batches)
    scores = trainer.evaluate(batches)
    assert scores == {"loss": pytest.approx((2 * 2 + 4 * 4) / 6), "hits": pytest.approx(4 / 6),
                      "spans": pytest.approx(4 / 6)}


def test_batch_and_epoch_callbacks_fire_and_an_epoch_only_callback_is_enough():
    events = []

    class Both:
        def on_batch_end(self, trainer, epoch, seen, loss):
            events.append(("batch", epoch, seen))

        def on_epoch_end(self, trainer, record):
            events.append(("epoch", record["epoch"]))

    class EpochOnly:
        def on_epoch_end(self, trainer, record):
            events.append(("epoch-only", record["epoch"]))

    trainer = make_trainer(make_model(), epochs=2)
    trainer.callbacks = [Both(), EpochOnly()]
    trainer.fit()
    batches = len(trainer.train_loader)
    assert [e for e in events if e[0] == "batch" and e[1] == 1][-1] == ("batch", 1, 64)
    assert len([e for e in events if e[0] == "batch"]) == 2 * batches
    assert ("epoch", 2) in events and ("epoch-only", 2) in events


def test_min_steps_keeps_early_stopping_waiting_on_a_small_training_set():
    # lr 0: validation never improves after epoch 1, so patience 1 alone stops at epoch 2; 4 batches an epoch
    stopped = make_trainer(make_model(), epochs=20, patience=1, lr=0.0).fit()
    assert stopped.stop_reason == "early_stopping" and len(stopped.history) == 2
    waited = make_trainer(make_model(), epochs=20, patience=1, lr=0.0, min_steps=30).fit()
    assert waited.stop_reason == "early_stopping" and len(waited.history) == 8  # 8 epochs x 4 steps >= 30
    assert waited.best_epoch == 1


def batch_rows(loader: BatchLoader, epochs: int) -> list[tuple]:
    """The rows of every batch ``loader`` gives over ``epochs`` passes (set_epoch 1, 2, ...), in order."""
    rows = []
    for epoch in range(1, epochs + 1):
        loader.set_epoch(epoch)
        rows += [tuple(b["index"].tolist()) for b in loader]
    return rows


def recorded_batches(trainer: Trainer) -> list[tuple]:
    """Wrap the trainer's model so that each training step records its batch as ``batch_rows`` does."""
    seen, step = [], trainer.model.step

    def recording(batch):
        if trainer.model.training:
            seen.append(tuple(batch["index"].tolist()))
        return step(batch)

    trainer.model.step = recording
    return seen


def test_max_epoch_steps_cuts_passes_into_shorter_epochs_that_continue_where_the_last_stopped(tmp_path):
    # 64 rows in batches of 16: 4 steps a pass; epochs of 3 steps run through the passes in order
    trainer = make_trainer(make_model(), tmp_path / "a", epochs=5, max_epoch_steps=3)
    seen = recorded_batches(trainer)
    result = trainer.fit()
    assert trainer.epoch_steps == 3 and len(result.history) == 5
    assert seen == batch_rows(BatchLoader(toy_data(), 16, shuffle=True, seed=1), 4)[:15]
    assert make_trainer(make_model(), max_epoch_steps=100).epoch_steps == 4  # never longer than a pass
    interrupted = make_trainer(make_model(), tmp_path / "b", epochs=2, max_epoch_steps=3)
    interrupted.fit()
    resumed = make_trainer(make_model(seed=99), tmp_path / "b", epochs=5, max_epoch_steps=3)
    again = recorded_batches(resumed)
    assert resumed.resume() and resumed.start_epoch == 3
    resumed.fit()
    assert again == seen[6:]  # epoch 3 starts in the middle of pass 2
    assert [r["val_loss"] for r in resumed.result.history] == pytest.approx([r["val_loss"] for r in result.history])
