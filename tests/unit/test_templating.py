"""Coercing rendered template values (airflow_provider_logproc._templating)."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_provider_logproc import _templating as templating

DAY = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
NEXT_DAY = DAY + dt.timedelta(days=1)


# -- window defaults line up with the consume operator's -------------------------------------------


def test_window_defaults_to_the_data_interval():
    context = {"data_interval_start": DAY, "data_interval_end": NEXT_DAY}
    assert templating.resolve_window(context, None, None) == (DAY, NEXT_DAY)


def test_window_takes_explicit_edges_as_rendered_template_strings():
    context = {"data_interval_start": DAY, "data_interval_end": NEXT_DAY}
    start, end = templating.resolve_window(context, "2026-03-01T06:00:00Z", "2026-03-01 12:00:00+01:00")
    assert start == DAY + dt.timedelta(hours=6)
    assert end == DAY + dt.timedelta(hours=11)
    assert end.tzinfo == dt.UTC


def test_empty_rendered_edges_mean_the_default():
    context = {"data_interval_start": DAY, "data_interval_end": NEXT_DAY}
    assert templating.resolve_window(context, "", "") == (DAY, NEXT_DAY)


def test_naive_edges_are_utc():
    assert templating.to_utc_datetime(dt.datetime(2026, 3, 1), "until") == DAY


def test_zero_length_data_interval_names_the_airflow_3_cause():
    context = {"data_interval_start": DAY, "data_interval_end": DAY}
    with pytest.raises(templating.TemplateValueError, match="CronDataIntervalTimetable"):
        templating.resolve_window(context, None, None)


def test_window_without_data_interval_asks_for_explicit_edges():
    with pytest.raises(templating.TemplateValueError, match="until was not given"):
        templating.resolve_window({"data_interval_start": DAY, "data_interval_end": None}, None, None)


def test_reversed_window_is_refused():
    with pytest.raises(templating.TemplateValueError, match="not before until"):
        templating.resolve_window({}, NEXT_DAY, DAY)


def test_bad_datetime_string_names_the_argument():
    with pytest.raises(templating.TemplateValueError, match="until='yesterday'"):
        templating.resolve_window({}, DAY, "yesterday")


# -- coercions ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    (dt.timedelta(minutes=2), 120.0), (30, 30.0), (1.5, 1.5), ("45", 45.0), ("0", 0.0)])
def test_durations(value, expected):
    assert templating.to_seconds(value, "max_lateness") == expected


@pytest.mark.parametrize("value", [-1, "soon", True, [1]])
def test_bad_durations_name_the_argument(value):
    with pytest.raises(templating.TemplateValueError, match="idle_timeout"):
        templating.to_seconds(value, "idle_timeout", allow_none=True)


def test_none_duration_only_where_allowed():
    assert templating.to_seconds(None, "idle_timeout", allow_none=True) is None
    assert templating.to_seconds("None", "idle_timeout", allow_none=True) is None  # a template rendering None
    with pytest.raises(templating.TemplateValueError, match="max_lateness"):
        templating.to_seconds(None, "max_lateness")


def test_topics():
    assert templating.normalize_topics("logs") == ["logs"]
    assert templating.normalize_topics(["a", "b", "a"]) == ["a", "b"]
    with pytest.raises(templating.TemplateValueError, match="topics is empty"):
        templating.normalize_topics([])


def test_callers_keep_their_own_error_type():
    class OwnError(ValueError):
        pass

    with pytest.raises(OwnError, match="since='yesterday'"):
        templating.resolve_window({}, "yesterday", DAY, error=OwnError)
    with pytest.raises(OwnError, match="topics is empty"):
        templating.normalize_topics("  ", error=OwnError)
    with pytest.raises(OwnError, match="parts must be a positive integer"):
        templating.to_optional_int("four", "parts", error=OwnError)
    with pytest.raises(OwnError, match="source="):
        templating.from_rendered_list("[oops", "source", error=OwnError)


def test_timedelta_from_templates():
    assert templating.to_timedelta("900", "max_lateness") == dt.timedelta(minutes=15)
    assert templating.to_timedelta(1.5, "x") == dt.timedelta(seconds=1.5)
    assert templating.to_timedelta(dt.timedelta(hours=1), "x") == dt.timedelta(hours=1)
    assert templating.to_timedelta(None, "x") is None and templating.to_timedelta("", "x") is None
    with pytest.raises(templating.TemplateValueError, match="max_lateness='soon' is not a duration"):
        templating.to_timedelta("soon", "max_lateness")
    with pytest.raises(templating.TemplateValueError, match="must not be negative"):
        templating.to_timedelta("-1", "x")


def test_moments_from_templates():
    assert templating.to_utc_datetime("2026-03-01T00:00:00+00:00", "since") == DAY
    assert templating.to_utc_datetime("2026-03-01T00:00:00", "since") == DAY  # naive means UTC
    with pytest.raises(templating.TemplateValueError, match="since='yesterday' is not an ISO-8601"):
        templating.to_utc_datetime("yesterday", "since")
    with pytest.raises(templating.TemplateValueError, match="since must be a datetime"):
        templating.to_utc_datetime(None, "since")


def test_optional_int_reads_what_jinja_renders():
    assert templating.to_optional_int(None, "parts") is None
    assert templating.to_optional_int("None", "parts") is None
    assert templating.to_optional_int("", "parts") is None
    assert templating.to_optional_int(4, "parts") == 4
    assert templating.to_optional_int(" 8 ", "parts") == 8
    assert templating.to_optional_int(0, "parts") == 0
    for bad in ("four", "4.5", "-3", True, 2.0, [4]):
        with pytest.raises(templating.TemplateValueError, match="parts must be a positive integer"):
            templating.to_optional_int(bad, "parts")
    with pytest.raises(templating.TemplateValueError, match="max_records must be positive, got 0"):
        templating.to_optional_int("0", "max_records", positive=True)


def test_rendered_lists_are_parsed_back_and_other_values_pass_through():
    assert templating.from_rendered_list("['file:///a', 'file:///b']", "source") == ["file:///a", "file:///b"]
    assert templating.from_rendered_list(' ["x"] ', "source") == ["x"]
    assert templating.from_rendered_list("file:///a", "source") == "file:///a"
    urls = ["u1"]
    assert templating.from_rendered_list(urls, "source") is urls
    with pytest.raises(templating.TemplateValueError, match=r"source='\[oops' looks like a list but cannot be parsed"):
        templating.from_rendered_list("[oops", "source")
