"""AzureBatchJobHook's service calls against the local Batch service, with faults injected at the server.

The operator and the sensor tests drive these calls through whole runs; here each call's own
contract: idempotent job creation and task adding (a lost answer never makes a second job or a
duplicate task), the pool check, counts, outcome, terminate and delete.
"""

from __future__ import annotations

import sys
import time

import pytest
from airflow.providers.common.compat.sdk import AirflowException

from airflow_provider_logproc.hooks.batch import AzureBatchJobHook

pytestmark = pytest.mark.integration

POOL = "local-pool"


def job(job_id: str) -> dict:
    return {"id": job_id, "poolInfo": {"poolId": POOL}, "onAllTasksComplete": "noaction"}


def task(task_id: str, code: str = "pass") -> dict:
    return {"id": task_id, "commandLine": f"{sys.executable} -c '{code}'"}


@pytest.fixture
def hook(batch_reset) -> AzureBatchJobHook:
    return AzureBatchJobHook()


def test_a_job_is_created_once_even_when_the_answer_is_lost(hook, batch_reset, batch_job_id) -> None:
    batch_reset.faults.add(drop="after", operation="Jobs_CreateJob", count=1)
    # The first POST creates the job and loses the answer: the hook looks, finds it, and says "existed".
    assert hook.create_job_if_absent(job(batch_job_id)) is False
    assert batch_reset.request_log.count(operation="Jobs_CreateJob") == 1  # looked, did not POST again
    assert hook.create_job_if_absent(job(batch_job_id)) is False  # a retried Airflow task
    assert hook.get_job(batch_job_id) is not None
    assert hook.get_job("no-such-job") is None


def test_adding_tasks_twice_or_after_lost_answers_leaves_each_task_once(hook, batch_reset, batch_job_id) -> None:
    assert hook.create_job_if_absent(job(batch_job_id)) is True
    specs = [task(f"t{index:03d}") for index in range(150)]  # two collections: 100 + 50
    batch_reset.faults.add(drop="after", operation="Tasks_CreateTaskCollection", count=1)
    batch_reset.faults.add(status=503, operation="Tasks_CreateTaskCollection", count=1, retry_after=1)
    hook.add_tasks(batch_job_id, specs, sleep=lambda _: None)
    hook.add_tasks(batch_job_id, specs[:10], sleep=lambda _: None)  # a retried Airflow task re-adds
    assert hook.existing_task_ids(batch_job_id) == {spec["id"] for spec in specs}


def test_rejected_tasks_fail_naming_them(hook, batch_reset, batch_job_id) -> None:
    hook.create_job_if_absent(job(batch_job_id))
    with pytest.raises(AirflowException, match=r"1 task\(s\) rejected: bad id"):
        hook.add_tasks(batch_job_id, [task("ok"), {"id": "bad id", "commandLine": "true"}], sleep=lambda _: None)


def test_the_pool_must_exist(hook) -> None:
    hook.check_pool(POOL)
    with pytest.raises(AirflowException, match="Batch pool 'nope' does not exist"):
        hook.check_pool("nope")


def test_counts_outcome_and_the_failed_tasks_logs(hook, batch_reset, batch_job_id, caplog, capsys) -> None:
    hook.create_job_if_absent(job(batch_job_id))
    hook.add_tasks(batch_job_id, [task("good"), task("bad", "import sys; print(42, file=sys.stderr); sys.exit(3)")])
    hook.enable_auto_terminate(batch_job_id)
    deadline = time.monotonic() + 60
    while hook.get_task_counts(batch_job_id)["completed"] < 2:
        assert time.monotonic() < deadline, "the tasks did not complete"
        time.sleep(0.2)
    assert hook.get_task_counts(batch_job_id) == {"active": 0, "running": 0, "completed": 2, "succeeded": 1,
                                                  "failed": 1}
    outcome = hook.read_outcome(batch_job_id)
    assert [(t.id, t.exit_code) for t in outcome.tasks] == [("bad", 3), ("good", 0)]
    with caplog.at_level("INFO"), pytest.raises(AirflowException, match=r"1 of 2 task\(s\) failed: bad \(exit code 3"):
        hook.check_outcome(outcome)
    assert "42" in hook.task_file_tail(batch_job_id, "bad", "stderr.txt")
    # Airflow 3 logs through structlog (captured output), Airflow 2 through logging (caplog).
    assert "Batch task bad stderr.txt (tail):\n42" in caplog.text + capsys.readouterr().out


def test_terminate_and_delete(hook, batch_reset, batch_job_id) -> None:
    hook.create_job_if_absent(job(batch_job_id))
    hook.add_tasks(batch_job_id, [task("slow", "import time; time.sleep(30)")])
    hook.terminate_job(batch_job_id, "test over", wait=True)
    assert hook.get_job_state(batch_job_id) == "completed"
    hook.terminate_job(batch_job_id, "again", wait=True)  # a finished job is left as it is
    hook.delete_job(batch_job_id)
    deadline = time.monotonic() + 30
    while hook.get_job(batch_job_id) is not None:
        assert time.monotonic() < deadline, "the job was not deleted"
        time.sleep(0.2)
