"""Azure Blob Storage naming rules, checked before any request is sent.

Rules from "Naming and Referencing Containers, Blobs, and Metadata" (Microsoft Learn). On top of
Azure's own rules this module refuses blob names that are legal but almost always a mistake in a
pipeline: ``..`` and ``.`` segments, a leading ``/``, empty segments (``a//b``), backslashes and
control characters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

CONTAINER_NAME_MIN = 3
CONTAINER_NAME_MAX = 63
BLOB_NAME_MAX = 1024
BLOB_PATH_SEGMENTS_MAX = 254
METADATA_TOTAL_BYTES_MAX = 8 * 1024
TAGS_MAX = 10
TAG_KEY_MAX = 128
TAG_VALUE_MAX = 256
ACCESS_TIERS = ("Hot", "Cool", "Cold", "Archive")
# Azure's special containers: the root container and the static website container.
SPECIAL_CONTAINERS = frozenset({"$root", "$web", "$logs"})

_CONTAINER_RE = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*")
_METADATA_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TAG_CHARS_RE = re.compile(r"[A-Za-z0-9 +\-./:=_]*")
_CONTROL_CHARS_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
PART_NAME_RE = re.compile(r"part-(\d{5,})\.jsonl(?:\.gz)?")
MANIFEST_NAME = "manifest.json"


class InvalidUploadOptionError(ValueError):
    """An upload option (metadata, tags, access tier, ...) that Azure would refuse."""


class InvalidBlobNameError(InvalidUploadOptionError):
    """A container or blob name that Azure (or this provider) refuses."""


def validate_container_name(name: str) -> str:
    if not isinstance(name, str):
        raise InvalidBlobNameError(f"container name must be a string, got {type(name).__name__}")
    if name in SPECIAL_CONTAINERS:
        return name
    if not CONTAINER_NAME_MIN <= len(name) <= CONTAINER_NAME_MAX:
        raise InvalidBlobNameError(
            f"container name {name!r} is {len(name)} characters long; Azure allows "
            f"{CONTAINER_NAME_MIN} to {CONTAINER_NAME_MAX}"
        )
    if not _CONTAINER_RE.fullmatch(name):
        raise InvalidBlobNameError(
            f"container name {name!r} is not valid: Azure allows only lowercase letters, digits and "
            "single hyphens, starting and ending with a letter or digit"
        )
    return name


def validate_blob_name(name: str, *, what: str = "blob name") -> str:
    """Return ``name`` if Azure (and this provider) accept it; raise InvalidBlobNameError otherwise."""
    if not isinstance(name, str):
        raise InvalidBlobNameError(f"{what} must be a string, got {type(name).__name__}")
    if not name:
        raise InvalidBlobNameError(f"{what} is empty")
    if len(name) > BLOB_NAME_MAX:
        raise InvalidBlobNameError(f"{what} is {len(name)} characters long; Azure allows at most {BLOB_NAME_MAX}")
    if name.startswith("/"):
        raise InvalidBlobNameError(f"{what} {name!r} starts with '/': blob names are relative to the container")
    if "\\" in name:
        raise InvalidBlobNameError(f"{what} {name!r} contains a backslash: use '/' to separate path segments")
    control = _CONTROL_CHARS_RE.search(name)
    if control:
        raise InvalidBlobNameError(
            f"{what} {name!r} contains the control character {control.group()!r} at position {control.start()}"
        )
    if name.endswith(("/", ".")):
        raise InvalidBlobNameError(f"{what} {name!r} ends with '/' or '.', which Azure does not support")
    segments = name.split("/")
    if len(segments) > BLOB_PATH_SEGMENTS_MAX:
        raise InvalidBlobNameError(
            f"{what} {name!r} has {len(segments)} path segments; Azure allows at most {BLOB_PATH_SEGMENTS_MAX}"
        )
    for position, segment in enumerate(segments, start=1):
        if segment in ("", ".", ".."):
            shown = repr(segment) if segment else "an empty segment ('//')"
            raise InvalidBlobNameError(
                f"{what} {name!r} has {shown!s} as path segment {position}: '..', '.' and empty segments "
                "are refused (they do not mean a parent or current directory in Blob Storage)"
            )
    return name


def normalize_prefix(prefix: str) -> str:
    """Return a parts prefix without its trailing '/' ('' = the container's root); checked like a blob name."""
    if not isinstance(prefix, str):
        raise InvalidBlobNameError(f"prefix must be a string, got {type(prefix).__name__}")
    stripped = prefix[:-1] if prefix.endswith("/") else prefix
    if stripped:
        validate_blob_name(stripped, what="prefix")
    return stripped


def part_blob_name(prefix: str, index: int, *, gzip: bool) -> str:
    """``<prefix>/part-00000.jsonl`` (``.jsonl.gz`` with gzip): deterministic, so reruns overwrite."""
    name = f"part-{index:05d}.jsonl{'.gz' if gzip else ''}"
    return f"{prefix}/{name}" if prefix else name


def manifest_blob_name(prefix: str) -> str:
    return f"{prefix}/{MANIFEST_NAME}" if prefix else MANIFEST_NAME


def is_part_blob_name(prefix: str, name: str) -> bool:
    """Tell whether ``name`` is one this provider writes as parts under ``prefix`` (used to find stale parts)."""
    head = f"{prefix}/" if prefix else ""
    return name.startswith(head) and PART_NAME_RE.fullmatch(name[len(head) :]) is not None


def validate_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """Metadata names must be C# identifiers; values travel as HTTP headers, so ASCII only."""
    if not metadata:
        return {}
    result: dict[str, str] = {}
    total = 0
    for key, value in metadata.items():
        if not isinstance(key, str) or not _METADATA_NAME_RE.fullmatch(key):
            raise InvalidUploadOptionError(
                f"metadata name {key!r} is not valid: Azure requires a C# identifier "
                "(letters, digits and '_', not starting with a digit)"
            )
        text = str(value)
        if not text.isascii() or _CONTROL_CHARS_RE.search(text):
            raise InvalidUploadOptionError(
                f"metadata value for {key!r} must be printable ASCII (it is sent as an HTTP header)"
            )
        if key.lower() in (existing.lower() for existing in result):
            raise InvalidUploadOptionError(f"metadata name {key!r} is repeated (names are case-insensitive)")
        total += len(key) + len(text)
        result[key] = text
    if total > METADATA_TOTAL_BYTES_MAX:
        raise InvalidUploadOptionError(f"metadata is {total} bytes; Azure allows at most {METADATA_TOTAL_BYTES_MAX}")
    return result


def validate_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    """Blob index tags: at most 10; keys 1-128 and values 0-256 characters of ``a-zA-Z0-9 +-./:=_``."""
    if not tags:
        return {}
    if len(tags) > TAGS_MAX:
        raise InvalidUploadOptionError(f"{len(tags)} index tags given; Azure allows at most {TAGS_MAX} per blob")
    result: dict[str, str] = {}
    for key, value in tags.items():
        text = str(value)
        if not isinstance(key, str) or not 1 <= len(key) <= TAG_KEY_MAX or not _TAG_CHARS_RE.fullmatch(key):
            raise InvalidUploadOptionError(
                f"index tag key {key!r} is not valid: 1 to {TAG_KEY_MAX} characters of letters, digits, "
                "space and + - . / : = _"
            )
        if len(text) > TAG_VALUE_MAX or not _TAG_CHARS_RE.fullmatch(text):
            raise InvalidUploadOptionError(
                f"index tag value for {key!r} is not valid: at most {TAG_VALUE_MAX} characters of letters, "
                "digits, space and + - . / : = _"
            )
        result[key] = text
    return result


def normalize_access_tier(tier: str | None) -> str | None:
    if tier is None:
        return None
    for known in ACCESS_TIERS:
        if str(tier).lower() == known.lower():
            return known
    raise InvalidUploadOptionError(f"access tier {tier!r} is not one of {', '.join(ACCESS_TIERS)}")
