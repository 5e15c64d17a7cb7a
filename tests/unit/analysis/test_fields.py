"""Field extraction: timestamps to UTC epoch ms, IP validation, status codes, field mapping."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logproc_analyzer.fields import (
    FieldError,
    FieldMapping,
    iso_prefix_minute,
    iso_seconds_valid,
    iso_tail_offset,
    parse_client_ip,
    parse_status,
    parse_timestamp_ms,
)


def _ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, *,
        tz: dt.tzinfo = dt.UTC) -> int:
    return int(dt.datetime(year, month, day, hour, minute, second, tzinfo=tz).timestamp() * 1000)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-24T14:03:22.123Z", _ms(2026, 11, 24, 14, 3, 22) + 123),
        ("2026-11-24T14:03:22Z", _ms(2026, 11, 24, 14, 3, 22)),
        ("2026-11-24T23:03:22.5+09:00", _ms(2026, 11, 24, 14, 3, 22) + 500),
        ("2026-11-24T09:03:22.123456-05:00", _ms(2026, 11, 24, 14, 3, 22) + 123),
        ("2026-11-24T14:03:22+0000", _ms(2026, 11, 24, 14, 3, 22)),
        ("2026-11-24T19:33:22+05:30", _ms(2026, 11, 24, 14, 3, 22)),
        ("2026-11-24 14:03:22", _ms(2026, 11, 24, 14, 3, 22)),  # no zone: UTC
        ("2026-11-24T14:03", _ms(2026, 11, 24, 14, 3)),
        ("2026-11-25T00:30:00+01:00", _ms(2026, 11, 24, 23, 30)),  # crosses the date line
        ("24/Nov/2026:14:03:22 +0000", _ms(2026, 11, 24, 14, 3, 22)),
        ("24/Nov/2026:07:03:22 -0700", _ms(2026, 11, 24, 14, 3, 22)),
        (1795529002123, 1795529002123),  # epoch ms
        (1795529002, 1795529002000),  # epoch seconds
        (1795529002.5, 1795529002500),
        ("1795529002123", 1795529002123),
        ("1795529002", 1795529002000),
    ],
)
def test_timestamps_are_normalised_to_utc_epoch_ms(value: object, expected: int) -> None:
    assert parse_timestamp_ms(value) == expected


@pytest.mark.parametrize(
    "value",
    ["2026-02-30T10:00:00Z", "2026-11-24T24:00:00Z", "2026-11-24T14:60:00Z", "2026-11-24T14:03:60Z",
     "2026-11-24T14:03:22+25:00", "yesterday", "", "24/Foo/2026:14:03:22 +0000", True, None, -5, [1],
     float("nan"), "2026-11-24T14:03:22.123Zjunk"],
)
def test_bad_timestamps_raise_a_field_error_naming_the_field(value: object) -> None:
    with pytest.raises(FieldError) as caught:
        parse_timestamp_ms(value)
    assert caught.value.field == "timestamp"
    assert "timestamp" in str(caught.value)


@given(st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2200, 1, 1),
                    timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=9)),
                                               dt.timezone(dt.timedelta(hours=-5, minutes=-30))])))
def test_iso_parsing_matches_the_standard_library(moment: dt.datetime) -> None:
    text = moment.isoformat(timespec="milliseconds")
    # round(), not int(): timestamp() is a float, and 1075593600.1 * 1000 is 1075593600099.9999.
    expected = round(moment.timestamp() * 1000) if moment.microsecond % 1000 == 0 else None
    got = parse_timestamp_ms(text)
    reference = dt.datetime.fromisoformat(text)
    assert got == (reference - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1)
    if expected is not None:
        assert got == expected


def test_cache_pieces_agree_with_the_full_parser() -> None:
    text = "2026-11-24T23:03:22.123+09:00"
    minute = iso_prefix_minute(text[:16]) - iso_tail_offset(text[19:])
    assert iso_seconds_valid(text[16:19])
    assert minute == parse_timestamp_ms(text) // 60000
    for bad_prefix in ("2026-11-24X23:03", "2026-13-24T23:03", "２０２６-11-24T23:03"):  # noqa: RUF001 - non-ASCII digits on purpose
        with pytest.raises(ValueError, match=r"prefix|month|out of range"):
            iso_prefix_minute(bad_prefix)
    assert not iso_seconds_valid(":61")
    assert not iso_seconds_valid(":4x")
    with pytest.raises(ValueError, match="fraction or zone"):
        iso_tail_offset(".12Q")


@pytest.mark.parametrize(
    ("value", "canonical"),
    [("10.0.0.1", "10.0.0.1"), ("2001:db8::1", "2001:db8::1"), ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
     ("::ffff:192.0.2.1", "::ffff:192.0.2.1"), (" 192.0.2.7 ", "192.0.2.7")],
)
def test_client_ips_are_validated_and_canonical(value: str, canonical: str) -> None:
    assert parse_client_ip(value) == canonical


@pytest.mark.parametrize("value", ["10.0.0.256", "example.com", "1.2.3", "2001:db8:::1", "", 17, None, ["1.2.3.4"]])
def test_bad_client_ips_raise(value: object) -> None:
    with pytest.raises(FieldError, match="client_ip"):
        parse_client_ip(value)


def test_status_codes() -> None:
    assert parse_status(200) == 200
    assert parse_status("503") == 503
    for bad in (99, 600, "20x", True, 200.0, None, "2000"):
        with pytest.raises(FieldError, match="status"):
            parse_status(bad)


def test_field_mapping_overrides_and_rejects_unknown_fields() -> None:
    mapping = FieldMapping.parse(["timestamp=@timestamp", "client_ip = remote_addr"])
    assert mapping.timestamp == "@timestamp"
    assert mapping.client_ip == "remote_addr"
    assert mapping.status == "status"
    with pytest.raises(ValueError, match="unknown field"):
        FieldMapping.parse(["colour=red"])
    with pytest.raises(ValueError, match="field=key"):
        FieldMapping.parse(["timestamp"])


@given(st.ip_addresses(v=4))
def test_ipv4_shortcut_agrees_with_ipaddress(address: object) -> None:
    text = str(address)
    assert parse_client_ip(text) == text
    for variant in (text + ".1", "0" + text, text.replace(".", "..", 1)):
        try:
            expected = str(ipaddress.ip_address(variant))
        except ValueError:
            with pytest.raises(FieldError):
                parse_client_ip(variant)
        else:
            assert parse_client_ip(variant) == expected
