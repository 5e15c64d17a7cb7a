"""SharedKey authentication of Batch requests, computed the way the Batch service verifies it.

The string to sign (Azure Batch "Shared Key" scheme, as the azure-batch SDKs build it)::

    VERB\n
    Content-Encoding\n Content-Language\n Content-Length\n Content-MD5\n Content-Type\n Date\n
    If-Modified-Since\n If-Match\n If-None-Match\n If-Unmodified-Since\n Range\n
    ocp-header-1:value\n ...            (every ``ocp-*`` header, lower-cased names, sorted)
    /{account}{raw URL path}
    \n{query-name}:{decoded value}      (every query parameter, sorted by name)

A POST/PUT/PATCH/DELETE without a Content-Length signs "0". The signature is
``base64(HMAC-SHA256(base64decode(key), utf8(string_to_sign)))`` in
``Authorization: SharedKey {account}:{signature}``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email.utils
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs

# The service refuses signed requests whose date is further than this from its clock (replays).
MAX_CLOCK_SKEW = dt.timedelta(minutes=15)

SIGNED_HEADERS = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)


def string_to_sign(method: str, raw_path: str, raw_query: str, headers: Mapping[str, str], account_name: str) -> str:
    """Build the canonical string a SharedKey signature covers (see the module docstring)."""
    lowered = {name.lower(): value for name, value in headers.items() if value}
    if method.upper() not in ("GET", "HEAD"):
        lowered.setdefault("content-length", "0")
    parts = [method.upper(), *(lowered.get(name, "") for name in SIGNED_HEADERS)]
    text = "\n".join(parts) + "\n"
    ocp_headers = sorted((name, value) for name, value in lowered.items() if name.startswith("ocp-"))
    text += "".join(f"{name}:{value}\n" for name, value in ocp_headers)
    text += f"/{account_name}{raw_path}"
    query = parse_qs(raw_query)
    for name in sorted(query):
        value = query[name][0]
        if value:
            text += f"\n{name}:{value}"
    return text


def sign(account_key: str, text: str) -> str:
    key = base64.b64decode(account_key)
    return base64.b64encode(hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()).decode("ascii")


def valid_account_key(account_key: str) -> bool:
    try:
        return bool(base64.b64decode(account_key, validate=True))
    except (binascii.Error, ValueError):
        return False


@dataclass(frozen=True)
class AuthFailure:
    """Why a request was refused: HTTP status, Batch error code, and a detail for the error body."""

    status: int
    code: str
    detail: str


def verify(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    account_name: str,
    account_key: str,
    now: dt.datetime | None = None,
) -> AuthFailure | None:
    """None when the request carries a valid SharedKey signature for this account, else why not.

    The detail never contains the key or the expected signature (only what the client sent).
    """
    authorization = next((value for name, value in headers.items() if name.lower() == "authorization"), None)
    if not authorization:
        return AuthFailure(401, "AuthenticationFailed", "The Authorization header is missing.")
    scheme, _, credentials = authorization.partition(" ")
    if scheme != "SharedKey" or ":" not in credentials:
        return AuthFailure(
            401, "AuthenticationFailed",
            "The Authorization header is not in the form 'SharedKey {account}:{signature}' "
            "(this local service supports only SharedKey).",
        )
    claimed_account, _, signature = credentials.strip().partition(":")
    if claimed_account != account_name:
        return AuthFailure(
            403, "AuthenticationFailed",
            f"The account '{claimed_account}' in the Authorization header is not this account.",
        )
    expected = sign(account_key, string_to_sign(method, raw_path, raw_query, headers, account_name))
    if not hmac.compare_digest(expected, signature):
        return AuthFailure(
            403, "AuthenticationFailed",
            f"The MAC signature found in the HTTP request '{signature}' is not the same as any computed signature.",
        )
    return _check_date(headers, now or dt.datetime.now(dt.UTC))


def _check_date(headers: Mapping[str, str], now: dt.datetime) -> AuthFailure | None:
    lowered = {name.lower(): value for name, value in headers.items()}
    stamp = lowered.get("ocp-date") or lowered.get("date")
    if not stamp:
        return AuthFailure(403, "AuthenticationFailed", "The request has neither an ocp-date nor a Date header.")
    try:
        sent = email.utils.parsedate_to_datetime(stamp)
    except (TypeError, ValueError):
        sent = None
    if sent is None or sent.tzinfo is None:
        return AuthFailure(403, "AuthenticationFailed", f"The request date {stamp!r} is not an RFC 1123 date.")
    if abs(now - sent) > MAX_CLOCK_SKEW:
        return AuthFailure(403, "AuthenticationFailed",
                           f"Request date header too old or too new: {stamp!r} (server time "
                           f"{email.utils.format_datetime(now, usegmt=True)}).")
    return None
