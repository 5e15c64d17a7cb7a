"""Azure Batch: what the hook, the operator, the sensor and the trigger share, without a server.

``ids`` (deterministic job ids), ``task_specs`` and ``fan_out`` (Batch REST task JSON from the
operator's arguments), ``urls`` (input/output blob URLs and SAS lifetimes), ``sas`` (issuing the
SAS), ``task_collection`` (chunks and per-task add statuses), ``outcome`` (counts and result rules),
``retry`` (transient errors and backoff). The service calls live in
:class:`~airflow_provider_logproc.hooks.batch.AzureBatchJobHook`.
"""
