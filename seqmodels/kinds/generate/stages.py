"""The generation kind's stages on files: a text file or table -> rows of text -> one character stream;
the character vocabulary; training with truncated BPTT through the shared trainer; nats per character."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from seqmodels.kinds.generate.model import CharLM, CharLMConfig
from seqmodels.kinds.generate.sampling import SamplingConfig, generate
from seqmodels.kinds.generate.streams import CharVocab, StreamLoader
from seqmodels.predict import load_model, read_history, save_history, save_model
from seqmodels.training import Callback, Trainer, TrainerConfig, seed_everything

TASK = "generate"
VOCAB_FILE = "chars.json"
# Validation reads the text as 16 contiguous streams, 1,024 characters a chunk, state carried within each:
# only 16 of the validation characters start from a zero state, and it runs ~16x faster than one stream.
EVAL_STREAMS, EVAL_CHUNK = 16, 1024
SAMPLE_TEMPERATURES = (0.5, 0.8, 1.0)


def read_stream(path: str | Path) -> str:
    """The rows of a canonical table joined into one stream, each row ending in a newline."""
    rows = pq.read_table(path, columns=["text"]).column("text").to_pylist()
    return "".join(f"{row or ''}\n" for row in rows)


def fit_vocab(train_path: str, out_dir: str) -> Path:
    """The character vocabulary of the training stream, as ``chars.json`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    CharVocab.fit(read_stream(train_path)).save(out / VOCAB_FILE)
    return out


class EpochSamples:
    """After every epoch, a sample at three temperatures into ``folder/epoch_NNN.txt``, listed in the epoch
    record's ``artifacts`` (a trainer callback, run before the tracking one)."""

    def __init__(self, folder: Path, vocab: CharVocab, prefix: str, num_chars: int = 300):
        self.folder, self.vocab, self.prefix, self.num_chars = folder, vocab, prefix, num_chars
        folder.mkdir(parents=True, exist_ok=True)

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        ids = self.vocab.encode(self.prefix).tolist()
        parts = []
        for temperature in SAMPLE_TEMPERATURES:
            config = SamplingConfig(num_chars=self.num_chars, temperature=temperature, seed=record["epoch"])
            (out,) = generate(trainer.model, [ids], config, device=trainer.device)
            parts.append(f"--- temperature {temperature} ---\n{self.prefix}{self.vocab.decode(out)}\n")
        path = self.folder / f"epoch_{record['epoch']:03d}.txt"
        path.write_text("".join(parts), encoding="utf-8")
        record.setdefault("artifacts", []).append(str(path))  # the tracking callback logs it as this epoch ends


def train_language_model(splits: dict[str, str], vocab_dir: str, run_dir: Path, model_config: CharLMConfig,
                         trainer_config: TrainerConfig, seq_len: int, resume: bool = False,
                         callbacks: tuple[Callback, ...] = ()) -> Path:
    """Train on the training stream, select on the validation stream; the model directory ``run_dir/model``."""
    vocab = CharVocab.load(Path(vocab_dir) / VOCAB_FILE)
    train_text, val_text = read_stream(splits["train"]), read_stream(splits["val"])
    seed_everything(trainer_config.seed)  # the same initial weights for the same seed, whatever ran before
    model = CharLM(replace(model_config, vocab_size=len(vocab)))
    model_dir = Path(run_dir) / "model"
    samples = EpochSamples(model_dir / "samples", vocab, prefix=val_text[: min(40, len(val_text))] or "\n")
    trainer = Trainer(model, trainer_config,
                      StreamLoader(vocab.encode(train_text), trainer_config.batch_size, seq_len, shift=True,
                                   seed=trainer_config.seed),
                      StreamLoader(vocab.encode(val_text), EVAL_STREAMS, EVAL_CHUNK),
                      checkpoint_dir=Path(run_dir) / "checkpoints", callbacks=(samples, *callbacks))
    if resume:
        trainer.resume()
    result = trainer.fit()
    save_model(model_dir, TASK, trainer.model)  # state_dict + config, and the character vocabulary beside them
    vocab.save(model_dir / VOCAB_FILE)
    save_history(model_dir, result, trainer_config.monitor)
    return model_dir


def load_model_dir(directory: str | Path, device: str = "auto") -> tuple[CharLM, CharVocab, torch.device]:
    """The model (eval mode, on ``device``) and vocabulary of a model directory; weights only."""
    model, target = load_model(directory, CharLMConfig, CharLM, device)
    return model.eval(), CharVocab.load(Path(directory) / VOCAB_FILE), target


@torch.no_grad()
def stream_nats(model: CharLM, ids: np.ndarray, device: torch.device) -> tuple[float, int]:
    """Mean nats per character over ``ids`` (state carried through each evaluation stream) and the count."""
    total, count = 0.0, 0
    for batch in StreamLoader(ids, EVAL_STREAMS, EVAL_CHUNK):
        out = model.step({k: v.to(device) for k, v in batch.items()})
        total, count = total + float(out["loss"]) * int(out["count"]), count + int(out["count"])
    return total / max(count, 1), count


def per_char_metrics(nats: float, prefix: str = "") -> dict[str, float]:
    """Nats per character as nats, bits and perplexity."""
    return {f"{prefix}nats_per_char": nats, f"{prefix}bits_per_char": nats / math.log(2),
            f"{prefix}perplexity": math.exp(min(nats, 50.0))}


def evaluate_language_model(model_dir: str, test_path: str, device: str = "auto") -> dict:
    """Test nats / bits per character and perplexity, and the best epoch's validation ones."""
    model, vocab, target = load_model_dir(model_dir, device)
    nats, count = stream_nats(model, vocab.encode(read_stream(test_path)), target)
    best_val = read_history(model_dir)["best_val_loss"]
    return {**per_char_metrics(nats), **per_char_metrics(best_val, "val_"), "num_test_chars": count}


def unigram_nats(test_path: str) -> float:
    """Nats per character of the best constant predictor of these rows: their own character frequencies."""
    text = read_stream(test_path)
    counts = np.unique(np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32), return_counts=True)[1]
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())
