"""Shared fixtures: one Prefect test harness per session, temporary MLflow stores, tiny data."""

from __future__ import annotations

import os

import pytest
import torch

from flows.startup import send_library_logs_to_prefect

# Two cores shared with other jobs: one torch thread avoids spin-wait stalls and keeps tests stable.
torch.set_num_threads(1)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

# As the CLI does, before any test module imports Prefect: library log lines reach the flow runs' logs.
send_library_logs_to_prefect()


def pyfunc_in_a_fresh_process(model_uri: str, tracking_uri: str, cwd, calls: list[tuple[dict, dict | None]],
                              ) -> list[dict]:
    """Load ``model_uri`` with ``mlflow.pyfunc.load_model`` in a new Python process (none of this one's imports
    or state) and predict every ``(input columns, params)`` of ``calls`` there, in one process (each start
    costs seconds of imports): each output frame as ``{column: values}``."""
    import json
    import subprocess
    import sys

    code = ("import json, mlflow, pandas as pd, sys; m = mlflow.pyfunc.load_model(sys.argv[1]); "
            "print(json.dumps([m.predict(pd.DataFrame(f), params=p).to_dict(orient='list') "
            "for f, p in json.loads(sys.argv[2])]))")
    proc = subprocess.run([sys.executable, "-c", code, model_uri, json.dumps(calls)], capture_output=True,
                          text=True, timeout=180, cwd=str(cwd), env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def prefect_harness():
    """The Prefect ephemeral API, started once (about 10 s here) for every flow test. Its start-up limit is
    raised from 30 s to 120 s: on 2 busy cores the server took over 30 s and every flow test errored."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


WORDS = {"sports": ["goal", "match", "coach", "league", "striker"],
         "business": ["stocks", "market", "profit", "shares", "bank"],
         "science": ["nasa", "genome", "planet", "laser", "quantum"]}


def tiny_headlines(n: int, seed: int):
    """Synthetic headlines whose topic words make the class easy to learn."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        topic = list(WORDS)[i % 3]
        words = list(rng.choice(WORDS[topic], size=3)) + ["today", "news"][: int(rng.integers(3))]
        rows.append({"headline": " ".join(rng.permutation(words)).title(), "topic": topic})
    return pd.DataFrame(rows)


def train_tiny(home, model_name: str = "topics", **overrides) -> dict:
    """Run the real training flow on tiny synthetic data into ``home``."""
    from flows.train_flow import train_classifier_flow

    if not (home / "train.csv").exists():
        tiny_headlines(240, 0).to_csv(home / "train.csv", index=False)
    params = dict(train=str(home / "train.csv"), text_col="headline", label_col="topic", model_name=model_name,
                  epochs=6, embedding_dim=16, hidden_dim=16, batch_size=16, lr=1e-2, home=str(home),
                  tracking_uri_override=f"sqlite:///{home / 'mlflow.db'}")
    return train_classifier_flow(**{**params, **overrides})


@pytest.fixture(scope="session")
def trained_classifier(prefect_harness, tmp_path_factory) -> dict:
    """A tiny classifier registered as ``topics@champion`` in a temporary SQLite MLflow store."""
    home = tmp_path_factory.mktemp("seqflow-home")
    result = train_tiny(home)
    return {**result, "home": home}


PEOPLE = [["Peter", "Blackburn"], ["Angela", "Merkel"], ["John"], ["Maria", "Lopez"]]
PLACES = [["Brussels"], ["New", "York"], ["Paris"], ["Berlin"]]
ORGS = [["EU"], ["Reuters"], ["United", "Nations"]]
TEMPLATES = [("PER", "visited", "LOC", "on", "Monday", "."), ("ORG", "said", "PER", "left", "LOC", "."),
             ("PER", "joined", "ORG", "in", "1996", "."), ("The", "ORG", "met", "in", "LOC", "today", ".")]


def tiny_ner_conll(n: int, seed: int) -> str:
    """Synthetic CoNLL-2003 text (``word POS chunk NER``) whose entities come from small name lists."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lines = ["-DOCSTART- -X- -X- O", ""]
    pools = {"PER": PEOPLE, "LOC": PLACES, "ORG": ORGS}
    for i in range(n):
        for slot in TEMPLATES[i % len(TEMPLATES)]:
            if slot in pools:
                name = pools[slot][int(rng.integers(len(pools[slot])))]
                lines += [f"{w} NNP B-NP {'B' if j == 0 else 'I'}-{slot}" for j, w in enumerate(name)]
            else:
                lines.append(f"{slot} XX O O")
        lines.append("")
    return "\n".join(lines) + "\n"


def train_tiny_tagger(home, model_name: str = "ner", **overrides) -> dict:
    """Run the real tagger training flow on tiny synthetic CoNLL data into ``home``."""
    from flows.train_flow import train_tagger_flow

    if not (home / "ner.txt").exists():
        (home / "ner.txt").write_text(tiny_ner_conll(120, 0))
    params = dict(train=str(home / "ner.txt"), format="conll2003", model_name=model_name, epochs=12,
                  embedding_dim=16, hidden_dim=24, batch_size=8, lr=1e-2, subword_buckets=500, home=str(home),
                  tracking_uri_override=f"sqlite:///{home / 'mlflow.db'}")
    return train_tagger_flow(**{**params, **overrides})


@pytest.fixture(scope="session")
def trained_tagger(prefect_harness, tmp_path_factory) -> dict:
    """A tiny NER tagger registered as ``ner@champion`` in a temporary SQLite MLflow store."""
    home = tmp_path_factory.mktemp("seqflow-tag-home")
    result = train_tiny_tagger(home)
    return {**result, "home": home}
