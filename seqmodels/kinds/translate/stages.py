"""The translation kind's stages on files: pairs -> vocabularies -> trained encoder-decoder -> BLEU / chrF."""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import pyarrow.parquet as pq
import torch

from seqmodels.kinds.translate.batches import PairLoader, pair_batch
from seqmodels.kinds.translate.decode import beam_search, forced_attention, greedy_decode
from seqmodels.kinds.translate.model import UNK_ID, Seq2Seq, Seq2SeqConfig
from seqmodels.kinds.translate.text import SPECIALS, decode, encode, fit_vocabulary, tokenize
from seqmodels.predict import load_model, save_history, save_model
from seqmodels.subwords import Segmenter, learn_bpe
from seqmodels.training import Callback, Trainer, TrainerConfig, seed_everything
from seqmodels.vocab import Vocabulary

log = logging.getLogger(__name__)
TASK = "translate"


@dataclass(frozen=True)
class TextConfig:
    """How source and target sentences become tokens, and the longest pair trained on."""

    source_level: str = "word"
    target_level: str = "word"
    max_len: int = 50
    max_vocab: int = 30_000
    min_freq: int = 1
    bpe_merges: int = 8_000

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "TextConfig":
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def read_split(path: str) -> tuple[list[str], list[str]]:
    """Sources and targets of a canonical pair table."""
    table = pq.read_table(path, columns=["text", "target"])
    return table.column("text").to_pylist(), table.column("target").to_pylist()


def fit_text(train_path: str, out_dir: str, config: TextConfig) -> Path:
    """Source and target vocabularies of the training pairs, and the text config, as JSON in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sources, targets = read_split(train_path)
    for name, texts, level in (("source", sources, config.source_level), ("target", targets, config.target_level)):
        token_lists = [tokenize(t, level) for t in texts]
        if level != "bpe":
            fit_vocabulary(token_lists, level, config.max_vocab, config.min_freq).save(out / f"{name}_vocab.json")
            continue
        units = learn_bpe(Counter(w for words in token_lists for w in words), config.bpe_merges)
        segment = Segmenter(units)
        # every unit, not only those left whole in the training words: an unseen word splits into smaller ones
        fitted = fit_vocabulary((segment(words) for words in token_lists), level, config.max_vocab)
        unused = sorted(set(units) - set(fitted.tokens))[:max(0, config.max_vocab - len(fitted))]
        Vocabulary([*fitted.tokens, *unused], level=fitted.level).save(out / f"{name}_vocab.json")
    config.save(out / "text.json")
    return out


@dataclass
class TextCodec:
    """Both vocabularies and how to tokenise: sentences <-> ids."""

    source: Vocabulary
    target: Vocabulary
    config: TextConfig

    @classmethod
    def load(cls, folder: str | Path) -> "TextCodec":
        folder = Path(folder)
        return cls(Vocabulary.load(folder / "source_vocab.json"), Vocabulary.load(folder / "target_vocab.json"),
                   TextConfig.load(folder / "text.json"))

    def save(self, folder: Path) -> None:
        self.source.save(folder / "source_vocab.json")
        self.target.save(folder / "target_vocab.json")
        self.config.save(folder / "text.json")

    @cached_property
    def _segmenters(self) -> dict[str, Segmenter | None]:
        """Per side, the subword splitter of a ``bpe`` level (its units are the vocabulary's tokens), else None."""
        return {side: Segmenter(vocab.tokens[len(SPECIALS):]) if level == "bpe" else None
                for side, vocab, level in (("source", self.source, self.config.source_level),
                                           ("target", self.target, self.config.target_level))}

    def tokens(self, text: str, side: str) -> list[str]:
        """The tokens of a ``source`` or ``target`` sentence, split as the model was trained."""
        words = tokenize(text, self.config.source_level if side == "source" else self.config.target_level)
        segment = self._segmenters[side]
        return segment(words) if segment else words

    def sources(self, texts: list[str]) -> list[list[int]]:
        return [encode(self.source, self.tokens(t, "source")) for t in texts]

    def targets(self, texts: list[str]) -> list[list[int]]:
        return [encode(self.target, self.tokens(t, "target")) for t in texts]

    def text(self, ids: list[int], copies: dict[int, str] | None = None) -> str:
        """The detokenised translation of target ``ids``; ``copies``: position -> source token put in place of
        the ``<unk>`` there."""
        return decode(self.target, ids, copies)

    @property
    def copies_source_tokens(self) -> bool:
        """Whether a source token can stand in for an unknown target token (both sides split alike)."""
        return self.config.source_level == self.config.target_level


def training_pairs(codec: TextCodec, path: str) -> tuple[list[list[int]], list[list[int]]]:
    """Encoded pairs of ``path`` with both sides at most ``max_len`` tokens; how many were left out is logged."""
    sources, targets = read_split(path)
    src, tgt = codec.sources(sources), codec.targets(targets)
    keep = [i for i in range(len(src)) if 0 < len(src[i]) <= codec.config.max_len and len(tgt[i]) <= codec.config.max_len]
    if len(keep) < len(src):
        log.warning("%s: %d of %d pairs have a side longer than --max-len %d tokens (or an empty source) and are "
                    "left out of training", path, len(src) - len(keep), len(src), codec.config.max_len)
    if not keep:
        raise ValueError(f"{path}: no pair has both sides within --max-len {codec.config.max_len} tokens; raise it")
    return [src[i] for i in keep], [tgt[i] for i in keep]


class EpochSamples:
    """After every epoch, greedy translations of the first validation sentences into
    ``folder/epoch_NNN.csv``, listed in the record's ``artifacts`` (logged by the tracking callback)."""

    def __init__(self, folder: Path, codec: "TextCodec", sources: list[str], references: list[str]):
        self.folder, self.codec, self.sources, self.references = folder, codec, sources, references
        folder.mkdir(parents=True, exist_ok=True)

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        import pandas as pd

        translations = Translator(trainer.model, self.codec, trainer.device).translate(self.sources, beam=1)
        trainer.model.train()
        path = self.folder / f"epoch_{record['epoch']:03d}.csv"
        pd.DataFrame({"source": self.sources, "reference": self.references, "greedy": translations}).to_csv(
            path, index=False)
        record.setdefault("artifacts", []).append(str(path))


def train_translator(splits: dict[str, str], text_dir: str, run_dir: Path, model_config: Seq2SeqConfig,
                     trainer_config: TrainerConfig, resume: bool = False, callbacks: tuple[Callback, ...] = ()) -> Path:
    """Train on the training pairs, select on validation loss; the model directory ``run_dir/model``."""
    codec = TextCodec.load(text_dir)
    seed_everything(trainer_config.seed)  # the same initial weights for the same seed, whatever ran before
    model = Seq2Seq(replace(model_config, src_vocab_size=len(codec.source), tgt_vocab_size=len(codec.target)))
    train = PairLoader(*training_pairs(codec, splits["train"]), trainer_config.batch_size, shuffle=True,
                       seed=trainer_config.seed)
    val = PairLoader(*training_pairs(codec, splits["val"]), 256)
    sources, references = read_split(splits["val"])
    samples = EpochSamples(Path(run_dir) / "model" / "samples", codec, sources[:20], references[:20])
    trainer = Trainer(model, trainer_config, train, val, checkpoint_dir=Path(run_dir) / "checkpoints",
                      callbacks=(samples, *callbacks))
    if resume:
        trainer.resume()
    result = trainer.fit()
    model_dir = save_model(Path(run_dir) / "model", TASK, trainer.model)  # and both vocabularies beside it
    codec.save(model_dir)
    save_history(model_dir, result, trainer_config.monitor)
    return model_dir


class Translator:
    """A saved translation model: sentences in, translations out (greedy or beam search, batched)."""

    def __init__(self, model: Seq2Seq, codec: TextCodec, device: torch.device):
        self.model, self.codec, self.device = model.eval(), codec, device

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "auto") -> "Translator":
        model, target = load_model(model_dir, Seq2SeqConfig, Seq2Seq, device)
        return cls(model, TextCodec.load(model_dir), target)

    def translate(self, texts: list[str], beam: int = 5, batch_size: int = 64, max_len: int | None = None,
                  replace_unk: bool = True) -> list[str]:
        """The translation of every text (an empty one translates to ""); ``beam`` 1 is greedy. With
        ``replace_unk`` (Luong et al. 2015), an ``<unk>`` in a translation becomes the source token the model
        attended to most when it produced it (names, numbers), when both sides are split alike."""
        limit = max_len or 2 * self.codec.config.max_len
        ids = self.codec.sources(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths share a batch
        out: list[str] = [""] * len(texts)
        for start in range(0, len(order), batch_size):
            rows = [i for i in order[start:start + batch_size] if ids[i]]
            if not rows:
                continue
            batch = pair_batch([ids[i] for i in rows])
            src, lengths = batch["src"].to(self.device), batch["src_lengths"]
            hyps = (greedy_decode(self.model, src, lengths, limit) if beam <= 1
                    else beam_search(self.model, src, lengths, beam=beam, max_len=limit))
            copies = self._copies(texts, rows, batch, hyps) if replace_unk else {}
            for i, hyp in zip(rows, hyps):
                out[i] = self.codec.text(hyp, copies.get(i))
        return out

    def _copies(self, texts: list[str], rows: list[int], batch: dict, hyps: list[list[int]]) -> dict[int, dict]:
        """Text index -> {position of an ``<unk>`` in its translation: the most attended source token}."""
        if not self.codec.copies_source_tokens or self.model.config.attention == "none":
            return {}
        with_unk = [k for k, hyp in enumerate(hyps) if UNK_ID in hyp]
        if not with_unk:
            return {}
        index = torch.tensor(with_unk)
        weights = forced_attention(self.model, batch["src"][index].to(self.device), batch["src_lengths"][index],
                                   [hyps[k] for k in with_unk])  # (rows with <unk>, longest, src_len)
        copies = {}
        for row, k in enumerate(with_unk):
            source = self.codec.tokens(texts[rows[k]], "source")
            attended = weights[row].argmax(-1).tolist()  # the most attended source position of each output
            copies[rows[k]] = {j: source[attended[j]] for j, token in enumerate(hyps[k])
                               if token == UNK_ID and attended[j] < len(source)}
        return copies


def bleu_tokenizer(references: list[str]) -> str:
    """sacreBLEU's ``zh`` tokenizer for Chinese references (most characters CJK), else its default ``13a``."""
    text = "".join(references)
    cjk = sum("\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf" for c in text)
    return "zh" if text and cjk > 0.3 * len(text.replace(" ", "")) else "13a"


def corpus_scores(hypotheses: list[str], references: list[str], suffix: str = "") -> dict:
    """sacreBLEU BLEU and chrF of detokenised hypotheses against the raw references, and exact matches."""
    from sacrebleu.metrics import BLEU, CHRF

    bleu, chrf = BLEU(tokenize=bleu_tokenizer(references)), CHRF()
    scores = {f"bleu{suffix}": bleu.corpus_score(hypotheses, [references]).score,
              f"chrf{suffix}": chrf.corpus_score(hypotheses, [references]).score,
              f"exact_match{suffix}": sum(h.strip() == r.strip() for h, r in zip(hypotheses, references))
              / max(len(references), 1)}
    if not suffix:
        scores.update(bleu_signature=str(bleu.get_signature()), chrf_signature=str(chrf.get_signature()))
    return scores


@torch.no_grad()
def token_loss(translator: Translator, sources: list[str], targets: list[str]) -> float:
    """Cross-entropy per target token (with the model's label smoothing) over the pairs with a source."""
    codec, model = translator.codec, translator.model
    src, tgt = codec.sources(sources), codec.targets(targets)
    keep = [i for i in range(len(src)) if src[i]]
    total = count = 0.0
    for batch in PairLoader([src[i] for i in keep], [tgt[i] for i in keep], 128):
        out = model.step({k: v.to(translator.device) if k != "src_lengths" else v for k, v in batch.items()})
        total, count = total + float(out["loss"]) * int(out["count"]), count + int(out["count"])
    return total / max(count, 1)


def evaluate_translator(model_dir: str, test_path: str, device: str = "auto", beam: int = 5) -> dict:
    """Metrics on the test pairs (beam search, and greedy beside it) and a table of sample translations."""
    import pandas as pd

    translator = Translator.load(model_dir, device)
    sources, references = read_split(test_path)
    beamed, greedy = translator.translate(sources, beam=beam), translator.translate(sources, beam=1)
    metrics = {**corpus_scores(beamed, references), **corpus_scores(greedy, references, "_greedy"),
               "loss": token_loss(translator, sources, references), "num_test": len(sources), "beam": beam}
    samples = pd.DataFrame({"source": sources, "reference": references, "beam": beamed, "greedy": greedy}).head(100)
    return {"metrics": metrics, "tables": {"samples": samples}}
