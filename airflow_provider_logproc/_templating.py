"""Coercing rendered template values to what a parameter needs: the one place for it.

A templated field arrives as the object a DAG passed (a datetime, a timedelta, a list) or, when the
DAG renders templates as strings (``render_template_as_native_obj=False``, Airflow's default), as
the text Jinja made of it: ``"2026-03-01T00:00:00+00:00"``, ``"900"``, ``"None"``, ``"['a', 'b']"``.
Each function here accepts both and refuses anything else with an error naming the parameter.

Every function takes ``error``, the exception class to raise (a ``ValueError`` subclass): a caller
keeps raising its own documented error (``KafkaWindowConfigError``, ``InvalidUploadOptionError``,
``BatchSpecError``) while the coercion itself is written once.
"""

from __future__ import annotations

import ast
import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any


class TemplateValueError(ValueError):
    """A rendered value that cannot be coerced to what its parameter needs."""


ErrorType = type[ValueError]


def _is_rendered_none(value: Any) -> bool:
    """Tell whether ``value`` is None, or what a template renders None or nothing to."""
    return value is None or (isinstance(value, str) and value.strip() in ("", "None"))


def to_utc_datetime(value: Any, name: str, *, error: ErrorType = TemplateValueError) -> dt.datetime:
    """Return a datetime (or ISO-8601 string, as templates render) as an aware UTC datetime.

    Naive values are taken as UTC, as Airflow does with its default timezone.
    """
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise error(f"{name}={value!r} is not an ISO-8601 datetime (e.g. 2026-01-02T00:00:00+00:00)") from None
    else:
        raise error(f"{name} must be a datetime or an ISO-8601 string, got {type(value).__name__}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def to_seconds(value: Any, name: str, *, allow_none: bool = False,
               error: ErrorType = TemplateValueError) -> float | None:
    """Return a duration (timedelta, seconds as a number, or a rendered number) in seconds."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        if allow_none:
            return None
        raise error(f"{name} must be a duration, got None")
    if isinstance(value, dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise error(f"{name} must be a duration (timedelta or seconds), got {value!r}")
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = float(value)
        except ValueError:
            raise error(f"{name}={value!r} is not a duration: give a timedelta or a number of seconds") from None
    else:
        raise error(f"{name} must be a duration (timedelta or seconds), got {type(value).__name__}")
    if seconds < 0:
        raise error(f"{name} must not be negative, got {seconds} s")
    return seconds


def to_timedelta(value: Any, name: str, *, error: ErrorType = TemplateValueError) -> dt.timedelta | None:
    """Return a duration as a timedelta, or None where the value is None or renders as nothing."""
    seconds = to_seconds(value, name, allow_none=True, error=error)
    return None if seconds is None else dt.timedelta(seconds=seconds)


def to_optional_int(value: Any, name: str, *, positive: bool = False,
                    error: ErrorType = TemplateValueError) -> int | None:
    """Return None, an int, or the int a template rendered to text (``"4"``); refuse anything else.

    Booleans and floats are refused (``True`` and ``2.0`` are not counts someone meant to give).
    """
    if _is_rendered_none(value):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise error(f"{name} must be a positive integer, got {value!r}")
    if positive and number <= 0:
        raise error(f"{name} must be positive, got {number}")
    return number


def from_rendered_list(value: Any, name: str, *, error: ErrorType = TemplateValueError) -> Any:
    """Return the list a string-rendering template made of a list (``"['a', 'b']"``), parsed back.

    The DAGs of this package render native objects (``render_template_as_native_obj=True``) and
    need none of this; a DAG that renders strings and pulls a list from XCom gets its ``repr``.
    A string starting with ``[`` must parse as a Python/JSON list literal; any other value is
    returned unchanged for the caller to check.
    """
    if not (isinstance(value, str) and value.strip().startswith("[")):
        return value
    try:
        parsed = ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
        raise error(f"{name}={value!r} looks like a list but cannot be parsed as one") from None
    if not isinstance(parsed, list | tuple):
        raise error(f"{name}={value!r} looks like a list but is a {type(parsed).__name__}")
    return list(parsed)


def normalize_topics(topics: Any, *, error: ErrorType = TemplateValueError) -> list[str]:
    """Return topics as a list of distinct names; a string is one topic name."""
    if isinstance(topics, str):
        names = [topics.strip()]
    elif isinstance(topics, Iterable):
        names = [str(name).strip() for name in topics]
    else:
        raise error(f"topics must be a list of topic names, got {type(topics).__name__}")
    names = [name for name in names if name]
    if not names:
        raise error("topics is empty: name at least one topic")
    return list(dict.fromkeys(names))


def resolve_window(context: Mapping[str, Any], since: Any, until: Any, *,
                   error: ErrorType = TemplateValueError) -> tuple[dt.datetime, dt.datetime]:
    """Return the window ``[since, until)``; either edge defaults to the DAG run's data interval.

    The consume operator and the window sensor both resolve their window here, so a sensor and
    the consume task placed one after the other cover the same records without repeating arguments.
    """
    # An empty string is "not given" too: what a template such as "{{ params.until or '' }}" renders.
    since = None if since == "" else since
    until = None if until == "" else until
    since_value = context.get("data_interval_start") if since is None else since
    until_value = context.get("data_interval_end") if until is None else until
    for name, value, given in (("since", since_value, since), ("until", until_value, until)):
        if value is None and given is None:
            raise error(
                f"{name} was not given and this DAG run has no data interval (manual or asset-triggered "
                f"run?): pass {name}= explicitly")
    window_start = to_utc_datetime(since_value, "since", error=error)
    window_end = to_utc_datetime(until_value, "until", error=error)
    if window_start >= window_end:
        hint = ""
        if window_start == window_end and since is None and until is None:
            hint = (" — the DAG run's data interval has zero length: in Airflow 3 schedule='@daily' gives "
                    "point intervals; use CronDataIntervalTimetable('@daily', timezone='UTC')")
        raise error(
            f"empty window: since {window_start.isoformat()} is not before until {window_end.isoformat()}{hint}")
    return window_start, window_end
