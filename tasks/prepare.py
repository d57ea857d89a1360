"""Ingest, preprocess, split and fit the tokenizer: each a Prefect task on Parquet paths, for any task kind.

Each task takes the kind's name and the run's options (a JSON-ready dict of the kind's options class);
the kind does the work (:class:`seqmodels.kinds.base.TaskKind`).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from prefect import task

from seqmodels.kinds import get_kind
from seqmodels.parquet import write_parquet_atomic
from seqmodels.kinds.base import SplitPolicy
from seqmodels.split import SplitConfig, contiguous_split, grouped_split, split_range, stratified_split


def kind_and_options(kind_name: str, options: dict):
    """The task kind ``kind_name`` and its options object built from ``options``."""
    kind = get_kind(kind_name)
    return kind, kind.options(**options)


@task(retries=1, retry_delay_seconds=2)
def ingest_file(kind_name: str, path: str, out_path: str, options: dict) -> str:
    """Read a user's file into the kind's canonical Parquet table."""
    kind, opts = kind_and_options(kind_name, options)
    return str(kind.ingest(path, out_path, opts))


@task
def preprocess_file(kind_name: str, raw_path: str, out_path: str, options: dict) -> str:
    """The kind's cleaning / tokenising into ``out_path`` (classifiers: ``clean`` / ``tokens`` columns, at most
    ``max_tokens`` tokens per text, texts that clean to nothing dropped with a warning, an error above 5 %;
    counts in the output's metadata, :func:`seqmodels.preprocess.preprocess_counts`). A kind without the
    step returns ``raw_path``."""
    kind, opts = kind_and_options(kind_name, options)
    return str(kind.preprocess(raw_path, out_path, opts))


@task
def split_dataset(clean_paths: dict[str, str], out_dir: str, seed: int, stratify: str | None = None,
                  policy: SplitPolicy = SplitPolicy()) -> dict[str, str]:
    """Train / val / test files; parts the user gave are kept as they are, missing ones are cut from train
    by the kind's ``policy``: seeded (stratified on column ``stratify`` when given, else by row: a tagged
    table's rows are sentences), grouped (rows sharing the policy's ``group_column`` value stay together), or
    contiguous (the end of the training rows, in order).

    With no val and no test file: 70 / 15 / 15 by default. With one of them given, the other is cut from
    train (15 % of it). A policy with ``test`` 0 makes the validation rows the test rows.
    """
    missing = [part for part in ("val", "test") if part not in clean_paths]
    if not missing:
        return dict(clean_paths)
    shared_test = "test" in missing and not policy.test
    cut = [part for part in missing if not (part == "test" and shared_test)]
    if not cut:  # only the test part is missing, and it is the validation part
        return {**clean_paths, "test": clean_paths["val"]}
    table = pq.read_table(clean_paths["train"])
    fractions = {"val": 0.0, "test": 0.0, **{part: getattr(policy, part) for part in cut}}
    config = SplitConfig(train=1 - sum(fractions.values()), val=fractions["val"], test=fractions["test"], seed=seed)
    if policy.contiguous:
        indices = contiguous_split(table.num_rows, config)
    elif policy.group_column:
        indices = grouped_split(table.column(policy.group_column).to_pylist(), config)
    elif stratify:
        indices = stratified_split(table.column(stratify).to_numpy(), config)
    else:
        indices = split_range(table.num_rows, config)
    parts = dict(zip(("train", "val", "test"), indices))
    out = dict(clean_paths)
    for part in ["train", *cut]:
        out[part] = str(write_parquet_atomic(table.take(pa.array(parts[part])), Path(out_dir) / f"{part}.parquet"))
    if shared_test:
        out["test"] = out["val"]
    return out


@task
def fit_tokenizer(kind_name: str, train_path: str, out_dir: str, options: dict) -> str:
    """Fit the kind's preprocessing on train (vocabularies, token features, label or tag map) as JSON.

    The cleaning is saved with the featurizer (with the stopword list of this machine pinned), so
    prediction cleans and caps texts exactly as training did."""
    kind, opts = kind_and_options(kind_name, options)
    return str(kind.fit(train_path, out_dir, opts))
