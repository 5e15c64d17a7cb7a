"""Console scripts for Batch command lines.

``logproc-analyze INPUT... --output partial.msgpack``  analyse log files into a (binary) partial.
``logproc-merge PARTIAL... --output-dir DIR``           merge partials into summary.json and report.html.
``logproc-merge PARTIAL... --dump``                     print the (merged) partial's JSON form.

Exit status: 0 when every input was used (bad lines inside an input are counted, not fatal); 1 when an
input is missing, unreadable or (for merge) not a partial, or an output cannot be written, with a
message on stderr naming it; 2 for a bad command line (argparse).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import orjson

from logproc_analyzer.aggregate import DEFAULT_EXACT_KEYS
from logproc_analyzer.analyze import (
    InputError,
    analyze_paths,
    choose_mapping,
    default_workers,
    merge_partial_files,
)
from logproc_analyzer.fields import FieldMapping, Window
from logproc_analyzer.report import render_report
from logproc_analyzer.summary import DEFAULT_TOP, summarize

EXIT_UNUSABLE_INPUT = 1


def _write_atomically(path: Path, data: bytes) -> None:
    """Readers (a Batch output upload, a browser) never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; the outputs are meant to be shared
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _dump(document: object) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def _fail(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return EXIT_UNUSABLE_INPUT


def analyze_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="logproc-analyze",
        description="Analyse access logs (JSON lines or Common/Combined Log Format, plain or .gz) "
                    "into a mergeable partial.",
    )
    parser.add_argument("inputs", nargs="+", help="local log files")
    parser.add_argument("-o", "--output", required=True,
                        help="binary partial to write ('-' for stdout); read it with logproc-merge --dump")
    parser.add_argument("--exact-keys", type=int, default=DEFAULT_EXACT_KEYS, metavar="N",
                        help="count client IPs, paths and user agents exactly up to N distinct keys each; "
                             f"past it, sketch that dimension (default {DEFAULT_EXACT_KEYS})")
    parser.add_argument("--field", action="append", default=[], metavar="FIELD=KEY",
                        help="JSON key of a field, e.g. --field timestamp=@timestamp or "
                             "--field client_ip=source.ip (a dotted key is also looked up in nested "
                             "objects); --field latency_unit=s|ms|us|ns; repeatable. Always wins over "
                             "detection")
    parser.add_argument("--no-detect", action="store_true",
                        help="do not detect the field names from the first records: use the defaults "
                             "(timestamp, client_ip, status, ...) and --field")
    parser.add_argument("--since", metavar="ISO",
                        help="start of the analysis window (inclusive), ISO 8601 on a whole minute, e.g. "
                             "2026-11-24T00:00:00Z; records before it are counted apart from the "
                             "per-hour and per-minute figures")
    parser.add_argument("--until", metavar="ISO",
                        help="end of the analysis window (exclusive), e.g. 2026-11-25T00:00:00Z")
    parser.add_argument("--invalid-output", metavar="FILE",
                        help="also write every invalid line (input, line number, reason, text) to this "
                             "JSON-lines file; the partial always holds the counts and a sample")
    parser.add_argument("--workers", type=int, default=None,
                        help=f"processes to use (default: the usable CPUs, here {default_workers()})")
    args = parser.parse_args(argv)
    try:
        overrides = FieldMapping.parse_overrides(args.field)
        FieldMapping().with_overrides(overrides)
        window = Window.parse(args.since, args.until)
    except ValueError as exc:
        parser.error(str(exc))
    if args.exact_keys < 0:
        parser.error("--exact-keys must be at least 0")
    try:
        if args.invalid_output:
            Path(args.invalid_output).parent.mkdir(parents=True, exist_ok=True)
            Path(args.invalid_output).touch()
    except OSError as exc:
        return _fail(parser.prog, f"cannot write {args.invalid_output}: {exc.strerror or exc}")
    try:
        mapping, detection = choose_mapping(args.inputs, overrides, detect=not args.no_detect)
        if "problem" in detection:
            # Not fatal (the lines are counted invalid, each naming the key and the record's keys),
            # but said once up front where it is read.
            print(f"{parser.prog}: warning: {detection['problem']}", file=sys.stderr)
        aggregate = analyze_paths(args.inputs, mapping=mapping, workers=args.workers,
                                  invalid_output=args.invalid_output, window=window, detection=detection,
                                  exact_keys=args.exact_keys)
    except InputError as exc:
        return _fail(parser.prog, f"input {exc.path}: {exc.problem}")
    document = aggregate.to_binary()
    if args.output == "-":
        sys.stdout.buffer.write(document)
    else:
        try:
            _write_atomically(Path(args.output), document)
        except OSError as exc:
            return _fail(parser.prog, f"cannot write {args.output}: {exc.strerror or exc}")
    used = ", ".join(f"{name}={key}" for name, key in zip(
        ("timestamp", "client_ip", "status"), (mapping.timestamp, mapping.client_ip, mapping.status), strict=True))
    print(f"{parser.prog}: {aggregate.lines} lines, {aggregate.valid} valid, {aggregate.invalid} invalid "
          f"(fields: {used}) -> {args.output}", file=sys.stderr)
    return 0


def merge_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="logproc-merge",
        description="Merge analysis partials into summary.json and a self-contained report.html.",
    )
    parser.add_argument("partials", nargs="+",
                        help="partials written by logproc-analyze (binary, or JSON of earlier versions)")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("-d", "--output-dir", help="where summary.json and report.html go")
    target.add_argument("--dump", action="store_true",
                        help="print the JSON form of the partials' merge (of the one partial, if one) to stdout")
    parser.add_argument("--exact-keys", type=int, default=DEFAULT_EXACT_KEYS, metavar="N",
                        help="bound on the merge's exact keys per dimension; past it, the dimension is "
                             f"sketched, so memory stays bounded (default {DEFAULT_EXACT_KEYS})")
    parser.add_argument("--top", type=int, default=DEFAULT_TOP, help="length of the top lists")
    parser.add_argument("--title", default="Log analysis", help="report title")
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error("--top must be at least 1")
    if args.exact_keys < 0:
        parser.error("--exact-keys must be at least 0")
    try:  # one partial at a time: memory is the running result (bounded) and one partial
        merged = merge_partial_files(args.partials, exact_keys=args.exact_keys)
    except InputError as exc:
        return _fail(parser.prog, f"partial {exc.path}: {exc.problem}")
    except ValueError as exc:  # partials of different windows
        return _fail(parser.prog, f"partials {', '.join(args.partials)}: {exc}")
    if args.dump:
        sys.stdout.buffer.write(_dump(merged.to_partial()))
        return 0
    summary = summarize(merged, top_n=args.top)
    out = Path(args.output_dir)
    try:
        _write_atomically(out / "summary.json", _dump(summary))
        _write_atomically(out / "report.html", render_report(summary, title=args.title).encode())
    except OSError as exc:
        return _fail(parser.prog, f"cannot write to {out}: {exc.strerror or exc}")
    anomalies = len(summary["anomalies"]["hours"]) + len(summary["anomalies"]["ips"])
    print(f"{parser.prog}: {len(args.partials)} partials, {summary['totals']['valid']} valid records, "
          f"{anomalies} anomalies -> {out / 'summary.json'}, {out / 'report.html'}", file=sys.stderr)
    return 0


