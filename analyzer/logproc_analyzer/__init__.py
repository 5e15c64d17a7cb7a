"""The log analyzer: mergeable analyses of access logs, a JSON summary and an HTML report.

Runs on Azure Batch nodes with only the ``analysis`` extra installed, so nothing in this package
imports Airflow (a test enforces it).

Typical use::

    partial = analyze_paths(["part-0001.jsonl.gz"]).to_binary()        # on each Batch task
    merged = merge_aggregates(read_partial_bytes(p) for p in partials)
    summary = summarize(merged); html = render_report(summary)
"""

from __future__ import annotations

import os

# The analyzer does no linear algebra, but it imports numpy (packed client tables, and datasketches imports
# it), whose OpenBLAS starts a thread per core that spins on start (~0.08 s of CPU a process; 5 % of the CPU
# samples of a one-process analysis of 1M records): on a 2-core Batch node that competes with the analysis.
# One thread unless the user asked for more; set here, before any module of the package imports numpy.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from logproc_analyzer.aggregate import (
    PARTIAL_FORMAT,
    PARTIAL_VERSION,
    Aggregate,
    InvalidRecord,
    Normalized,
)
from logproc_analyzer.analyze import (
    InputError,
    analyze_lines,
    analyze_paths,
    merge_aggregates,
    read_partial_file,
)
from logproc_analyzer.fields import FieldError, FieldMapping, parse_timestamp_ms
from logproc_analyzer.partials import read_partial_bytes
from logproc_analyzer.report import render_report
from logproc_analyzer.summary import SUMMARY_FORMAT, SUMMARY_VERSION, summarize

__all__ = [
    "PARTIAL_FORMAT",
    "PARTIAL_VERSION",
    "SUMMARY_FORMAT",
    "SUMMARY_VERSION",
    "Aggregate",
    "FieldError",
    "FieldMapping",
    "InputError",
    "InvalidRecord",
    "Normalized",
    "analyze_lines",
    "analyze_paths",
    "merge_aggregates",
    "parse_timestamp_ms",
    "read_partial_bytes",
    "read_partial_file",
    "render_report",
    "summarize",
]
