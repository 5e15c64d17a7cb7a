"""Dataset builders for OpenLineage (imports the openlineage provider's facets: call only from
``get_openlineage_facets_on_*`` methods)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def blob_location(url: str) -> tuple[str, str, str]:
    """``(account, container, blob name)`` of a blob URL (Azure, or emulator-style with the account in the path)."""
    from azure.storage.blob import BlobClient

    client = BlobClient.from_blob_url(url.split("?", 1)[0])
    return str(client.account_name), str(client.container_name), str(client.blob_name)


def blob_dataset(url: str, *, output: bool = False, row_count: int | None = None, size: int | None = None) -> Any:
    """An OpenLineage (output) dataset for a blob URL, with output statistics when known."""
    from airflow.providers.common.compat.openlineage.facet import (
        Dataset,
        OutputDataset,
        OutputStatisticsOutputDatasetFacet,
    )

    account, container, name = blob_location(url)
    namespace = f"wasbs://{container}@{account}"
    if not output:
        return Dataset(namespace=namespace, name=name)
    facets: dict[str, Any] = {}
    if row_count is not None or size is not None:
        facets["outputStatistics"] = OutputStatisticsOutputDatasetFacet(rowCount=row_count, size=size)
    return OutputDataset(namespace=namespace, name=name, outputFacets=facets)


def blob_datasets(urls: Iterable[str]) -> list[Any]:
    return [blob_dataset(url) for url in urls]


def kafka_dataset(bootstrap_servers: str, topic: str) -> Any:
    """A Kafka topic, namespaced by its first bootstrap server as the Kafka provider's assets are."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    server = bootstrap_servers.split(",")[0].strip()
    return Dataset(namespace=f"kafka://{server}", name=topic)


def operator_lineage(inputs: list[Any], outputs: list[Any]) -> Any:
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(inputs=inputs, outputs=outputs)
