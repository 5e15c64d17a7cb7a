"""Which JSON keys hold the fields: found in the first records, for files written by common shippers.

Each logical field has a list of candidate keys, as the shippers name them (checked against their
documentation, 2026-12):

* the project's sample logs: ``timestamp``, ``client_ip``, ``status``, ``method``, ``path``, ...
* Elastic Common Schema (Filebeat, Elastic Agent, Logstash ECS mode, ecs-logging): ``@timestamp``,
  ``client.ip`` / ``source.ip``, ``http.response.status_code``, ``http.request.method``,
  ``url.path`` / ``url.original``, ``user_agent.original``, ``http.response.body.bytes``,
  ``event.duration`` (nanoseconds), ``service.name``; written as nested objects or dotted keys;
* nginx ``log_format ... escape=json`` with the variables' names: ``time_iso8601`` / ``time_local``
  / ``msec``, ``remote_addr``, ``status`` (often a string), ``request_method``, ``request_uri`` /
  ``uri``, ``body_bytes_sent``, ``request_time`` (seconds), ``http_user_agent``;
* Fluent Bit and generic shapes: ``time``, ``ts``, ``ip``, ``host``, ``clientip``, ``client_ip``;
* Azure Application Gateway / Front Door access logs as diagnostic settings write them (``time``,
  ``properties.clientIP`` / ``clientIp``, ``httpStatus`` / ``httpStatusCode``, ``httpMethod``,
  ``requestUri``, ``userAgent``, ``sentBytes`` / ``responseBytes``, ``timeTaken`` in seconds: v2
  gateways and Front Door; the v1 gateway, retired in 2026, wrote milliseconds) and as Log Analytics
  exports them (``TimeGenerated``, ``ClientIp``, ``HttpStatus``, ...);
* AWS ALB fields as Athena and most JSON converters name them: ``time``, ``client_ip``,
  ``elb_status_code``, ``request_verb``, ``request_url``, ``user_agent``, ``sent_bytes``,
  ``target_processing_time`` (seconds).

For each field the candidate whose values are usable (a timestamp that parses, a valid IP address, a
status 100-599, a text, a size, a number) in the most sampled records wins; ties go to the earlier
candidate in the list. A key given with ``--field`` is taken as given. The result says, per field,
which key was chosen and why, and for a required field found nowhere which keys were looked for and
which keys the records had, so the summary and the report can show it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from logproc_analyzer.fields import (
    KEY_FIELDS,
    REQUIRED_FIELDS,
    FieldError,
    FieldMapping,
    field_value,
    key_paths,
    parse_client_ip,
    parse_status,
    parse_timestamp_ms,
)

SAMPLE_RECORDS = 1000
KEYS_SEEN_LIMIT = 40

# (key, latency unit) for the latency field; plain keys for the others. Order = preference on ties.
CANDIDATES: dict[str, tuple[str, ...]] = {
    "timestamp": ("timestamp", "@timestamp", "time", "ts", "time_iso8601", "timeStamp", "TimeGenerated",
                  "datetime", "date", "time_local", "msec"),
    "client_ip": ("client_ip", "client.ip", "source.ip", "remote_addr", "clientip", "clientIP", "clientIp",
                  "ClientIp", "properties.clientIP", "properties.clientIp", "ip", "remote_ip", "host",
                  "c-ip"),
    "status": ("status", "http.response.status_code", "status_code", "statusCode", "httpStatus",
               "httpStatusCode", "HttpStatus", "elb_status_code", "properties.httpStatus",
               "properties.httpStatusCode", "sc-status", "response"),
    "method": ("method", "http.request.method", "request_method", "httpMethod", "HttpMethod",
               "properties.httpMethod", "request_verb", "verb", "cs-method"),
    "path": ("path", "url.path", "url.original", "request_uri", "uri", "requestUri", "RequestUri",
             "properties.requestUri", "request_url", "url", "cs-uri-stem"),
    "bytes": ("bytes", "http.response.body.bytes", "body_bytes_sent", "bytes_sent", "sentBytes", "SentBytes",
              "properties.sentBytes", "responseBytes", "properties.responseBytes", "sent_bytes",
              "response_bytes", "size", "sc-bytes"),
    "user_agent": ("user_agent", "user_agent.original", "http_user_agent", "userAgent", "UserAgent",
                   "properties.userAgent", "agent", "useragent", "cs(User-Agent)"),
    "source": ("source", "service.name", "service", "app"),
}
LATENCY_CANDIDATES: tuple[tuple[str, str], ...] = (
    ("latency_ms", "ms"), ("duration_ms", "ms"), ("response_time_ms", "ms"), ("event.duration", "ns"),
    ("request_time", "s"), ("timeTaken", "s"), ("properties.timeTaken", "s"), ("TimeTaken", "s"),
    ("target_processing_time", "s"), ("time-taken", "ms"),
)


def _usable_timestamp(value: Any) -> bool:
    try:
        parse_timestamp_ms(value)
    except FieldError:
        return False
    return True


def _usable_ip(value: Any) -> bool:
    try:
        parse_client_ip(value)
    except FieldError:
        return False
    return True


def _usable_status(value: Any) -> bool:
    try:
        parse_status(value)
    except FieldError:
        return False
    return True


def _usable_text(value: Any) -> bool:
    return isinstance(value, str)


def _usable_size(value: Any) -> bool:
    if isinstance(value, str):
        return value.isascii() and value.isdigit()
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _usable_number(value: Any) -> bool:
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return isinstance(value, int | float) and not isinstance(value, bool)


_USABLE = {"timestamp": _usable_timestamp, "client_ip": _usable_ip, "status": _usable_status,
           "method": _usable_text, "path": _usable_text, "user_agent": _usable_text, "source": _usable_text,
           "bytes": _usable_size, "latency_ms": _usable_number}


def record_of(value: Any) -> dict[str, Any] | None:
    """Return the log record in a decoded JSON line: the object itself, or a Kafka envelope's object value."""
    if not isinstance(value, dict):
        return None
    if "value" in value and "topic" in value and "offset" in value and isinstance(value["value"], dict):
        return value["value"]
    return value


def detect_mapping(records: Iterable[Mapping[str, Any]], explicit: Mapping[str, str] | None = None
                   ) -> tuple[FieldMapping, dict[str, Any]]:
    """Detect the mapping for these sample records, with the record of how it was chosen.

    ``explicit``: overrides from ``--field`` (field -> key, and perhaps latency_unit), always taken as
    given. A field no candidate is usable for keeps its default key; for a required one the record
    says what was looked for and which keys the records had.
    """
    explicit = dict(explicit or {})
    sample = [dict(record) for record in records]
    # Only keys some record has are worth scoring: most candidates are absent from any one shape.
    present: set[str] = set()
    for record in sample:
        present.update(key_paths(record, depth=8))
    chosen: dict[str, str] = {}
    fields_info: dict[str, dict[str, Any]] = {}
    default = FieldMapping()
    for name in KEY_FIELDS:
        if name in explicit:
            chosen[name] = explicit[name]
            fields_info[name] = {"key": explicit[name], "how": "explicit"}
            continue
        options: tuple[tuple[str, str | None], ...] = (
            LATENCY_CANDIDATES if name == "latency_ms" else tuple((key, None) for key in CANDIDATES[name]))
        usable = _USABLE[name]
        scores = [(sum(1 for record in sample if usable(field_value(record, key))) if key in present else 0,
                   key, unit) for key, unit in options]
        best_score = max((score for score, _key, _unit in scores), default=0)
        if best_score == 0:
            key = getattr(default, name)
            info: dict[str, Any] = {"key": key, "how": "not found" if name in REQUIRED_FIELDS else "absent"}
            if name in REQUIRED_FIELDS:
                info["looked_for"] = [key for key, _unit in options]
            fields_info[name] = info
            chosen[name] = key
            continue
        score, key, unit = next(item for item in scores if item[0] == best_score)
        chosen[name] = key
        info = {"key": key, "how": "detected", "usable_in": score}
        others = [other for other_score, other, _unit in scores if other_score and other != key]
        if others:
            info["also_usable"] = others
        if unit is not None and "latency_unit" not in explicit:
            chosen["latency_unit"] = unit
            info["unit"] = unit
        fields_info[name] = info
    if "latency_unit" in explicit:
        chosen["latency_unit"] = explicit["latency_unit"]
        fields_info["latency_ms"]["unit"] = explicit["latency_unit"]
    mapping = FieldMapping().with_overrides(chosen)
    fields_info["latency_ms"].setdefault("unit", mapping.latency_unit)
    missing = [name for name in REQUIRED_FIELDS if fields_info[name]["how"] == "not found"]
    seen: Counter[str] = Counter()
    if missing:
        for record in sample:
            seen.update(key_paths(record))
    detection: dict[str, Any] = {
        "method": "detected from the first records" if sample else "no JSON records in the sample",
        "sampled_records": len(sample),
        "fields": fields_info,
    }
    if missing:
        detection["keys_seen"] = [key for key, _n in seen.most_common(KEYS_SEEN_LIMIT)]
        detection["problem"] = not_found_message(missing, fields_info, detection["keys_seen"], len(sample))
    return mapping, detection


def not_found_message(missing: list[str], fields_info: Mapping[str, Mapping[str, Any]], keys_seen: list[str],
                      sampled: int) -> str:
    parts = [f"{name} (looked for {', '.join(fields_info[name]['looked_for'])})" for name in missing]
    return (f"no usable key for {'; '.join(parts)} in the first {sampled} JSON records, whose keys were "
            f"{', '.join(keys_seen) or 'none'}; name it with --field FIELD=KEY")


def explicit_detection(mapping: FieldMapping, explicit: Mapping[str, str]) -> dict[str, Any]:
    """Describe a mapping that was not detected (``--no-detect`` or the library default)."""
    return {
        "method": "given" if explicit else "default",
        "fields": {name: {"key": getattr(mapping, name), "how": "explicit" if name in explicit else "default"}
                   for name in KEY_FIELDS} | {"latency_ms": {
                       "key": mapping.latency_ms, "unit": mapping.latency_unit,
                       "how": "explicit" if "latency_ms" in explicit else "default"}},
    }
