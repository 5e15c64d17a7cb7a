"""The Batch REST protocol as the local service speaks it: requests, query parameters, answers.

The api-versions it accepts, a parsed request, the OData query parameters, conditional headers and
the shapes of its answers (JSON, empty, created, the Batch error document).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from logproc_local.batch_service import odata
from logproc_local.batch_service.model import BatchApiError, new_etag, rfc1123, utc_now

__all__ = [
    "ACCEPTED_API_VERSIONS",
    "API_VERSION",
    "JSON_CONTENT_TYPE",
    "MAX_BODY_BYTES",
    "BatchRequest",
    "apply_range",
    "check_api_version",
    "check_conditions",
    "created_response",
    "drop_connection",
    "empty_response",
    "error_response",
    "from_mtime",
    "int_query",
    "json_response",
    "paged_response",
    "select_fields",
    "skiptoken",
]

API_VERSION = "2025-06-01"
# Older api-versions that the previous SDK generations send; the subset served here is the same.
ACCEPTED_API_VERSIONS = {API_VERSION, "2024-07-01.20.0", "2024-02-01.19.0", "2023-11-01.18.0", "2023-05-01.17.0"}
JSON_CONTENT_TYPE = "application/json;odata=minimalmetadata"
MAX_BODY_BYTES = 1 << 20
DEFAULT_MAX_RESULTS = 1000


@dataclass
class BatchRequest:
    """One Batch API call, parsed: raw path and query as signed, decoded path parameters."""

    http: web.Request
    operation: str
    params: dict[str, str]
    query: dict[str, str]
    request_id: str

    async def json(self) -> Any:
        raw = await self.http.read()
        if len(raw) > MAX_BODY_BYTES:
            raise BatchApiError(413, "RequestBodyTooLarge", "The request body is too large and exceeds the maximum "
                                                            "permissible limit.", {"MaxLimit": str(MAX_BODY_BYTES)})
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise BatchApiError(400, "InvalidRequestBody", f"The request body is not valid JSON: {exc}") from None


def drop_connection(http: web.Request) -> None:
    """Close the client's connection without an answer (an injected network fault)."""
    transport = http.transport
    if transport is not None:
        transport.abort()


def check_api_version(query: dict[str, str]) -> None:
    """Refuse a request without an api-version this service speaks."""
    version = query.get("api-version")
    if not version:
        raise BatchApiError(400, "MissingRequiredQueryParameter",
                            "A query parameter that's mandatory for this request is not specified.",
                            {"QueryParameterName": "api-version"})
    if version not in ACCEPTED_API_VERSIONS:
        raise BatchApiError(400, "InvalidQueryParameterValue",
                            "Value for one of the query parameters specified in the request URI is invalid.",
                            {"QueryParameterName": "api-version", "QueryParameterValue": version,
                             "Reason": f"the local Batch service speaks {API_VERSION}"})


def check_conditions(request: BatchRequest, etag: str) -> None:
    """Apply the If-Match / If-None-Match headers against the entity's ETag."""
    if_match = request.http.headers.get("If-Match")
    if if_match and if_match != "*" and if_match.strip('"') != etag:
        raise BatchApiError(412, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not "
                                                    "met.")
    if_none_match = request.http.headers.get("If-None-Match")
    if if_none_match and request.http.method == "GET" and if_none_match.strip('"') in (etag, "*"):
        raise BatchApiError(304, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not "
                                                    "met.")


def select_fields(request: BatchRequest) -> list[str] | None:
    """Return the properties that ``$select`` asks for (None: all)."""
    try:
        return odata.parse_select(request.query.get("$select"))
    except odata.ODataError as exc:
        raise BatchApiError(400, "InvalidQueryParameterValue",
                            "Value for one of the query parameters specified in the request URI is invalid.",
                            {"QueryParameterName": "$select", "Reason": str(exc)}) from None


def int_query(request: BatchRequest, name: str, default: int, low: int, high: int) -> int:
    """Read an integer query parameter within ``[low, high]``."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise BatchApiError(400, "InvalidQueryParameterValue",
                            "Value for one of the query parameters specified in the request URI is invalid.",
                            {"QueryParameterName": name, "QueryParameterValue": raw,
                             "Reason": f"must be an integer from {low} to {high}"})
    return value


def skiptoken(request: BatchRequest) -> int:
    """Return the list offset a ``$skiptoken`` (from an ``odata.nextLink``) stands for."""
    token = request.query.get("$skiptoken")
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(token.encode()).decode())
    except ValueError:
        raise BatchApiError(400, "InvalidQueryParameterValue",
                            "Value for one of the query parameters specified in the request URI is invalid.",
                            {"QueryParameterName": "$skiptoken", "QueryParameterValue": token}) from None


def apply_range(content: bytes, ranged: str) -> bytes:
    """Return the part of a file that an ``ocp-range`` header asks for."""
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", ranged.strip())
    if not match:
        raise BatchApiError(400, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct "
                                                       "format.", {"HeaderName": "ocp-range", "HeaderValue": ranged})
    start_text, end_text = match.groups()
    if start_text == "":
        return content[-int(end_text):] if end_text else content
    end = int(end_text) + 1 if end_text else len(content)
    return content[int(start_text):end]


def from_mtime(timestamp: float) -> Any:
    """Return a file's modification time as an aware UTC datetime."""
    import datetime as dt

    return dt.datetime.fromtimestamp(timestamp, dt.UTC)


def json_response(body: dict[str, Any], *, etag: str | None = None, last_modified: Any = None,
          headers: dict[str, str] | None = None) -> web.Response:
    """Answer 200 with a JSON body, its ETag and Last-Modified."""
    response = web.Response(status=200, body=json.dumps(body).encode(), headers=headers or {})
    response.headers["Content-Type"] = JSON_CONTENT_TYPE
    # Every 200 answer carries ETag and Last-Modified (the spec declares them on lists too).
    response.headers["ETag"] = etag or new_etag()
    response.headers["Last-Modified"] = rfc1123(last_modified if last_modified is not None else utc_now())
    return response


def created_response(url: str, etag: str, last_modified: Any) -> web.Response:
    """Answer 201 Created with the new entity's URL."""
    return empty_response(201, url, etag, last_modified)


def empty_response(status: int, data_service_id: str | None = None, etag: str | None = None,
           last_modified: Any = None) -> web.Response:
    """Answer with no body: a status and the headers that identify the entity."""
    response = web.Response(status=status)
    if data_service_id:
        response.headers["DataServiceId"] = data_service_id
        response.headers["Location"] = data_service_id
    if etag:
        response.headers["ETag"] = etag
    if last_modified is not None:
        response.headers["Last-Modified"] = rfc1123(last_modified)
    return response


def error_response(error: BatchApiError, request_id: str, method: str, base_url: str) -> web.Response:
    """Answer with the Batch error document (no body for HEAD and 304)."""
    if error.status == 304 or method == "HEAD":
        response = web.Response(status=error.status, headers=error.headers)
    else:
        body = {"odata.metadata": f"{base_url}/$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors"
                                  "/@Element", **error.body(request_id)}
        response = web.Response(status=error.status, body=json.dumps(body).encode(), headers=error.headers)
        response.headers["Content-Type"] = JSON_CONTENT_TYPE
    return response


def paged_response(request: BatchRequest, documents: list[dict[str, Any]], metadata: str,
                   url: str) -> web.Response:
    """One page of a list answer: $filter, $select, maxresults and an odata.nextLink to go on."""
    try:
        predicate = odata.parse_filter(request.query.get("$filter"))
        select = odata.parse_select(request.query.get("$select"))
    except odata.ODataError as exc:
        name = "$select" if str(exc).startswith("$select") else "$filter"
        raise BatchApiError(400, "InvalidQueryParameterValue",
                            "Value for one of the query parameters specified in the request URI is invalid.",
                            {"QueryParameterName": name, "QueryParameterValue": request.query.get(name, ""),
                             "Reason": str(exc)}) from None
    max_results = int_query(request, "maxresults", DEFAULT_MAX_RESULTS, 1, 1000)
    skip = skiptoken(request)
    matched = [doc for doc in documents if predicate(doc)]
    page = matched[skip: skip + max_results]
    body: dict[str, Any] = {"odata.metadata": metadata,
                            "value": [odata.apply_select(doc, select) for doc in page]}
    if skip + max_results < len(matched):
        next_query = {name: value for name, value in request.query.items() if name != "$skiptoken"}
        next_query["$skiptoken"] = base64.urlsafe_b64encode(str(skip + max_results).encode()).decode()
        body["odata.nextLink"] = f"{url}?{urlencode(next_query, quote_via=quote)}"
    return json_response(body)
