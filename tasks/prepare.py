"""Ingest, preprocess, split and fit the tokenizer: each a Prefect task on Parquet paths."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from prefect import task

from seqmodels.kinds.classify.stages import fit_featurizer
from seqmodels.parquet import write_parquet_atomic
from seqmodels.preprocess import preprocess_table
from seqmodels.cleaning import CleanConfig
from seqmodels.featurize import FeaturizerConfig
from seqmodels.readers import ReadSpec, read_labeled
from seqmodels.split import SplitConfig, split_range, stratified_split
from seqmodels.vocab import VocabConfig


@task(retries=1, retry_delay_seconds=2)
def ingest_file(path: str, out_path: str, text_col: str, label_col: str, fmt: str | None = None,
                encoding: str = "utf-8") -> str:
    """Read a user's labelled file (CSV / TSV / JSONL / Parquet) into the canonical Parquet table."""
    table = read_labeled(path, ReadSpec(text_col=text_col, label_col=label_col, fmt=fmt, encoding=encoding))
    table["source"] = str(path)
    return str(write_parquet_atomic(table, out_path))


@task(retries=1, retry_delay_seconds=2)
def ingest_tagged_file(path: str, out_path: str, fmt: str, tag_column: str | None = None) -> str:
    """Read a tagged corpus (conll2003 / conllu / gmb / tsv) into the canonical tagged Parquet table."""
    from seqmodels.kinds.tag.stages import ingest_tagged

    return str(ingest_tagged(path, out_path, fmt, tag_column))


@task
def preprocess_file(raw_path: str, out_path: str, clean: dict) -> str:
    """Clean and tokenise the text column into ``clean`` / ``tokens`` columns, at most ``clean["max_tokens"]``
    tokens per text; texts that clean to nothing are dropped with a warning (an error above 5 % of the file).
    The counts are in the output's Parquet metadata: ``seqmodels.kinds.classify.stages.preprocess_counts(path)``."""
    return str(preprocess_table(raw_path, out_path, CleanConfig(**clean)))


@task
def split_dataset(clean_paths: dict[str, str], out_dir: str, seed: int) -> dict[str, str]:
    """Seeded train / val / test files (stratified on ``label`` when there is one, by sentence for tagged
    tables); parts the user gave are kept as they are.

    With no val and no test file: 70 / 15 / 15. With one of them given, the other is cut from train
    (15 % of it).
    """
    missing = [part for part in ("val", "test") if part not in clean_paths]
    if not missing:
        return dict(clean_paths)
    table = pq.read_table(clean_paths["train"])
    fractions = {"val": 0.15, "test": 0.15} if len(missing) == 2 else {missing[0]: 0.15, _other(missing[0]): 0.0}
    config = SplitConfig(train=1 - sum(fractions.values()), val=fractions["val"], test=fractions["test"], seed=seed)
    if "label" in table.column_names:
        indices = stratified_split(table.column("label").to_numpy(), config)
    else:
        indices = split_range(table.num_rows, config)
    parts = dict(zip(("train", "val", "test"), indices))
    out = dict(clean_paths)
    for part in ["train", *missing]:
        out[part] = str(write_parquet_atomic(table.take(pa.array(parts[part])), Path(out_dir) / f"{part}.parquet"))
    return out


def _other(part: str) -> str:
    return "test" if part == "val" else "val"


@task
def fit_tokenizer(train_path: str, out_dir: str, level: str, max_size: int | None, min_freq: int, clean: dict,
                  features: dict | None = None, task_kind: str = "classify") -> str:
    """Fit the vocabulary (word or character level), token features and label (or tag) map on train; JSON.

    ``clean`` is saved with the featurizer (with the stopword list of this machine pinned), so prediction
    cleans and caps texts (``clean["max_tokens"]``; taggers: windows) exactly as training did."""
    features = dict(features or {})
    auto_subwords = features.get("subword_buckets", 0) is None  # taggers: chosen from the tag set
    if auto_subwords:
        features["subword_buckets"] = 0
    config = FeaturizerConfig(clean=CleanConfig(**clean), vocab=VocabConfig(level=level, max_size=max_size, min_freq=min_freq),
                              **features)
    if task_kind == "tag":
        from seqmodels.kinds.tag.stages import fit_tag_featurizer

        return str(fit_tag_featurizer(train_path, out_dir, config, auto_subwords))
    return str(fit_featurizer(train_path, out_dir, config))
