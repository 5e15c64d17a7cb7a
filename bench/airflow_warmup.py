"""What a task's process has loaded before Airflow calls ``execute``; shared by the benchmarks.

A task runs in Airflow's task runner, which has imported itself and loaded the plugins (building
the template context integrates the macro plugins) before the operator starts. Called in a bare
benchmark process, an operator would pay for that start-up on its first connection lookup and first
ObjectStoragePath (~0.5-1 s): a cost of the framework, once per task, not of the work measured.
Benchmarks call ``warm_up_airflow()`` before they start the clock, for our operators and the
official ones alike. Whatever the task runner does not do before ``execute`` (registering the
object-storage filesystems, say) stays inside the measured time.
"""

from __future__ import annotations


def warm_up_airflow() -> None:
    import airflow.sdk.execution_time.task_runner  # noqa: F401
    from airflow.sdk.plugins_manager import integrate_macros_plugins

    integrate_macros_plugins()  # as RuntimeTaskInstance.get_template_context does before execute
