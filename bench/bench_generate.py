"""Character language model: training throughput against the tutorial's loop, validation nats/char, sampling.

Side by side in one script, on tiny-shakespeare (``../shared/datasets/tiny_shakespeare``, last 10 % as
validation, case kept):

- ``tutorial``: the TF2 text-generation tutorial's approach in PyTorch: 40-character windows every 3
  characters, one-hot input, an ``LSTMCell(256)`` stepped in a Python loop, one target (the next character)
  per window, batch 128, Adam. Target characters per second.
- ``seqflow``: ``CharLM`` (2-layer LSTM 256) through the shared ``Trainer``: every position predicts its
  next character, ``streams`` parallel contiguous streams, truncated back-propagation through time over
  ``seq_len`` characters with the state carried. Target characters per second, validation nats/char.
- ``sampling``: characters per second for 1, 8, 32 and 128 prefixes at once, state carried.

    .venv/bin/python -m bench.bench_generate [--seconds 60] [--threads 2] [--streams 64] [--seq-len 128]
    .venv/bin/python -m bench.bench_generate --model-dir RUN_DIR/model    # sampling speed of a saved model

JSON lines; the ``ratio`` line gives seqflow / tutorial target characters per second (target >= 20).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seqmodels.kinds.generate.model import CharLM, CharLMConfig
from seqmodels.kinds.generate.sampling import SamplingConfig, generate
from seqmodels.kinds.generate.stages import load_model_dir, stream_nats
from seqmodels.kinds.generate.streams import CharVocab, StreamLoader
from seqmodels.training import Trainer, TrainerConfig, seed_everything

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def emit(record: dict) -> dict:
    print(json.dumps(record), flush=True)
    return record


class TutorialLSTM(nn.Module):
    """One-hot window -> LSTMCell(256) stepped in Python -> the next character's logits."""

    def __init__(self, vocab_size: int, hidden: int = 256):
        super().__init__()
        self.vocab_size, self.cell, self.out = vocab_size, nn.LSTMCell(vocab_size, hidden), nn.Linear(hidden, vocab_size)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        onehot = nn.functional.one_hot(windows, self.vocab_size).float()  # (batch, 40, vocab)
        h = c = torch.zeros(windows.shape[0], self.cell.hidden_size)
        for t in range(windows.shape[1]):
            h, c = self.cell(onehot[:, t], (h, c))
        return self.out(h)


def tutorial(ids: np.ndarray, vocab_size: int, seconds: float) -> dict:
    """Target characters per second of the tutorial's training loop (one target per 40-character window)."""
    seed_everything(0)
    starts = np.arange(0, len(ids) - 41, 3)
    model, done = TutorialLSTM(vocab_size), 0
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    began = time.perf_counter()
    for batch in np.array_split(np.random.default_rng(0).permutation(starts), len(starts) // 128):
        windows = torch.from_numpy(np.stack([ids[s:s + 41] for s in batch]))  # (128, 41)
        loss = nn.functional.cross_entropy(model(windows[:, :40]), windows[:, 40])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        done += len(batch)
        if time.perf_counter() - began > seconds:
            break
    return {"bench": "tutorial", "target_chars_per_s": round(done / (time.perf_counter() - began), 1)}


class CharCounter:
    """Training characters and the time spent on them, batch to batch within an epoch (a trainer callback):
    validation, samples and the first batch of each epoch are left out, as the tutorial's loop has none."""

    def __init__(self):
        self.chars, self.seconds, self.last_seen, self.last_time = 0, 0.0, 0, None

    def on_batch_end(self, trainer, epoch, seen, loss) -> None:
        now = time.perf_counter()
        if self.last_time is not None and seen > self.last_seen:  # the same epoch: seen is its running count
            self.chars, self.seconds = self.chars + seen - self.last_seen, self.seconds + now - self.last_time
        self.last_seen, self.last_time = seen, now


def seqflow(train: np.ndarray, val: np.ndarray, vocab_size: int, args) -> tuple[dict, CharLM]:
    """Train CharLM for ``args.seconds``; target characters per second and validation nats/char."""
    seed_everything(0)
    model = CharLM(CharLMConfig(vocab_size=vocab_size, hidden_dim=256, num_layers=2))
    config = TrainerConfig(epochs=1000, lr=2e-3, patience=1000, time_budget_s=args.seconds, progress=False, device="cpu")
    counter, began = CharCounter(), time.perf_counter()
    trainer = Trainer(model, config, StreamLoader(train, args.streams, args.seq_len, shift=True),
                      StreamLoader(val, 1, 1024), callbacks=(counter,))
    trainer.fit()
    elapsed = time.perf_counter() - began
    val_nats = trainer.evaluate(StreamLoader(val, 1, 1024))["loss"]  # one stream: every character, state carried
    streams_nats = stream_nats(model.eval(), val, torch.device("cpu"))[0]  # what training validates with
    return {"bench": "seqflow", "target_chars_per_s": round(counter.chars / counter.seconds, 1),
            "seconds": round(elapsed, 1),
            "epochs_finished": len(trainer.result.history), "val_nats_per_char": round(val_nats, 4),
            "val_bits_per_char": round(val_nats / np.log(2), 4), "val_nats_per_char_16_streams": round(streams_nats, 4)}, model


def sampling(model: CharLM, vocab: CharVocab) -> list[dict]:
    """Characters per second for batches of prefixes, 300 characters each, state carried."""
    rows = []
    for batch in (1, 8, 32, 128):
        config = SamplingConfig(num_chars=300, temperature=0.8, seed=0)
        began = time.perf_counter()
        generate(model, [vocab.encode("ROMEO:\n").tolist()] * batch, config)
        elapsed = time.perf_counter() - began
        rows.append(emit({"bench": "sampling", "prefixes": batch, "chars_per_s": round(batch * 300 / elapsed, 1),
                          "chars_per_s_per_stream": round(300 / elapsed, 1)}))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--streams", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--text", default=str(DATA / "tiny_shakespeare" / "input.txt"))
    parser.add_argument("--model-dir", help="only measure sampling, with this saved model (e.g. a default run's)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.model_dir:
        model, vocab, _ = load_model_dir(args.model_dir, "cpu")
        sampling(model, vocab)
        return
    text = Path(args.text).read_text(encoding="utf-8")
    cut = int(len(text) * 0.9)
    vocab = CharVocab.fit(text[:cut])
    train, val = vocab.encode(text[:cut]), vocab.encode(text[cut:])
    base = emit(tutorial(train, len(vocab), args.seconds))
    ours, model = seqflow(train, val, len(vocab), args)
    emit(ours)
    emit({"bench": "ratio", "seqflow_over_tutorial": round(ours["target_chars_per_s"] / base["target_chars_per_s"], 1),
          "target": 20})
    sampling(model.eval(), vocab)


if __name__ == "__main__":
    main()
