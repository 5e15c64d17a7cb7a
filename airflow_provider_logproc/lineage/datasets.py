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
    """Build an OpenLineage (output) dataset for a blob URL, with output statistics when known."""
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
    """Build a Kafka topic dataset, namespaced by its first bootstrap server as the Kafka provider's assets are."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    server = bootstrap_servers.split(",")[0].strip()
    return Dataset(namespace=f"kafka://{server}", name=topic)


def operator_lineage(inputs: list[Any], outputs: list[Any]) -> Any:
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(inputs=inputs, outputs=outputs)


def staging_dataset(uri: str, *, output: bool = False, row_count: int | None = None) -> Any:
    """Build a dataset for a staging file (``file://`` path, or ``abfs://conn@container/path``)."""
    from urllib.parse import urlsplit

    from airflow.providers.common.compat.openlineage.facet import (
        Dataset,
        OutputDataset,
        OutputStatisticsOutputDatasetFacet,
    )

    parts = urlsplit(uri)
    container = parts.netloc.rsplit("@", 1)[-1]  # an ObjectStoragePath URL may name its connection
    namespace = "file" if parts.scheme in ("", "file") else f"{parts.scheme}://{container}"
    if not output:
        return Dataset(namespace=namespace, name=parts.path or "/")
    facets: dict[str, Any] = {}
    if row_count is not None:
        facets["outputStatistics"] = OutputStatisticsOutputDatasetFacet(rowCount=row_count)
    return OutputDataset(namespace=namespace, name=parts.path or "/", outputFacets=facets)


def kafka_window_input(bootstrap_servers: str, topic: str, *, read: int, dead_letters: int) -> Any:
    """Build the input of a topic read for a window: its record count, and whether all decoded."""
    from airflow.providers.common.compat.openlineage.facet import InputDataset
    from openlineage.client.facet_v2 import data_quality_assertions_dataset, data_quality_metrics_input_dataset

    dataset = kafka_dataset(bootstrap_servers, topic)
    assertion = data_quality_assertions_dataset.Assertion(
        assertion="every record decodes", success=dead_letters == 0, expected="0", actual=str(dead_letters),
        description="records that could not be decoded are kept aside as dead letters, not analysed")
    facets: dict[str, Any] = {
        "dataQualityAssertions": data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
            assertions=[assertion])}
    input_facets: dict[str, Any] = {
        "dataQualityMetrics": data_quality_metrics_input_dataset.DataQualityMetricsInputDatasetFacet(
            columnMetrics={}, rowCount=read + dead_letters)}
    return InputDataset(namespace=dataset.namespace, name=dataset.name, facets=facets, inputFacets=input_facets)
