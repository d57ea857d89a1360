"""Shared fixtures: one Prefect test harness per session, temporary MLflow stores, tiny data."""

from __future__ import annotations

import os

import pytest
import torch

# Two cores shared with other jobs: one torch thread avoids spin-wait stalls and keeps tests stable.
torch.set_num_threads(1)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session")
def prefect_harness():
    """The Prefect ephemeral API, started once (about 10 s here) for every flow test."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness():
        yield
