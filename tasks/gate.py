"""The promotion gate: which alias a new model version gets, decided by one run at a time per model name.

Both the new version and the champion are scored on the same test rows, none of which either of them
trained on (their ``train_hashes.npy``); neither is promoted unless it beats the majority-class baseline
on those rows. The decision is made under a file lock keyed by tracking URI + model name, and the
champion is read inside it, so two runs of one model name cannot both become champion.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from seqmodels.digest import parquet_text_hashes, read_text_hashes
from seqmodels.kinds import get_kind
from seqmodels.metrics import higher_is_better
from seqmodels.locking import file_lock
from seqmodels.predict import read_model_meta
from tasks.settings import data_dir

CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass(frozen=True)
class GateConfig:
    """``min_rows``: fewest test rows unseen by both models to compare them on (at 50 rows the standard error
    of an accuracy near 0.8 is 5.7 points; fewer rows decide on noise). ``lock_timeout_s``: how long a gate
    waits for another run's gate of the same model name (scoring a champion takes seconds to minutes)."""

    min_rows: int = 50
    lock_timeout_s: float = 3600.0


GATE = GateConfig()


@dataclass(frozen=True)
class GateRequest:
    """A registered version waiting for its alias, and how to score it."""

    model_name: str
    version: str
    model_dir: str
    test_path: str
    metric: str
    task_kind: str
    new_score: float  # the version's ``metric`` on the whole test split (from the evaluation)
    device: str = "auto"


@dataclass(frozen=True)
class GateDecision:
    """The gate's outcome; ``score`` / ``champion_score`` / ``baseline`` are on the same ``rows``."""

    alias: str
    reason: str
    metric: str
    score: float
    champion_score: float | None
    champion_version_before: str | None
    baseline: float
    rows: int
    rows_excluded: int
    basis: str

    def tags(self) -> dict[str, str]:
        """Model-version tags (the names ``gate_score``, ``champion_score_before``, ... are kept)."""
        return {"gate_metric": self.metric, "gate_score": f"{self.score:.6f}",
                "champion_score_before": "none" if self.champion_score is None else f"{self.champion_score:.6f}",
                "champion_version_before": self.champion_version_before or "none", "gate_reason": self.reason,
                "majority_baseline": f"{self.baseline:.6f}", "gate_rows": str(self.rows),
                "gate_rows_excluded": str(self.rows_excluded), "gate_basis": self.basis,
                "gate_decision": self.alias}  # last: its presence means every other gate tag is written

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> "GateDecision":
        """The decision a version's tags record (a retried registration returns it unchanged)."""
        def number(key: str) -> float | None:
            return None if tags[key] == "none" else float(tags[key])

        return cls(alias=tags["gate_decision"], reason=tags["gate_reason"], metric=tags["gate_metric"],
                   score=float(tags["gate_score"]), champion_score=number("champion_score_before"),
                   champion_version_before=None if tags["champion_version_before"] == "none"
                   else tags["champion_version_before"], baseline=float(tags["majority_baseline"]),
                   rows=int(tags["gate_rows"]), rows_excluded=int(tags["gate_rows_excluded"]), basis=tags["gate_basis"])

    def summary(self) -> dict:
        """The closing JSON line's ``gate`` object (old keys kept, new ones added)."""
        return {"metric": self.metric, "score": self.score, "champion_score_before": self.champion_score,
                "champion_version_before": self.champion_version_before, "decision": self.alias,
                "reason": self.reason, "majority_baseline": self.baseline, "rows": self.rows,
                "rows_excluded": self.rows_excluded, "basis": self.basis}


def gate_lock_path(tracking_uri: str, model_name: str, home: str | Path | None = None) -> Path:
    """The lock file of one registered model: ``DATA_DIR/locks/gate-<hash of tracking URI + name>.lock``."""
    key = hashlib.sha256(f"{tracking_uri}\0{model_name}".encode()).hexdigest()[:16]
    return data_dir(str(home) if home else None) / "locks" / f"gate-{key}.lock"


def gate_lock(path: Path, timeout_s: float):
    """Hold an exclusive lock on ``path`` while one gate runs (one host; several hosts need a shared lock service)."""
    return file_lock(path, timeout_s, "the promotion gate")


def current_champion(client, model_name: str, own_version: str) -> str | None:
    """The champion's version, or None (also when it is ``own_version``: a retry after the alias was set)."""
    from mlflow.exceptions import MlflowException

    try:
        version = str(client.get_model_version_by_alias(model_name, CHAMPION).version)
    except MlflowException:
        return None
    return None if version == own_version else version


def champion_model_dir(client, model_name: str, version: str, tmp: str) -> str:
    """Download a registered version and return its model directory (the pyfunc's ``model_dir`` artifact)."""
    import mlflow

    local = mlflow.artifacts.download_artifacts(f"models:/{model_name}/{version}", dst_path=tmp)
    return str(next(Path(local).rglob("model.json")).parent)


def score_model(model_dir: str, rows_path: str, device: str, metric: str, task_kind: str) -> float:
    """A saved model's gate metric on a test file."""
    return get_kind(task_kind).gate_score(model_dir, rows_path, device, metric)


def compared_rows(request: GateRequest, champion_dir: str, tmp: str, config: GateConfig) -> tuple[str, int, int, str]:
    """``(rows file, rows, rows excluded, basis)``: the test rows neither model trained on, or, with a reason,
    the full test split when the champion has no training hashes or too few rows remain."""
    total = pq.read_metadata(request.test_path).num_rows
    champion_hashes = read_text_hashes(champion_dir)
    if champion_hashes is None:
        return (request.test_path, total, 0, "full test split: the champion was registered before seqflow recorded "
                "training-data hashes, so its training rows may be among them (this favours the champion)")
    test_hashes = parquet_text_hashes(request.test_path)
    seen = np.isin(test_hashes, champion_hashes)
    own_hashes = read_text_hashes(request.model_dir)
    if own_hashes is not None:
        seen |= np.isin(test_hashes, own_hashes)
    unseen = np.flatnonzero(~seen)
    if len(unseen) < config.min_rows:
        return (request.test_path, total, 0, f"full test split: only {len(unseen)} of {total} rows are unseen by "
                f"both models (fewer than {config.min_rows}); rows the champion trained on favour it")
    path = Path(tmp) / "gate_rows.parquet"
    pq.write_table(pq.read_table(request.test_path).take(pa.array(unseen)), path)
    return str(path), len(unseen), total - len(unseen), "test rows neither model trained on"


def decide(metric: str, score: float, champion_score: float | None, champion_version: str | None,
           baseline: float, higher: bool | None = None, baseline_name: str = "always predicting the majority class",
           ) -> tuple[str, str]:
    """``(alias, reason)``: champion if it beats the kind's constant baseline (``baseline_name``) and is at
    least as good as the champion.

    ``higher``: whether a larger ``metric`` is better (the task kind says; default from the metric's name).
    """
    higher = higher_is_better(metric) if higher is None else higher

    def beats(a: float, b: float) -> bool:
        return a > b if higher else a < b

    if not beats(score, baseline):
        return CHALLENGER, f"{metric} {score:.4f} is no better than {baseline_name} ({baseline:.4f}); not promoted"
    if champion_score is None:
        return CHAMPION, f"{metric} {score:.4f} beats {baseline_name} ({baseline:.4f}); no champion before"
    if beats(champion_score, score):
        return CHALLENGER, (f"{metric} {score:.4f} is worse than champion v{champion_version}'s {champion_score:.4f} "
                            f"({'higher' if higher else 'lower'} is better)")
    return CHAMPION, (f"{metric} {score:.4f} is as good as or better than champion v{champion_version}'s "
                      f"{champion_score:.4f} ({'higher' if higher else 'lower'} is better)")


def _scores(client, request: GateRequest, champion: str | None, tmp: str,
            config: GateConfig) -> tuple[float, float | None, str, int, int, str]:
    """``(new score, champion score, rows file, rows, rows excluded, basis)``."""
    if champion is None:
        total = pq.read_metadata(request.test_path).num_rows
        return request.new_score, None, request.test_path, total, 0, "full test split (no champion to compare with)"
    champion_dir = champion_model_dir(client, request.model_name, champion, tmp)
    rows_path, rows, excluded, basis = compared_rows(request, champion_dir, tmp, config)
    new = score_model(request.model_dir, rows_path, request.device, request.metric, request.task_kind)
    old = score_model(champion_dir, rows_path, request.device, request.metric, read_model_meta(champion_dir)["task"])
    return new, old, rows_path, rows, excluded, basis


def run_gate(client, request: GateRequest, lock_path: Path, config: GateConfig | None = None) -> GateDecision:
    """Under the model name's lock: read the champion, score both, set the alias and the decision's tags."""
    config = config or GATE
    with gate_lock(lock_path, config.lock_timeout_s), tempfile.TemporaryDirectory() as tmp:
        champion = current_champion(client, request.model_name, request.version)
        score, champion_score, rows_path, rows, excluded, basis = _scores(client, request, champion, tmp, config)
        kind = get_kind(request.task_kind)
        baseline = kind.baseline_score(rows_path, request.metric)
        alias, reason = decide(request.metric, score, champion_score, champion, baseline,
                               kind.higher_is_better(request.metric), kind.baseline_name)
        decision = GateDecision(alias, reason, request.metric, float(score), champion_score, champion,
                                float(baseline), rows, excluded, basis)
        client.set_registered_model_alias(request.model_name, alias, request.version)
        for key, value in decision.tags().items():  # after the alias: a retry finding them has nothing left to do
            client.set_model_version_tag(request.model_name, request.version, key, value)
    return decision
