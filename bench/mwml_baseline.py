"""Seed baseline: the Made-With-ML "Recurrent Neural Networks" lesson pipeline, reproduced as published.

This is what our benchmarks compare against, so it keeps the lesson's slow parts on purpose: a per-row
regex preprocess that rebuilds the stopword pattern on every call, a Python-loop tokenizer, an
``np.array(batch, dtype=object)`` collate, a bidirectional GRU run over the padded batch (no packing)
and a Python loop that gathers each row's last relevant hidden state.

Deviations from the lesson, all needed to compare with our numbers or to run here:

* the split is ours (``seqmodels.split.stratified_split``, seed 42) instead of two sklearn
  ``train_test_split`` calls on a shuffled frame;
* the stopwords come from ``seqmodels/data/english_stopwords.txt`` (NLTK's English list; no download);
* ``NUM_EPOCHS`` defaults to 30 (the lesson uses 50; early stopping ends both near 25);
* ``collate_fn`` builds ``np.array(batch, dtype=object)`` (NumPy >= 1.24 refuses ragged arrays without it),
  ``DataLoader`` is built without ``pin_memory`` (CPU only) and ``softmax`` gets ``dim=1``
  (the same result as the lesson's implicit dim on 2-D logits).

Kept as published, quirks included: ``Tokenizer(num_tokens=5000)``; class weights ``1 / count``;
``DataLoader(shuffle=False)`` for every split; the trainer's ``best_model = self.model`` keeps a
reference, not a copy, so the test split is scored with the model of the last epoch run.

Run: ``python -m bench.mwml_baseline [--epochs N] [--data PATH] [--threads N]``; JSON lines on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, f1_score

from seqmodels.split import SplitConfig, stratified_split

log = logging.getLogger("bench.mwml_baseline")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = "../shared/datasets/ag_news_titles_10k/news.csv"
STOPWORDS_FILE = REPO_ROOT / "seqmodels" / "data" / "english_stopwords.txt"

# Lesson hyperparameters.
SEED = 1234
NUM_TOKENS = 5000
BATCH_SIZE = 64
EMBEDDING_DIM = 100
RNN_HIDDEN_DIM = 128
HIDDEN_DIM = 100
DROPOUT_P = 0.1
LEARNING_RATE = 1e-4
PATIENCE = 10
NUM_EPOCHS = 30


def _load_stopwords(path: Path = STOPWORDS_FILE) -> list[str]:
    """NLTK's English stopword list, one word a line, in file order."""
    return [w.strip() for w in path.read_text(encoding="utf-8").splitlines() if w.strip()]


STOPWORDS = _load_stopwords()


def set_seeds(seed: int = SEED) -> None:
    """Set seeds for reproducibility (as the lesson)."""
    np.random.seed(seed)
    random.seed(seed)
    torch.manual_seed(seed)


def preprocess(text: str, stopwords: Sequence[str] = STOPWORDS) -> str:
    """The lesson's per-row cleaning: lower, drop stopwords and (...) groups, keep alphanumerics."""
    text = text.lower()
    pattern = re.compile(r"\b(" + r"|".join(stopwords) + r")\b\s*")  # rebuilt per call, as published
    text = pattern.sub("", text)
    text = re.sub(r"\([^)]*\)", "", text)
    text = re.sub(r"([-;;.,!?<=>])", r" \1 ", text)
    text = re.sub("[^A-Za-z0-9]+", " ", text)
    text = re.sub(" +", " ", text)
    return text.strip()


class LabelEncoder:
    """The lesson's label encoder: sorted unique classes to indices."""

    def __init__(self, class_to_index: dict[str, int] | None = None) -> None:
        self.class_to_index = class_to_index or {}
        self.index_to_class = {v: k for k, v in self.class_to_index.items()}
        self.classes = list(self.class_to_index.keys())

    def __len__(self) -> int:
        return len(self.class_to_index)

    def fit(self, y: Sequence[str]) -> LabelEncoder:
        """Index the sorted unique labels."""
        for i, class_ in enumerate(np.unique(y)):
            self.class_to_index[class_] = i
        self.index_to_class = {v: k for k, v in self.class_to_index.items()}
        self.classes = list(self.class_to_index.keys())
        return self

    def encode(self, y: Sequence[str]) -> np.ndarray:
        """Labels to indices, one Python step per row."""
        encoded = np.zeros((len(y)), dtype=int)
        for i, item in enumerate(y):
            encoded[i] = self.class_to_index[item]
        return encoded

    def decode(self, y: Sequence[int]) -> list[str]:
        """Indices back to labels."""
        return [self.index_to_class[item] for item in y]


class Tokenizer:
    """The lesson's word (or char) tokenizer: Counter vocabulary, index 0 = <PAD>, 1 = <UNK>."""

    def __init__(self, char_level: bool, num_tokens: int | None = None, pad_token: str = "<PAD>",
                 oov_token: str = "<UNK>", token_to_index: dict[str, int] | None = None) -> None:
        self.char_level = char_level
        self.separator = "" if self.char_level else " "
        if num_tokens:
            num_tokens -= 2  # pad + unk tokens
        self.num_tokens = num_tokens
        self.pad_token = pad_token
        self.oov_token = oov_token
        self.token_to_index = token_to_index or {pad_token: 0, oov_token: 1}
        self.index_to_token = {v: k for k, v in self.token_to_index.items()}

    def __len__(self) -> int:
        return len(self.token_to_index)

    def fit_on_texts(self, texts: Sequence[str]) -> Tokenizer:
        """Keep the ``num_tokens`` most common tokens of ``texts``."""
        split = texts if self.char_level else [text.split(" ") for text in texts]
        all_tokens = [token for text in split for token in text]
        counts = Counter(all_tokens).most_common(self.num_tokens)
        self.min_token_freq = counts[-1][1]
        for token, _count in counts:
            index = len(self)
            self.token_to_index[token] = index
            self.index_to_token[index] = token
        return self

    def texts_to_sequences(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Texts to index arrays, one Python step per token."""
        sequences = []
        for text in texts:
            tokens = text if self.char_level else text.split(" ")
            sequence = []
            for token in tokens:
                sequence.append(self.token_to_index.get(token, self.token_to_index[self.oov_token]))
            sequences.append(np.asarray(sequence))
        return sequences


def pad_sequences(sequences: Sequence[np.ndarray], max_seq_len: int = 0) -> np.ndarray:
    """Pad sequences with zeros to the longest one (float array, as the lesson)."""
    max_seq_len = max(max_seq_len, max(len(sequence) for sequence in sequences))
    padded_sequences = np.zeros((len(sequences), max_seq_len))
    for i, sequence in enumerate(sequences):
        padded_sequences[i][: len(sequence)] = sequence
    return padded_sequences


class Dataset(torch.utils.data.Dataset):
    """The lesson's dataset: items are ``[X, len(X), y]``, batches are collated through NumPy."""

    def __init__(self, X: Sequence[np.ndarray], y: np.ndarray) -> None:
        self.X = X
        self.y = y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> list[Any]:
        X = self.X[index]
        return [X, len(X), self.y[index]]

    def collate_fn(self, batch: list[list[Any]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Object array → columns → padded LongTensors."""
        batch = np.array(batch, dtype=object)
        X, seq_lens, y = batch[:, 0], batch[:, 1], batch[:, 2]
        X = pad_sequences(sequences=X)
        return (torch.LongTensor(X.astype(np.int32)), torch.LongTensor(seq_lens.astype(np.int32)),
                torch.LongTensor(y.astype(np.int32)))

    def create_dataloader(self, batch_size: int, shuffle: bool = False,
                          drop_last: bool = False) -> torch.utils.data.DataLoader:
        """A DataLoader over this dataset with the lesson's collate (unshuffled by default)."""
        return torch.utils.data.DataLoader(dataset=self, batch_size=batch_size, collate_fn=self.collate_fn,
                                           shuffle=shuffle, drop_last=drop_last)


def gather_last_relevant_hidden(hiddens: torch.Tensor, seq_lens: torch.Tensor) -> torch.Tensor:
    """Each row's hidden state at position ``seq_len - 1``, gathered in a Python loop."""
    seq_lens = seq_lens.long().detach().cpu().numpy() - 1
    out = []
    for batch_index, column_index in enumerate(seq_lens):
        out.append(hiddens[batch_index, column_index])
    return torch.stack(out)


class GRU(nn.Module):
    """The lesson's gated model: embedding → BiGRU on the padded batch → last hidden → fc1 → dropout → fc2."""

    def __init__(self, embedding_dim: int, vocab_size: int, rnn_hidden_dim: int, hidden_dim: int,
                 dropout_p: float, num_classes: int, padding_idx: int = 0) -> None:
        super().__init__()
        self.embeddings = nn.Embedding(embedding_dim=embedding_dim, num_embeddings=vocab_size,
                                       padding_idx=padding_idx)
        self.rnn = nn.GRU(embedding_dim, rnn_hidden_dim, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout_p)
        self.fc1 = nn.Linear(rnn_hidden_dim * 2, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, num_classes)

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Logits for ``inputs = [x_in, seq_lens]``."""
        x_in, seq_lens = inputs
        out, _h_n = self.rnn(self.embeddings(x_in))
        z = gather_last_relevant_hidden(hiddens=out, seq_lens=seq_lens)
        return self.fc2(self.dropout(self.fc1(z)))


RNN = GRU  # the brief's name for the lesson's bidirectional-GRU classifier


def build_model(vocab_size: int, num_classes: int) -> GRU:
    """The lesson's GRU with its published hyperparameters."""
    return GRU(embedding_dim=EMBEDDING_DIM, vocab_size=vocab_size, rnn_hidden_dim=RNN_HIDDEN_DIM,
               hidden_dim=HIDDEN_DIM, dropout_p=DROPOUT_P, num_classes=num_classes)


class Trainer:
    """The lesson's trainer, with per-epoch timing and validation losses recorded."""

    def __init__(self, model: nn.Module, loss_fn: nn.Module | None = None,
                 optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.epoch_ends: list[float] = []  # time.perf_counter() at the end of each epoch
        self.val_losses: list[float] = []

    def train_step(self, dataloader: torch.utils.data.DataLoader) -> float:
        """One pass over the training batches; returns the running mean loss."""
        self.model.train()
        loss = 0.0
        for i, batch in enumerate(dataloader):
            inputs, targets = batch[:-1], batch[-1]
            self.optimizer.zero_grad()
            J = self.loss_fn(self.model(inputs), targets)
            J.backward()
            self.optimizer.step()
            loss += (J.detach().item() - loss) / (i + 1)
        return loss

    def eval_step(self, dataloader: torch.utils.data.DataLoader) -> tuple[float, np.ndarray, np.ndarray]:
        """Mean loss, true labels and class probabilities over ``dataloader``."""
        self.model.eval()
        loss = 0.0
        y_trues, y_probs = [], []
        with torch.inference_mode():
            for i, batch in enumerate(dataloader):
                inputs, y_true = batch[:-1], batch[-1]
                z = self.model(inputs)
                loss += (self.loss_fn(z, y_true).item() - loss) / (i + 1)
                y_probs.extend(F.softmax(z, dim=1).cpu().numpy())
                y_trues.extend(y_true.cpu().numpy())
        return loss, np.vstack(y_trues), np.vstack(y_probs)

    def predict_step(self, dataloader: torch.utils.data.DataLoader) -> np.ndarray:
        """Class probabilities over ``dataloader`` (labels ignored)."""
        self.model.eval()
        y_probs = []
        with torch.inference_mode():
            for batch in dataloader:
                y_probs.extend(F.softmax(self.model(batch[:-1]), dim=1).cpu().numpy())
        return np.vstack(y_probs)

    def train(self, num_epochs: int, patience: int, train_dataloader: torch.utils.data.DataLoader,
              val_dataloader: torch.utils.data.DataLoader) -> nn.Module:
        """The lesson's loop: plateau scheduler on val loss, early stopping, ``best_model`` by reference."""
        best_val_loss = np.inf
        best_model, _patience = self.model, patience
        for epoch in range(num_epochs):
            train_loss = self.train_step(dataloader=train_dataloader)
            val_loss, _, _ = self.eval_step(dataloader=val_dataloader)
            self.scheduler.step(val_loss)
            self.epoch_ends.append(time.perf_counter())
            self.val_losses.append(val_loss)
            if val_loss < best_val_loss:
                best_val_loss = val_loss
                best_model = self.model  # a reference, as published: not a snapshot
                _patience = patience
            else:
                _patience -= 1
            if not _patience:
                log.info("Stopping early!")
                break
            log.info("Epoch: %d | train_loss: %.5f, val_loss: %.5f, lr: %.2E, _patience: %d", epoch + 1,
                     train_loss, val_loss, self.optimizer.param_groups[0]["lr"], _patience)
        return best_model


@dataclass
class SeedRun:
    """A trained seed pipeline: its artifacts and the timing / accuracy summary."""

    model: GRU
    tokenizer: Tokenizer
    label_encoder: LabelEncoder
    result: dict[str, Any] = field(default_factory=dict)


def resolve_data_path(path: str | os.PathLike = DEFAULT_DATA) -> Path:
    """A data path, relative ones taken from the repository root."""
    p = Path(path)
    return p if p.is_absolute() else (REPO_ROOT / p).resolve()


def read_news(path: str | os.PathLike = DEFAULT_DATA) -> pd.DataFrame:
    """The ``y,X`` CSV (label, title) as a DataFrame."""
    return pd.read_csv(resolve_data_path(path), header=0)


def split_indices(df: pd.DataFrame, seed: int = 42) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Our project's 70/15/15 stratified split (seed 42 unless given), so numbers compare."""
    return stratified_split(df["y"].to_numpy(), SplitConfig(seed=seed))


def class_weights_tensor(y_train: np.ndarray) -> torch.Tensor:
    """The lesson's class weights ``1 / count``."""
    counts = np.bincount(y_train)
    class_weights = {i: 1.0 / count for i, count in enumerate(counts)}
    return torch.Tensor(list(class_weights.values()))


def _loaders(tokenizer: Tokenizer, texts: np.ndarray, y: np.ndarray,
             parts: Sequence[np.ndarray], batch_size: int) -> list[torch.utils.data.DataLoader]:
    """One unshuffled DataLoader per index array in ``parts``."""
    return [Dataset(X=tokenizer.texts_to_sequences(texts[ix]), y=y[ix]).create_dataloader(batch_size=batch_size)
            for ix in parts]


def train_seed_pipeline(epochs: int = NUM_EPOCHS, data: str | os.PathLike = DEFAULT_DATA,
                        batch_size: int = BATCH_SIZE, num_tokens: int | None = NUM_TOKENS,
                        seed: int = SEED) -> SeedRun:
    """Run the lesson end to end (read, preprocess, split, fit, train, test) and time it."""
    t0 = time.perf_counter()
    set_seeds(seed)
    df = read_news(data)
    t_pre = time.perf_counter()
    texts = df["X"].apply(preprocess).to_numpy()
    preprocess_s = time.perf_counter() - t_pre
    train_ix, val_ix, test_ix = split_indices(df)
    label_encoder = LabelEncoder().fit(df["y"].to_numpy()[train_ix])
    y = label_encoder.encode(df["y"].to_numpy())
    tokenizer = Tokenizer(char_level=False, num_tokens=num_tokens).fit_on_texts(texts[train_ix])
    train_dl, val_dl, test_dl = _loaders(tokenizer, texts, y, (train_ix, val_ix, test_ix), batch_size)

    model = build_model(len(tokenizer), len(label_encoder))
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    trainer = Trainer(model=model, loss_fn=nn.CrossEntropyLoss(weight=class_weights_tensor(y[train_ix])),
                      optimizer=optimizer,
                      scheduler=torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1,
                                                                           patience=3))
    t_train = time.perf_counter()
    best_model = trainer.train(epochs, PATIENCE, train_dl, val_dl)

    _, y_true, y_prob = trainer.eval_step(dataloader=test_dl)  # trainer.model is best_model
    y_pred = np.argmax(y_prob, axis=1)
    result = _summary(trainer, t0, t_train, preprocess_s, y_true.ravel(), y_pred)
    result["vocab_size"] = len(tokenizer)
    return SeedRun(model=best_model, tokenizer=tokenizer, label_encoder=label_encoder, result=result)


def _summary(trainer: Trainer, t0: float, t_train: float, preprocess_s: float,
             y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """Timing and test metrics of a finished run."""
    ends = trainer.epoch_ends
    per_epoch = np.diff([t_train, *ends]).tolist()
    best = int(np.argmin(trainer.val_losses))  # first epoch with the lowest val loss
    return {
        "per_epoch_s": [round(s, 3) for s in per_epoch],
        "mean_epoch_s": round(float(np.mean(per_epoch)), 3),
        "epochs_run": len(per_epoch),
        "best_epoch": best + 1,
        "best_val_loss": round(trainer.val_losses[best], 5),
        "wall_to_best_epoch_s": round(ends[best] - t0, 3),
        "total_wall_s": round(time.perf_counter() - t0, 3),
        "preprocess_s": round(preprocess_s, 3),
        "test_accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "test_f1_macro": round(float(f1_score(y_true, y_pred, average="macro")), 4),
    }


def run_baseline(epochs: int = NUM_EPOCHS, data: str | os.PathLike = DEFAULT_DATA,
                 batch_size: int = BATCH_SIZE, num_tokens: int | None = NUM_TOKENS,
                 seed: int = SEED) -> dict[str, Any]:
    """The seed pipeline's timing and test metrics (see :func:`train_seed_pipeline`)."""
    return train_seed_pipeline(epochs, data, batch_size, num_tokens, seed).result


def seed_inference(texts: Sequence[str], model: nn.Module, tokenizer: Tokenizer,
                   batch_size: int = BATCH_SIZE) -> np.ndarray:
    """The lesson's inference path: preprocess each row, tokenize, Dataset/DataLoader, softmax, argmax."""
    X = tokenizer.texts_to_sequences([preprocess(text) for text in texts])
    y_filler = np.zeros(len(X), dtype=int)  # the lesson encodes classes[0] for every row
    dataloader = Dataset(X=X, y=y_filler).create_dataloader(batch_size=batch_size)
    y_prob = Trainer(model=model).predict_step(dataloader)
    return np.argmax(y_prob, axis=1)


def seed_inference_throughput(texts: Sequence[str], model: nn.Module, tokenizer: Tokenizer,
                              batch_size: int = BATCH_SIZE) -> float:
    """Texts per second of :func:`seed_inference` over ``texts``."""
    t0 = time.perf_counter()
    seed_inference(texts, model, tokenizer, batch_size)
    return len(texts) / (time.perf_counter() - t0)


SVM_C_GRID = (0.1, 0.3, 1.0, 3.0)


def tfidf_linear_baseline(train_texts: Sequence[str], train_labels: Sequence[Any], test_texts: Sequence[str],
                          test_labels: Sequence[Any], val_texts: Sequence[str] | None = None,
                          val_labels: Sequence[Any] | None = None) -> dict[str, float]:
    """Test accuracy of TF-IDF linear models fitted on the training texts.

    - ``svm_accuracy`` / ``logreg_accuracy``: word 1-2-grams (sublinear tf), LinearSVC / LogisticRegression
      with sklearn's default C.
    - ``svm_word_char_accuracy`` (with validation texts): word 1-2-grams plus character 2-5-grams within
      word boundaries, LinearSVC with C chosen on the validation texts from ``SVM_C_GRID``
      (``svm_word_char_C``). This is the strongest linear model we found on AG News titles.
    """
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    X_train = words.fit_transform([t.lower() for t in train_texts])
    X_test = words.transform([t.lower() for t in test_texts])
    scores: dict[str, float] = {}
    for name, clf in (("svm_accuracy", LinearSVC()), ("logreg_accuracy", LogisticRegression(max_iter=1000))):
        clf.fit(X_train, train_labels)
        scores[name] = round(float(accuracy_score(test_labels, clf.predict(X_test))), 4)
    if val_texts is None or val_labels is None:
        return scores
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)  # lower-cases, as words did
    X_train = hstack([X_train, chars.fit_transform(list(train_texts))]).tocsr()  # (rows, word + char features)
    X_val = hstack([words.transform([t.lower() for t in val_texts]), chars.transform(list(val_texts))]).tocsr()
    X_test = hstack([X_test, chars.transform(list(test_texts))]).tocsr()
    fitted = {c: LinearSVC(C=c).fit(X_train, train_labels) for c in SVM_C_GRID}
    best_c = max(SVM_C_GRID, key=lambda c: accuracy_score(val_labels, fitted[c].predict(X_val)))  # first best wins
    scores["svm_word_char_accuracy"] = round(float(accuracy_score(test_labels, fitted[best_c].predict(X_test))), 4)
    scores["svm_word_char_C"] = best_c
    return scores


def run_tfidf(data: str | os.PathLike = DEFAULT_DATA, seed: int = 42) -> dict[str, float]:
    """:func:`tfidf_linear_baseline` on the raw titles of our train / val / test split."""
    df = read_news(data)
    train_ix, val_ix, test_ix = split_indices(df, seed)
    texts, labels = df["X"].to_numpy(), df["y"].to_numpy()
    return tfidf_linear_baseline(texts[train_ix], labels[train_ix], texts[test_ix], labels[test_ix],
                                 texts[val_ix], labels[val_ix])


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=NUM_EPOCHS)
    parser.add_argument("--data", default=DEFAULT_DATA, help="CSV with y,X columns (relative: to the repo root)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Print one JSON line for the seed RNN pipeline and one for the TF-IDF linear models."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    result = run_baseline(epochs=args.epochs, data=args.data)
    load = {"loadavg_1m_start": round(load_before, 2), "loadavg_1m_end": round(os.getloadavg()[0], 2)}
    print(json.dumps({"bench": "mwml_baseline", "threads": args.threads, **result, **load}), flush=True)
    print(json.dumps({"bench": "tfidf_linear", **run_tfidf(args.data)}), flush=True)


if __name__ == "__main__":
    main()
