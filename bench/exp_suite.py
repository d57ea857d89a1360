"""Quick classifier experiments on the development sets without Prefect / MLflow (for tuning defaults).

    PYTHONPATH=. .venv/bin/python bench/exp_suite.py '{"sets": ["trec", "subj", "ag"], "clean": {...},
        "enc": {...}, "clf": {...}, "train": {...}, "feat": {...}, "vocab": {...}, "seeds": [42]}'

Each set: train (val = a stratified 15 % of train, as the CLI cuts it), select on val, test accuracy. AG News
10k: the CLI's seeded 70/15/15 split. Prints a JSON line per set and seed, then the mean. ``"linear": true``
adds the linear member (alone, mixed, refitted on train + val); ``"refit_rnn": true`` also trains a fresh RNN on
train + val for the first one's best epoch count and mixes it with the refitted member (``mix_both_refit_acc``);
with ``"ensemble": N`` every member is refitted, and the mixtures use the members' mean log-probabilities
(``mix_pair_refit_acc``: the refitted and the selected members together; ``by_members``: both for the first k
members). ``"rules": ["acc", "nll", ...]`` adds the test accuracy of the refitted mixture at the weight each rule
of :func:`weight_by_rule` chooses on validation.
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import time
from dataclasses import replace

import numpy as np
import pyarrow as pa
import torch

from bench.classify_suite import DATA, REPO, SENTENCES
from seqmodels.batching import BatchLoader
from seqmodels.featurize import Featurizer, FeaturizerConfig, text_to_tokens
from seqmodels.kinds.classify.kind import (CLASSIFIER_CLEAN, CLASSIFIER_ENCODER, CLASSIFIER_MODEL, CLASSIFIER_TRAINING,
                                          CLASSIFIER_VOCAB)
from seqmodels.kinds.classify.model import RNNClassifier
from seqmodels.kinds.classify.stages import label_targets, refit_config
from seqmodels.readers import ReadSpec, read_labeled
from seqmodels.split import SplitConfig, stratified_split
from seqmodels.training import Trainer, seed_everything
from seqmodels.vocab import LabelMap


def load(name: str, seed: int):
    """``(texts, labels, train, val, test indices)`` of a development set."""
    if name in ("ag", "demo"):  # AG 10k; the demo's 2,400 headlines (flows/demo_data): seeded 70/15/15 splits
        path, spec = ((DATA / "ag_news_titles_10k" / "news.csv", ReadSpec(text_col="X", label_col="y")) if name == "ag"
                      else (REPO / "flows" / "demo_data" / "headlines.csv", ReadSpec(text_col="title", label_col="category")))
        df = read_labeled(path, spec)
        tr, va, te = stratified_split(df.label.to_numpy(), SplitConfig(seed=seed))
        return df.text.tolist(), df.label.tolist(), tr, va, te
    train = read_labeled(SENTENCES / f"{name}_train.csv", ReadSpec(text_col="text", label_col="label"))
    test = read_labeled(SENTENCES / f"{name}_test.csv", ReadSpec(text_col="text", label_col="label"))
    tr, va, _ = stratified_split(train.label.to_numpy(), SplitConfig(train=0.85, val=0.15, test=0.0, seed=seed))
    texts, labels = train.text.tolist() + test.text.tolist(), train.label.tolist() + test.label.tolist()
    return texts, labels, tr, va, np.arange(len(train), len(texts))


def run(name: str, seed: int, args: dict) -> dict:
    started = time.time()
    texts, labels, tr, va, te = load(name, seed)
    fc = FeaturizerConfig(clean=replace(CLASSIFIER_CLEAN, **args.get("clean", {})), vocab=replace(CLASSIFIER_VOCAB, **args.get("vocab", {})),
                          **args.get("feat", {}))
    cleaned, tokens = text_to_tokens(texts, fc.clean)
    if args.get("train_rows"):  # a small training set: the first rows of a seeded shuffle of the split
        tr = np.random.default_rng(seed).permutation(tr)[: args["train_rows"]]
    label_map = LabelMap.fit([labels[i] for i in tr])
    y = label_map.encode(labels)
    take = lambda array, ix: array.take(pa.array(ix))  # noqa: E731
    featurizer = Featurizer.fit(take(cleaned, tr), take(tokens, tr), fc)
    data = lambda ix: featurizer.encode(take(cleaned, ix), take(tokens, ix), y[ix])  # noqa: E731
    probabilities, epochs, models, refits = [], [], [], []
    for member in range(args.get("ensemble", 1)):  # members differ in initialisation and batch order only
        member_seed = seed + 1000 * member
        seed_everything(member_seed)
        encoder = replace(CLASSIFIER_ENCODER, **{**args.get("enc", {}), **featurizer.encoder_fields()})
        model = RNNClassifier(replace(CLASSIFIER_MODEL, encoder=encoder, num_classes=len(label_map),
                                      **args.get("clf", {})))
        config = replace(CLASSIFIER_TRAINING, seed=member_seed, progress=False, **args.get("train", {}))
        trainer = Trainer(model, config, BatchLoader(data(tr), config.batch_size, shuffle=True, seed=member_seed,
                                                     targets=label_targets), BatchLoader(data(va), 256, targets=label_targets))
        selection = trainer.fit()
        epochs.append(selection.best_epoch)
        models.append(model.eval())
        if args.get("refit_rnn"):
            refits.append(refit_rnn(model, config, data, np.concatenate([tr, va]), va, selection, member_seed))
        probabilities.append(torch.cat([model.predict_proba(batch).cpu()
                                        for batch in BatchLoader(data(te), 256, targets=label_targets)]))
    targets = torch.cat([batch["targets"] for batch in BatchLoader(data(te), 256, targets=label_targets)])
    accuracy = float((torch.stack(probabilities).mean(0).argmax(-1) == targets).float().mean())
    out = {"set": name, "seed": seed, "test_acc": round(100 * accuracy, 2), "best_epoch": epochs}
    if args.get("linear"):  # the RNNs (mean log-probabilities) mixed with the TF-IDF + SVM member, weight on val
        out.update(linear_member(models, data, texts, y, tr, va, te, len(label_map), seed, refits,
                                 args.get("rules", ())))
    return {**out, "wall": round(time.time() - started, 1)}


def refit_rnn(model, config, data, rows, va, selection, seed: int):
    """A fresh RNN of the same config trained on ``rows`` (train + val) for the epochs the first one chose, with
    the trainer config ``train classify --refit`` uses (:func:`refit_config`)."""
    seed_everything(seed)
    fresh = RNNClassifier(model.config)
    refit = refit_config(selection, config, rows_ratio=len(rows) / (len(rows) - len(va)))
    train = BatchLoader(data(rows), config.batch_size, shuffle=True, seed=seed, targets=label_targets)
    Trainer(fresh, refit, train, BatchLoader(data(va), 256, targets=label_targets)).fit()
    return fresh.eval()


def linear_member(models, data, texts, y, tr, va, te, num_classes: int, seed: int, refit_models=(),
                  rules=()) -> dict:
    """Test accuracy of the linear member alone and mixed with the RNN at the weight chosen on validation."""
    from seqmodels.kinds.classify.baseline import LinearMember, choose_weight

    member = LinearMember.fit([texts[i] for i in tr], y[tr], num_classes, seed)

    def log_probs(ix, rnns=models):  # the members' mean; BatchLoader without shuffling yields rows by `index`
        out = np.zeros((len(ix), num_classes))
        for rnn in rnns:
            for batch in BatchLoader(data(ix), 256, targets=label_targets):
                out[batch["index"].numpy()] += torch.log(rnn.predict_proba(batch)).numpy() / len(rnns)
        return out

    val_svm = member.scores([texts[i] for i in va])
    weight, by_weight = choose_weight(log_probs(va), val_svm, y[va])
    test_scores = member.scores([texts[i] for i in te])
    mix = (log_probs(te) + weight * test_scores).argmax(-1) == y[te]
    out = {"linear_acc": round(100 * float((test_scores.argmax(-1) == y[te]).mean()), 2), "weight": weight,
           "mix_acc": round(100 * float(mix.mean()), 2), "val": {str(k): round(100 * v, 1) for k, v in by_weight.items()}}
    both = np.concatenate([tr, va])  # the member refitted on train + val at the weight chosen above
    refit = LinearMember.fit([texts[i] for i in both], y[both], num_classes, seed).scores([texts[i] for i in te])
    out["linear_refit_acc"] = round(100 * float((refit.argmax(-1) == y[te]).mean()), 2)
    out["mix_refit_acc"] = round(100 * float(((log_probs(te) + weight * refit).argmax(-1) == y[te]).mean()), 2)
    if refit_models:  # the RNNs refitted on train + val too, at the same weight
        rnn = log_probs(te, refit_models)
        out["rnn_refit_acc"] = round(100 * float((rnn.argmax(-1) == y[te]).mean()), 2)
        out["mix_both_refit_acc"] = round(100 * float(((rnn + weight * refit).argmax(-1) == y[te]).mean()), 2)
        pair = (rnn + log_probs(te)) / 2  # the refitted RNN and the one chosen on validation, averaged
        out["mix_pair_refit_acc"] = round(100 * float(((pair + weight * refit).argmax(-1) == y[te]).mean()), 2)
        if rules:  # other ways to choose the weight on validation, with the same models
            val_rnn = log_probs(va, models)
            out["rules"] = {}
            for rule in rules:
                w = weight_by_rule(rule, val_rnn, val_svm, y[va])
                out["rules"][rule] = [w, round(100 * float(((rnn + w * refit).argmax(-1) == y[te]).mean()), 2)]
        out["by_members"] = {}  # the first k members: [refitted only, refitted and selected]
        for k in range(1, len(refit_models) + 1):  # the weight chosen with the first k selected members
            weight_k = choose_weight(log_probs(va, models[:k]), val_svm, y[va])[0]
            refits, pairs = log_probs(te, refit_models[:k]), log_probs(te, refit_models[:k] + models[:k])
            out["by_members"][k] = [round(100 * float(((mix + weight_k * refit).argmax(-1) == y[te]).mean()), 2)
                                    for mix in (refits, pairs)]
    return out


def weight_by_rule(rule: str, rnn: np.ndarray, svm: np.ndarray, y: np.ndarray) -> float:
    """The linear member's weight by ``rule``: ``acc`` (the default: best validation accuracy, largest of equals),
    ``nll`` (lowest validation log-loss of the mixture's softmax), ``smooth`` (accuracy averaged with the grid
    neighbours), ``fine`` (accuracy on a grid of steps of sqrt 2)."""
    from seqmodels.kinds.classify.baseline import MEMBER_WEIGHTS, choose_weight

    if rule == "fine":
        return choose_weight(rnn, svm, y, (0.0, *[2 ** (k / 2) for k in range(-4, 17)]))[0]
    if rule == "nll":
        def nll(w):
            mix = torch.from_numpy(rnn + w * svm)
            return float(torch.nn.functional.cross_entropy(mix, torch.from_numpy(y).long()))
        return min(MEMBER_WEIGHTS, key=nll)
    weight, accuracy = choose_weight(rnn, svm, y)
    if rule == "smooth":
        values = list(accuracy.values())
        smoothed = [float(np.mean(values[max(i - 1, 0): i + 2])) for i in range(len(values))]
        return max(w for w, a in zip(accuracy, smoothed) if a == max(smoothed))
    return weight


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    args = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    torch.set_num_threads(args.get("threads", 2))
    rows = []
    for name in args.get("sets", ["trec", "subj", "ag"]):
        for seed in args.get("seeds", [42]):
            rows.append(run(name, seed, args))
            print(json.dumps(rows[-1]), flush=True)
    means = {name: round(statistics.fmean(r["test_acc"] for r in rows if r["set"] == name), 2)
             for name in dict.fromkeys(r["set"] for r in rows)}
    print(json.dumps({"mean": means, "overall": round(statistics.fmean(means.values()), 2),
                      "cfg": {k: v for k, v in args.items() if k != "sets"}}), flush=True)


if __name__ == "__main__":
    main()
