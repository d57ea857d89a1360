"""``--resume``: the same configuration continues on the same split and vocabulary; another one is refused."""

from pathlib import Path

import pytest

from conftest import train_tiny


@pytest.fixture(scope="module")
def interrupted_run(prefect_harness, tmp_path_factory):
    """A finished tiny run made to look interrupted (its DONE marker removed), beside its options."""
    home = tmp_path_factory.mktemp("resume-home")
    options = dict(model_name="resumable", epochs=2, embedding_dim=8, hidden_dim=8)
    result = train_tiny(home, **options)
    run_dir = Path(result["run_dir"])
    (run_dir / "DONE").unlink()
    return home, options, run_dir


def test_resume_with_another_seed_is_refused_naming_the_difference(interrupted_run):
    home, options, run_dir = interrupted_run
    with pytest.raises(ValueError, match=r"seed: 42 -> 7") as error:
        train_tiny(home, **options, seed=7, resume=True)
    assert str(run_dir) in str(error.value)
    assert not (run_dir / "DONE").exists()


def test_resume_with_the_same_options_reuses_split_and_vocabulary(interrupted_run):
    home, options, run_dir = interrupted_run
    (run_dir / "DONE").unlink(missing_ok=True)
    kept = [run_dir / "splits" / "train.parquet", run_dir / "splits" / "test.parquet", run_dir / "featurizer" / "vocab.json"]
    before = {path: path.stat().st_mtime_ns for path in kept}
    result = train_tiny(home, **options, resume=True, device="cpu")  # the device does not change the result
    assert result["run_dir"] == str(run_dir)
    assert {path: path.stat().st_mtime_ns for path in kept} == before


def test_resume_of_a_run_without_a_recorded_configuration_is_refused(prefect_harness, tmp_path):
    """A run directory from before ``config.json`` existed cannot be checked, so it is not resumed."""
    old = tmp_path / "runs" / "older" / "20260101-000000"
    (old / "checkpoints").mkdir(parents=True)
    (old / "checkpoints" / "last.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="has no config.json"):
        train_tiny(tmp_path, model_name="older", resume=True)
