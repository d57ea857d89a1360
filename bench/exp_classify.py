"""Quick accuracy experiment on AG News 10k: python exp.py '{json overrides}'."""
import sys, time, json, logging
from dataclasses import replace
import numpy as np, torch, pyarrow as pa
from seqmodels.readers import read_labeled, ReadSpec
from seqmodels.cleaning import CleanConfig
from seqmodels.featurize import Featurizer, FeaturizerConfig, text_to_tokens
from seqmodels.split import stratified_split, SplitConfig
from seqmodels.vocab import LabelMap
from seqmodels.batching import BatchLoader
from seqmodels.kinds.classify.kind import CLASSIFIER_TRAINING, CLASSIFIER_VOCAB
from seqmodels.kinds.classify.model import ClassifierConfig, RNNClassifier
from seqmodels.models.encoder import EncoderConfig
from seqmodels.training import Trainer, seed_everything
logging.basicConfig(level=logging.WARNING)
args = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
t0 = time.time()
torch.set_num_threads(args.pop("threads", 2))
df = read_labeled('/work/shared/datasets/ag_news_titles_10k/news.csv', ReadSpec(text_col='X', label_col='y'))
fc = FeaturizerConfig(clean=CleanConfig(**args.pop("clean", {})), vocab=replace(CLASSIFIER_VOCAB, **args.pop("vocab", {})), **args.pop("feat", {}))
cleaned, toks = text_to_tokens(df.text.tolist(), fc.clean)
tr, va, te = stratified_split(df.label.to_numpy(), SplitConfig(seed=args.pop("split_seed", 42)))
lm = LabelMap.fit(df.label)
y = lm.encode(df.label.tolist())
take = lambda a, ix: a.take(pa.array(ix))
feat = Featurizer.fit(take(cleaned, tr), take(toks, tr), fc)
def data(ix): return feat.encode(take(cleaned, ix), take(toks, ix), y[ix])
seed = args.pop("seed", 42)
seed_everything(seed)
enc = EncoderConfig(**{**args.pop("enc", {}), **feat.encoder_fields()})
cfg = ClassifierConfig(encoder=enc, num_classes=len(lm), **args.pop("clf", {}))
model = RNNClassifier(cfg)
tc = replace(CLASSIFIER_TRAINING, seed=seed, progress=False, **args.pop("train", {}))  # the CLI's defaults
exact = args.pop("exact", False)
trainer = Trainer(model, tc, BatchLoader(data(tr), tc.batch_size, shuffle=True, seed=seed, exact_length=exact),
                  BatchLoader(data(va), 256, exact_length=exact))
res = trainer.fit()
if args.pop("refit", False):  # a fresh model on train + val for the best epoch count (+ refit_extra_epochs), then tested
    trva = np.sort(np.concatenate([tr, va]))
    feat = Featurizer.fit(take(cleaned, trva), take(toks, trva), fc)
    seed_everything(seed)
    model = RNNClassifier(replace(cfg, encoder=replace(enc, **feat.encoder_fields())))
    rc = replace(tc, epochs=res.best_epoch + args.pop("refit_extra_epochs", 0), patience=10_000)  # no early stop
    trainer = Trainer(model, rc, BatchLoader(data(trva), tc.batch_size, shuffle=True, seed=seed), BatchLoader(data(va), 256))
    trainer.fit()
_scores = trainer.evaluate(BatchLoader(data(te), 256))
tl, tacc = _scores["loss"], _scores["accuracy"]
save = args.pop("save_probs", None)
if save:  # test-set class probabilities in test-split order, for ensembling experiments
    probs = np.zeros((len(te), len(lm)), dtype=np.float32)
    model.eval()
    for batch in BatchLoader(data(te), 256):
        probs[batch["index"].numpy()] = model.predict_proba(batch).numpy()
    np.save(save, probs)
print(json.dumps({"vocab": len(feat.vocab), "best_epoch": res.best_epoch, "epochs": len(res.history), "test_acc": round(tacc, 4),
                  "val_acc_best": round(res.history[res.best_epoch - 1]["val_accuracy"], 4),
                  "mean_epoch_s": round(float(np.mean([h["epoch_time_s"] for h in res.history])), 2),
                  "wall": round(time.time() - t0, 1),
                  "val_loss": [round(h["val_loss"], 4) for h in res.history],
                  "val_acc": [round(h["val_accuracy"], 4) for h in res.history], "cfg": sys.argv[1] if len(sys.argv) > 1 else ""}))
