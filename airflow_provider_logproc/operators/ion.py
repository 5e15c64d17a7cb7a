"""IonToJsonOperator: stream an Ion file (usually KafkaBatchConsumeOperator's output) to JSON."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, ObjectStoragePath

from airflow_provider_logproc import staging
from airflow_provider_logproc.consume.ion_json import OUTPUT_FORMATS, convert_ion_to_json
from airflow_provider_logproc.consume.ion_split import convert_ion_file_to_json
from airflow_provider_logproc.consume.ion_values import resolve_timezone
from airflow_provider_logproc.consume.record_validation import make_validator
from airflow_provider_logproc.version_compat import push_xcoms

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

INVALID_SUFFIX = "invalid.jsonl"


class IonToJsonOperator(BaseOperator):
    """
    Convert an Ion file to JSON lines (default) or one JSON array and return the output URI.

    Streams in constant memory with amazon-ion's C extension (bare value model) and orjson.
    A local Ion file written as JSON lines is cut into slices at top-level values and converted
    on every usable core (``workers``); the output is the same bytes as one pass.
    Timestamps become ISO 8601 strings in ``timezone``, blobs base64 strings, decimals JSON
    numbers with the same digits; annotations are dropped unless ``keep_annotations`` (then a value
    becomes ``{"$annotations": [...], "$value": ...}``).

    Corrupt Ion fails the task with the record index and byte position, and nothing is left at the
    output URI (the output is written beside it and moved into place only when complete).

    XCom: the return value is the output URI; keys ``record_count``, ``invalid_count`` and
    ``invalid_uri`` (None when there were none).

    :param source_uri: the Ion file (templated; usually ``{{ ti.xcom_pull(task_ids='consume') }}``).
    :param output_uri: where to write; default ``<staging base>/<dag_id>/<task_id>/<data
        interval>/raw.jsonl`` (``.json`` for an array).
    :param staging_base: base for the default output URI (default env ``LOGPROC_STAGING_BASE``).
    :param output_format: ``jsonl`` or ``json_array``.
    :param unwrap_value: write each envelope's ``value`` (the log record itself) rather than the
        whole envelope; a top-level value that is not an envelope is counted as invalid.
    :param timezone: IANA time zone for timestamps (default UTC).
    :param keep_annotations: keep Ion annotations (see above).
    :param validate_records: ``False``; ``True`` for the access-log fields (timestamp, client_ip,
        method, path, status, see ``LOG_RECORD_FIELDS``); a list of required fields; or
        ``{field: json type or types}``; failing records go to ``<output stem>.invalid.jsonl`` with the reason, counted.
    :param workers: processes for a local source written as JSON lines (default: the usable CPUs;
        1 converts in this process only).
    """

    template_fields: Sequence[str] = ("source_uri", "output_uri", "staging_base")
    ui_color = "#f3ecf8"

    def __init__(
        self,
        *,
        source_uri: str,
        output_uri: str | None = None,
        staging_base: str | None = None,
        output_format: str = "jsonl",
        unwrap_value: bool = True,
        timezone: str = "UTC",
        keep_annotations: bool = False,
        validate_records: bool | Sequence[str] | Mapping[str, str | Sequence[str]] = False,
        workers: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output_format must be one of {', '.join(OUTPUT_FORMATS)}, not {output_format!r}")
        resolve_timezone(timezone)  # fail at DAG parse time, not at run time
        make_validator(validate_records)
        self.source_uri = source_uri
        self.output_uri = output_uri
        self.staging_base = staging_base
        self.output_format = output_format
        self.unwrap_value = unwrap_value
        self.timezone = timezone
        self.keep_annotations = keep_annotations
        self.validate_records = validate_records
        self.workers = workers

    def _output_path(self, context: Context) -> ObjectStoragePath:
        if self.output_uri:
            return staging.as_path(self.output_uri)
        filename = "raw.jsonl" if self.output_format == "jsonl" else "raw.json"
        label = staging.interval_label(context.get("data_interval_start"), context.get("data_interval_end"))
        return staging.default_uri(dag_id=self.dag_id, task_id=self.task_id, label=label, filename=filename,
                                   base=self.staging_base)

    def execute(self, context: Context) -> str:
        if not self.source_uri or self.source_uri == "None":
            raise ValueError(f"source_uri is empty ({self.source_uri!r}): did the upstream task return a URI?")
        source = staging.as_path(self.source_uri)
        if not staging.exists(source):
            raise FileNotFoundError(f"source_uri {source} does not exist")
        output = self._output_path(context)
        invalid_path = staging.sibling(output, INVALID_SUFFIX)
        started = time.monotonic()
        options: dict[str, Any] = {"unwrap_value": self.unwrap_value, "timezone": self.timezone,
                   "keep_annotations": self.keep_annotations, "validate_records": self.validate_records}
        with staging.atomic_write(output) as out, staging.atomic_write(invalid_path) as invalid:
            local_source = staging.local_file(source)
            if local_source is not None and self.output_format == "jsonl":
                result = convert_ion_file_to_json(str(local_source), out.write, invalid.write, workers=self.workers,
                                                  source_name=str(source), logger=self.log, **options)
            else:
                with source.open("rb") as handle:
                    result = convert_ion_to_json(handle, out.write, invalid.write, output_format=self.output_format,
                                                 source_name=str(source), **options)
        if not result.invalid_count:
            staging.remove_if_exists(invalid_path)  # an empty file says nothing; also clears an old run's
        elapsed = time.monotonic() - started
        self.log.info("converted %d records (%d invalid) from %s to %s in %.1f s (%.0f records/s)",
                      result.record_count, result.invalid_count, source, output, elapsed,
                      result.record_count / elapsed if elapsed else 0)
        if result.invalid_count:
            self.log.warning("%d records failed validation; kept in %s", result.invalid_count, invalid_path)
        push_xcoms(context["ti"], record_count=result.record_count, invalid_count=result.invalid_count,
                   invalid_uri=str(invalid_path) if result.invalid_count else None)
        return str(output)


__all__ = ["IonToJsonOperator"]
