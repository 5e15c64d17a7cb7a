"""Plain work behind KafkaBatchConsumeOperator and IonToJsonOperator (no Airflow imports).

``envelope``: Kafka records as Ion envelopes (text and binary encodings); ``loop``: the consume
loops, encoders and dead letters; ``parallel``: reading a window's partitions in worker processes;
``ion_json``: streaming Ion to JSON. The window they read is planned in
:mod:`airflow_provider_logproc.kafka.window`.
"""
