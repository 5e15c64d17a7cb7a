"""What the provider knows about Kafka itself, with no Airflow operator in it.

``config``: the librdkafka config of a ``kafka`` connection (the one place that reads it);
``window``: planning an exact time window over partitions (offsets to read, where to stop);
``progress``: how far each partition's stream has got past a window (the sensor's check).
"""
