"""A training run's effective configuration (``run_dir/config.json``) and its prepared data
(``run_dir/prepared.json``): ``--resume`` must match the first and reuses the second."""

from __future__ import annotations

import json
from pathlib import Path

from seqmodels.digest import file_digest

CONFIG_FILE, PREPARED_FILE = "config.json", "prepared.json"
# Options that change where a run executes, not what it computes. The tracking URI, the data directory
# and --resume itself are not in the configuration at all.
IGNORED_ON_RESUME = frozenset({"train.device"})
# Options added after runs were started: the value a config.json written before them stands for.
ADDED_LATER = {"nproc": 1}


def run_config(options: dict, inputs: dict[str, str]) -> dict:
    """The flow's effective options plus the SHA-256 of every input file (same path, other data = other run).

    A missing file gets no digest here: ingestion reports it, naming the file."""
    digests = {f"{part}_file_sha256": file_digest(path, 64) if Path(path).is_file() else None
               for part, path in inputs.items()}
    return json.loads(json.dumps({**options, **digests}, default=str))  # JSON types, as it will be read back


def save_run_config(run_dir: Path, config: dict) -> Path:
    """Write ``config.json`` at the start of a new run."""
    path = run_dir / CONFIG_FILE
    path.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")
    return path


def check_resume_config(run_dir: Path, config: dict) -> None:
    """Refuse to resume ``run_dir`` with a configuration other than the one it started with, naming each difference."""
    path = run_dir / CONFIG_FILE
    if not path.exists():
        raise ValueError(f"--resume: {run_dir} has no {CONFIG_FILE} (it was started by an older seqflow), so its "
                         "options cannot be checked against these; start a new run without --resume")
    saved = {**ADDED_LATER, **json.loads(path.read_text(encoding="utf-8"))}
    differences = [f"{key}: {json.dumps(saved.get(key))} -> {json.dumps(config.get(key))}"
                   for key in sorted(set(saved) | set(config))
                   if key not in IGNORED_ON_RESUME and saved.get(key) != config.get(key)]
    if differences:
        raise ValueError(f"--resume: {run_dir} was started with other options ({'; '.join(differences)}); resume "
                         "with the options it was started with, or start a new run without --resume")


def save_prepared(run_dir: Path, splits: dict[str, str], featurizer_dir: str) -> None:
    """Record the run's Parquet splits and fitted featurizer, so a resume reuses them instead of refitting."""
    prepared = {"splits": splits, "featurizer_dir": featurizer_dir}
    (run_dir / PREPARED_FILE).write_text(json.dumps(prepared, indent=2), encoding="utf-8")


def load_prepared(run_dir: Path) -> tuple[dict[str, str], str]:
    """``(splits, featurizer_dir)`` of a run being resumed."""
    path = run_dir / PREPARED_FILE
    if not path.exists():
        raise ValueError(f"--resume: {run_dir} has no {PREPARED_FILE}; its data was never prepared, start a new run")
    prepared = json.loads(path.read_text(encoding="utf-8"))
    return prepared["splits"], prepared["featurizer_dir"]
