"""Plain work behind KafkaBatchConsumeOperator and IonToJsonOperator (no Airflow imports).

``window``: planning exact time windows over partitions; ``envelope``: Kafka records as Ion
envelopes (text and binary encodings); ``loop``: the consume loops, encoders and dead letters;
``parallel``: reading a window's partitions in worker processes; ``ion_json``: streaming Ion to JSON.
"""
