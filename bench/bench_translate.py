"""Translation benchmarks on the Tatoeba pairs of ``../shared/datasets/tatoeba_pairs``.

    .venv/bin/python -m bench.bench_translate budget [--pairs fra] [--minutes 30] [-- EXTRA OPTIONS]
    .venv/bin/python -m bench.bench_translate speed [--seconds 60]
    .venv/bin/python -m bench.bench_translate decode --model-dir RUN_DIR/model [--sentences 1000]

- ``budget``: default ``seqflow train translate`` (the whole CLI: Prefect, MLflow, gate) with ``--time-budget``
  on the pairs whose English side has at most 10 words, the test split drawn source-disjoint by the CLI; one
  JSON line per epoch, then a summary with BLEU / chrF (beam and greedy) and the targets. ``--pairs cmn`` is
  English -> Chinese with a character-level target (BLEU with sacreBLEU's ``zh`` tokenizer); then decoding
  speed of the trained model.
- ``speed``: training pairs/s of the default model beside a straightforward attention seq2seq of the same
  size (per-pair Python loop over decoder steps, as in the PyTorch translation tutorial), same vocabularies,
  same pairs, in one process: JSON lines and the ratio.
- ``decode``: sentences/s of batched greedy and beam-5 decoding of a saved model on test-like sentences.

Nothing else may run on the machine meanwhile: torch's threads spin (see the README).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from bench.bench_classify import run_train_cli
from bench.classify_suite import DATA

PAIRS = {"fra": DATA / "tatoeba_pairs" / "fra.txt", "cmn": DATA / "tatoeba_pairs" / "cmn.txt"}
MAX_ENGLISH_WORDS = 10
TARGETS = {"fra": {"bleu": 30.0, "chrf": 52.0}}  # default settings, --time-budget 30, 2 CPU cores


def emit(record: dict) -> dict:
    print(json.dumps(record), flush=True)
    return record


def short_pairs(pairs: str, folder: Path) -> Path:
    """The pair file's lines whose English side has at most 10 words (the issue's data), written to ``folder``."""
    lines = PAIRS[pairs].read_text(encoding="utf-8").splitlines()
    keep = [line for line in lines if line.strip() and len(line.split("\t")[0].split()) <= MAX_ENGLISH_WORDS]
    path = folder / f"{pairs}{MAX_ENGLISH_WORDS}.txt"
    path.write_text("\n".join(keep) + "\n", encoding="utf-8")
    return path


def budget(args) -> None:
    with tempfile.TemporaryDirectory() as home:
        data = short_pairs(args.pairs, Path(home))
        level = ["--target-level", "char"] if args.pairs == "cmn" else []
        cmd = [sys.executable, "-m", "flows.cli", "train", "translate", "--train", str(data), "--model-name",
               f"budget-{args.pairs}", "--data-dir", home, "--time-budget", str(args.minutes), *level, *args.extra]
        result, history, wall = run_train_cli(cmd)
        minutes = 0.0
        for record in history["history"]:
            minutes += record["epoch_time_s"] / 60
            emit({"bench": "epoch", "epoch": record["epoch"], "minutes": round(minutes, 2),
                  "val_loss": round(record["val_loss"], 4), "val_token_accuracy": round(record.get("val_correct", 0), 4)})
        m = result["metrics"]
        target = TARGETS.get(args.pairs) if args.minutes == 30 else None
        emit({"bench": "summary", "pairs": args.pairs, "minutes": args.minutes, "wall_s": round(wall, 1),
              "bleu_beam": round(m["bleu"], 2), "chrf_beam": round(m["chrf"], 2), "bleu_greedy": round(m["bleu_greedy"], 2),
              "chrf_greedy": round(m["chrf_greedy"], 2), "exact_match": round(m["exact_match"], 4), "beam": m["beam"],
              "num_test": m["num_test"], "best_epoch": history["best_epoch"], "epochs": len(history["history"]),
              "stop_reason": history["stop_reason"], "bleu_signature": m["bleu_signature"],
              **({"targets": target, "meets_targets": m["bleu"] >= target["bleu"] and m["chrf"] >= target["chrf"]}
                 if target else {})})
        decode_speed(Path(result["run_dir"]) / "model", Path(result["files"]["test"]), args.sentences)
        if args.keep_model:
            import shutil

            shutil.copytree(result["run_dir"], args.keep_model, dirs_exist_ok=True)  # model/ and splits/


def decode_speed(model_dir: Path, test_path: Path | None, sentences: int) -> None:
    """Sentences/s of batched greedy and beam-5 decoding of the model on up to ``sentences`` test sources."""
    from seqmodels.kinds.translate.stages import Translator, read_split

    translator = Translator.load(model_dir, "cpu")
    sources = read_split(str(test_path))[0][:sentences]
    for beam in (1, 5):
        started = time.perf_counter()
        translator.translate(sources, beam=beam)
        elapsed = time.perf_counter() - started
        emit({"bench": "decode", "beam": beam, "sentences": len(sources), "seconds": round(elapsed, 2),
              "sentences_per_s": round(len(sources) / elapsed, 1)})


class TutorialSeq2Seq(nn.Module):
    """The PyTorch tutorial's attention seq2seq at the default model's sizes: bidirectional GRU encoder, GRU
    decoder with additive attention, trained one pair at a time with a Python loop over decoder steps."""

    def __init__(self, src_vocab: int, tgt_vocab: int, emb: int = 256, hidden: int = 256):
        super().__init__()
        dim = 2 * hidden
        self.src_emb, self.tgt_emb = nn.Embedding(src_vocab, emb), nn.Embedding(tgt_vocab, emb)
        self.encoder = nn.GRU(emb, hidden, batch_first=True, bidirectional=True)
        self.decoder = nn.GRUCell(emb + dim, dim)
        self.w_query, self.w_keys, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, 1)
        self.out = nn.Linear(dim, tgt_vocab)

    def pair_loss(self, src: list[int], tgt: list[int]) -> torch.Tensor:
        memory, final = self.encoder(self.src_emb(torch.tensor([src])))  # (1, src_len, dim), (2, 1, hidden)
        state = final.permute(1, 0, 2).reshape(1, -1)  # (1, dim): both directions' final states
        prev, loss = torch.tensor([2]), 0.0  # <s>
        for token in [*tgt, 3]:  # teacher forcing, then </s>
            energies = self.v(torch.tanh(self.w_query(state)[:, None] + self.w_keys(memory)))  # (1, src_len, 1)
            context = (torch.softmax(energies, 1) * memory).sum(1)  # (1, dim)
            state = self.decoder(torch.cat([self.tgt_emb(prev), context], -1), state)
            gold = torch.tensor([token])
            loss = loss + nn.functional.cross_entropy(self.out(state), gold)
            prev = gold
        return loss / (len(tgt) + 1)


def speed(args) -> None:
    """Pairs/s of the tutorial loop and of the default model's batched training, same pairs and vocabularies."""
    from seqmodels.kinds.translate.batches import PairLoader
    from seqmodels.kinds.translate.kind import TRANSLATOR_TRAINING, TranslateKind, TranslateOptions
    from seqmodels.kinds.translate.model import Seq2Seq
    from seqmodels.kinds.translate.text import encode, fit_vocabulary, tokenize

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as home:
        lines = short_pairs("fra", Path(home)).read_text(encoding="utf-8").splitlines()
    pairs = [line.split("\t")[:2] for line in lines]
    options = TranslateOptions(train="", model_name="bench")
    tokens = [(tokenize(s), tokenize(t)) for s, t in pairs]
    src_vocab = fit_vocabulary((s for s, _ in tokens), "word", options.max_vocab, options.min_freq)
    tgt_vocab = fit_vocabulary((t for _, t in tokens), "word", options.max_vocab, options.min_freq)
    src, tgt = [encode(src_vocab, s) for s, _ in tokens], [encode(tgt_vocab, t) for _, t in tokens]
    config = TranslateKind().model_config(options)
    config.src_vocab_size, config.tgt_vocab_size = len(src_vocab), len(tgt_vocab)
    ours = timed(Seq2Seq(config).train(), PairLoader(src, tgt, TRANSLATOR_TRAINING.batch_size, shuffle=True),
                 args.seconds, lambda model, batch: model.step(batch)["loss"], lambda batch: len(batch["src"]))
    torch.manual_seed(0)
    order = torch.randperm(len(src)).tolist()
    tutorial = timed(TutorialSeq2Seq(len(src_vocab), len(tgt_vocab), config.embedding_dim, config.hidden_dim).train(),
                     ((src[i], tgt[i]) for i in order), args.seconds,
                     lambda model, pair: model.pair_loss(*pair), lambda pair: 1)
    emit({"bench": "train_speed", "model": "seqflow default", **ours})
    emit({"bench": "train_speed", "model": "tutorial per-pair loop, same sizes", **tutorial})
    emit({"bench": "summary", "ratio": round(ours["pairs_per_s"] / tutorial["pairs_per_s"], 2), "target": 2.0,
          "threads": args.threads, "src_vocab": len(src_vocab), "tgt_vocab": len(tgt_vocab)})


def timed(model: nn.Module, batches, seconds: float, loss_of, size_of) -> dict:
    """Train ``model`` with Adam on ``batches`` for about ``seconds`` (after 3 warm-up steps): pairs/s."""
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    pairs, started, steps = 0, None, 0
    for batch in batches:
        loss = loss_of(model, batch)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        steps += 1
        if steps == 3:
            started = time.perf_counter()
        elif steps > 3:
            pairs += size_of(batch)
            if time.perf_counter() - started > seconds:
                break
    elapsed = time.perf_counter() - started
    return {"pairs": pairs, "seconds": round(elapsed, 1), "pairs_per_s": round(pairs / elapsed, 1),
            "parameters": sum(p.numel() for p in model.parameters())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    run = sub.add_parser("budget")
    run.add_argument("--pairs", choices=sorted(PAIRS), default="fra")
    run.add_argument("--minutes", type=float, default=30.0)
    run.add_argument("--sentences", type=int, default=1000, help="test sentences decoded for the speed figures")
    run.add_argument("--keep-model", help="copy the run directory (model, splits) here for later benchmarks")
    run.add_argument("extra", nargs="*", help="options passed to `seqflow train translate` (after --)")
    fast = sub.add_parser("speed")
    fast.add_argument("--seconds", type=float, default=60.0)
    fast.add_argument("--threads", type=int, default=2)
    dec = sub.add_parser("decode")
    dec.add_argument("--model-dir", required=True)
    dec.add_argument("--test", help="a test split Parquet (default: the run's splits/test.parquet)")
    dec.add_argument("--sentences", type=int, default=1000)
    args = parser.parse_args(argv)
    if args.mode == "budget":
        budget(args)
    elif args.mode == "speed":
        speed(args)
    else:
        model_dir = Path(args.model_dir)
        decode_speed(model_dir, Path(args.test) if args.test else model_dir.parent / "splits" / "test.parquet",
                     args.sentences)


if __name__ == "__main__":
    main()
