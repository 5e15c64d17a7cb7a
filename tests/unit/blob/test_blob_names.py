"""Azure naming rules for containers, blobs, metadata and tags, checked before any request."""

from __future__ import annotations

import pytest

from airflow_provider_logproc.blob.names import (
    InvalidBlobNameError,
    InvalidUploadOptionError,
    is_part_blob_name,
    manifest_blob_name,
    normalize_access_tier,
    normalize_prefix,
    part_blob_name,
    validate_blob_name,
    validate_container_name,
    validate_metadata,
    validate_tags,
)


@pytest.mark.parametrize("name", ["abc", "logs-2024", "a1b", "0day", "a" * 63, "$root", "$web"])
def test_valid_container_names(name):
    assert validate_container_name(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("ab", "3 to 63"),
        ("a" * 64, "3 to 63"),
        ("Logs", "lowercase"),
        ("-logs", "lowercase letters"),
        ("logs-", "lowercase letters"),
        ("lo--gs", "single hyphens"),
        ("logs_2024", "lowercase letters"),
        ("logs.x", "lowercase letters"),
        ("$other", "lowercase letters"),
    ],
)
def test_invalid_container_names(name, reason):
    with pytest.raises(InvalidBlobNameError, match=reason):
        validate_container_name(name)


@pytest.mark.parametrize(
    "name", ["a", "topic/2024/01/01/part-00000.jsonl", "with space.txt", "ünïcode/名前.json", "a" * 1024,
             "/".join(["s"] * 254), "a.b/c..d"],
)
def test_valid_blob_names(name):
    assert validate_blob_name(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("a" * 1025, "at most 1024"),
        ("/abs/path.jsonl", "starts with '/'"),
        ("../escape.jsonl", r"'\.\.' as path segment 1"),
        ("logs/../other/x.jsonl", r"'\.\.' as path segment 2"),
        ("logs/./x.jsonl", r"'\.' as path segment 2"),
        ("logs//x.jsonl", "empty segment"),
        ("logs\\x.jsonl", "backslash"),
        ("logs/x\n.jsonl", "control character"),
        ("logs/x\x00", "control character"),
        ("logs/dir/", "ends with '/'"),
        ("logs/file.", "ends with '/' or '.'"),
        ("/".join(["s"] * 255), "at most 254"),
    ],
)
def test_invalid_blob_names(name, reason):
    with pytest.raises(InvalidBlobNameError, match=reason):
        validate_blob_name(name)


def test_prefix_normalization_and_part_names():
    assert normalize_prefix("topic/2024/01/01/") == "topic/2024/01/01"
    assert normalize_prefix("") == ""
    with pytest.raises(InvalidBlobNameError, match="prefix"):
        normalize_prefix("topic/../x")
    with pytest.raises(InvalidBlobNameError, match="starts with '/'"):
        normalize_prefix("/topic")
    assert part_blob_name("t/d", 0, gzip=False) == "t/d/part-00000.jsonl"
    assert part_blob_name("t/d", 12, gzip=True) == "t/d/part-00012.jsonl.gz"
    assert part_blob_name("", 3, gzip=False) == "part-00003.jsonl"
    assert manifest_blob_name("t/d") == "t/d/manifest.json"
    assert manifest_blob_name("") == "manifest.json"
    assert is_part_blob_name("t/d", "t/d/part-00001.jsonl")
    assert is_part_blob_name("t/d", "t/d/part-00001.jsonl.gz")
    assert not is_part_blob_name("t/d", "t/d/part-00001.jsonl.tmp")
    assert not is_part_blob_name("t/d", "t/d/sub/part-00001.jsonl")
    assert not is_part_blob_name("t/d", "t/dx/part-00001.jsonl")
    assert is_part_blob_name("", "part-00000.jsonl")


def test_metadata_rules():
    assert validate_metadata({"window": "2024-01-01", "_n": 3}) == {"window": "2024-01-01", "_n": "3"}  # type: ignore[dict-item]
    assert validate_metadata(None) == {}
    for bad in ({"1abc": "x"}, {"a-b": "x"}, {"a": "ü"}, {"a": "x\ny"}, {"Ab": "1", "aB": "2"}, {"a": "x" * 9000}):
        with pytest.raises(InvalidUploadOptionError):
            validate_metadata(bad)


def test_tag_rules():
    assert validate_tags({"topic": "logs", "day": "2024-01-01"}) == {"topic": "logs", "day": "2024-01-01"}
    with pytest.raises(InvalidUploadOptionError, match="at most 10"):
        validate_tags({f"k{i}": "v" for i in range(11)})
    for bad in ({"": "v"}, {"k" * 129: "v"}, {"k": "v" * 257}, {"k!": "v"}, {"k": "v#"}):
        with pytest.raises(InvalidUploadOptionError):
            validate_tags(bad)


def test_access_tiers():
    assert normalize_access_tier("cool") == "Cool"
    assert normalize_access_tier("Archive") == "Archive"
    assert normalize_access_tier(None) is None
    with pytest.raises(InvalidUploadOptionError, match="Hot, Cool, Cold, Archive"):
        normalize_access_tier("P10")
