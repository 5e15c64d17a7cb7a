"""Plain work behind KafkaBatchConsumeOperator and IonToJsonOperator (no Airflow imports).

``window``: planning exact time windows over partitions; ``envelope``: Kafka records as Ion
envelopes; ``loop``: the consume loops and dead letters; ``ion_json``: streaming Ion to JSON.
"""
