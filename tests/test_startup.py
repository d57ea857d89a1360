"""What the CLI sets up before Prefect: library log lines (per-epoch training lines) reach the Prefect UI."""

from __future__ import annotations

import logging


def test_library_log_lines_reach_the_flow_runs_logs_in_prefect(prefect_harness):
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    from flows.startup import _drain_prefect_workers

    @flow
    def logs_like_training() -> None:
        logging.getLogger("seqmodels.training").info("epoch 1  train_loss 0.5000  (a line for this test)")

    flow_run_id = logs_like_training(return_state=True).state_details.flow_run_id
    _drain_prefect_workers()
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200, offset=0)
    assert any("a line for this test" in log.message for log in logs), [log.message for log in logs]
