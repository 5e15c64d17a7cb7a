"""OpenLineage datasets of this provider's steps, named as the OpenLineage naming spec and the official
providers name them: Kafka topics ``kafka://{bootstrap server}`` / ``{topic}``, blobs
``wasbs://{container}@{account}`` / ``{blob name}``.

Used by the operators' ``get_openlineage_facets_on_complete``, which Airflow calls only when the
optional ``apache-airflow-providers-openlineage`` is installed (``pip install
airflow-provider-logproc[openlineage]``); nothing here is imported otherwise.
"""
