"""The mergeable aggregate of a set of log lines, and the loop that feeds it.

An ``Aggregate`` holds exact counters keyed by what the report needs (minute x status, status x method
x source, IP, path, user agent) plus a bucketed latency histogram. Two aggregates merge by adding
their counters, so the merge of the partials of any split of the input equals the aggregate of the
whole input; top-N lists, rates and anomalies are derived only at the end (``summary.py``).

The ingest loop has two paths. Each line is first decoded by msgspec into a struct of just the mapped
fields (in C, skipping the rest of the object, without building a dictionary). The fast path handles
the shapes that make up nearly every line of a real log: a flat JSON object whose timestamp is
``YYYY-MM-DDTHH:MM:SS[.fff](Z|+hh:mm)`` (pieces looked up in small caches) or an epoch number, an IP
already seen, an integer status. Anything else (first sight of an IP or a timestamp piece, envelopes,
strings where numbers belong, CLF lines, broken lines) goes to the slow path, which parses the line
again with orjson, validates strictly with ``fields.py`` and fills the caches. Both paths end in the
same counting code, so they cannot disagree. Where the two JSON readers differ, a line must count the
same whichever path it takes (``tests/unit/analysis/test_decode_paths.py``): msgspec skips unused
fields without checking their UTF-8 (non-ASCII lines are checked first) or reading their numbers (the
slow path reads numbers beyond a double's range as infinity, ``loads_json_line``), and reads integers
beyond 64 bits exactly where orjson makes them floats (such values take the slow path).
"""

from __future__ import annotations

import functools
import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import IO, Any, Literal

import numpy as np

from logproc_analyzer.decoding import (
    MISSING,
    InvalidLine,
    InvalidRecord,
    IpCounter,
    Normalized,
    TakeSlowPath,
    decode_nothing,
    fold_missing,
    invalid_line_json,
    loads_json_line,
    mapped_keys,
    record_decoder,
)
from logproc_analyzer.fields import EPOCH_MS_THRESHOLD, FieldMapping, Window, window_text
from logproc_analyzer.native import optional_extension
from logproc_analyzer.packed_ips import PackedIpCounts
from logproc_analyzer.sketch import LatencyHistogram
from logproc_analyzer.sketches import KeySketch
from logproc_analyzer.slow_path import INVALID_SAMPLE_SIZE, INVALID_TEXT_LIMIT, SlowPath

__all__ = [
    "DEFAULT_EXACT_KEYS",
    "INVALID_SAMPLE_SIZE",
    "INVALID_TEXT_LIMIT",
    "KEY_DIMENSIONS",
    "MISSING",
    "PARTIAL_FORMAT",
    "PARTIAL_VERSION",
    "Aggregate",
    "InvalidLine",
    "InvalidRecord",
    "Normalized",
    "invalid_line_json",
    "loads_json_line",
    "mapped_keys",
    "native_ingest",
    "record_decoder",
]

# The per-line loop in C (see _native_ingest.c); same results as the Python loop below.
native_ingest = optional_extension("logproc_analyzer._native_ingest")

PARTIAL_FORMAT = "logproc-analysis-partial"
# 3: binary (msgpack), key dimensions past the exact bound as sketches. 2: the window and the records
# outside it, the field mappings used, the latency unit. JSON partials of versions 1 and 2 are still read.
PARTIAL_VERSION = 3
READABLE_PARTIAL_VERSIONS = (1, 2, 3)
# Distinct keys per dimension (client IPs, paths, user agents) counted exactly, per partial and in a
# merge's running result; past it, the dimension is sketched (``sketches.py``).
DEFAULT_EXACT_KEYS = 500_000
KEY_DIMENSIONS = ("ips", "paths", "user_agents")
# The tables keyed by client IP; an exact merge holds them packed past this many clients (the default
# bound sketches them first, so only an exact merge with the bound raised reaches it).
CLIENT_TABLES = ("ips", "ip_client_errors", "ip_server_errors")
PACKED_CLIENTS_FROM = 1_000_000
_LATENCY_PENDING_LIMIT = 65_536
_LINES_PER_CHUNK = 65_536  # lines of an iterable handed to the C loop at a time
# orjson reads integers up to 2**64 - 1 (and down to -2**63) exactly and larger ones as floats;
# msgspec reads them all exactly. The fast path takes only integers both read alike.
_INT_MIN = -(1 << 63)
_INT_MAX = (1 << 64) - 1
_INFINITY = float("inf")
# The C loop's packed client records (Counts.take_ips): the address in network order, then its requests, 4xx
# and 5xx counts as native uint32.
_CLIENT_COUNTS = ("requests", "client_errors", "server_errors")
_V4_RECORD = np.dtype([("address", ">u4")] + [(name, "=u4") for name in _CLIENT_COUNTS])
_V6_RECORD = np.dtype([("address", "S16")] + [(name, "=u4") for name in _CLIENT_COUNTS])


def add_counts(target: dict[Any, int], addend: Mapping[Any, int]) -> None:
    """``target[key] += count`` for every key of ``addend``. Into an empty target (the first partial of a
    merge) by ``update``, ~35x faster than the loop at 500k keys and the same dict, key order included;
    ``update`` never calls ``__missing__``, so IpCounter does not validate merged keys again (nor does
    ``get`` in the loop). Summing the shared keys aside and then updating measured slower than the loop."""
    if not target:
        target.update(addend)
        return
    get = target.get
    for key, value in addend.items():
        target[key] = get(key, 0) + value


class Aggregate(SlowPath):
    """Exact, mergeable counters over analysed log lines."""

    def __init__(self, mapping: FieldMapping | None = None, window: Window | None = None,
                 exact_keys: int = DEFAULT_EXACT_KEYS, *, packed_clients: bool = False) -> None:
        self.mapping = mapping or FieldMapping()
        # A part's aggregate bound for another process (analyze_paths' workers): the C loop keeps the clients
        # it finds canonical as packed addresses, never as texts and dict entries, and finish() leaves the
        # three client tables packed (PackedIpCounts, as an exact merge of many clients holds them): at
        # hundreds of thousands of clients a part, the dicts, their pickling and their merge cost more than
        # the ingest. The aggregate then takes no more lines.
        self.packed_clients = packed_clients
        self._native_clients: list[PackedIpCounts] | None = None
        # Client IPs, paths and user agents are counted exactly up to this many distinct keys each (in
        # a partial, and in a merge's running result); past it that dimension goes to its sketch.
        self.exact_keys = exact_keys
        self.sketches: dict[str, KeySketch] = {}
        # Sketches made ahead from this aggregate's own exact counts of a dimension, held beside them
        # (prepare_sketches): if a merge takes that dimension past the bound, the parts' standby sketches are
        # united instead of the merged keys being fed one by one. Never part of a partial.
        self.standby_sketches: dict[str, KeySketch] = {}
        # The analysis window: records outside it stay valid (they are counted in every figure but
        # the time series) and their minutes are told apart when summarised. Both loops send a record
        # whose minute is outside to the slow path, which alone notes the exact extremes below.
        self.window = window
        self._minute_range: tuple[int, int] | None = None if window is None else window.minute_range()
        self.outside_earliest_ms: int | None = None  # the earliest valid record before the window
        self.outside_latest_ms: int | None = None  # the latest valid record at or after its end
        # How the fields were mapped, per distinct mapping among the merged partials.
        self.field_mappings: list[dict[str, Any]] = []
        self.lines = 0
        self.blank_lines = 0
        self.invalid_reasons: defaultdict[str, int] = defaultdict(int)
        self.invalid_sample: list[InvalidLine] = []
        self.field_errors: defaultdict[str, int] = defaultdict(int)
        # UTC epoch minute * 1000 + status -> requests: per-minute and per-hour traffic, errors and the
        # status mix (an int key hashes and compares faster than a tuple).
        self.minute_status: defaultdict[int, int] = defaultdict(int)
        # (status, method, source) -> requests: the status, method and source histograms.
        self.kinds: defaultdict[tuple[int, str | None, str | None], int] = defaultdict(int)
        # Dicts while analysing; an exact merge past PACKED_CLIENTS_FROM clients packs them (see merge).
        self.ips: IpCounter | PackedIpCounts = IpCounter()
        self.ip_client_errors: defaultdict[str, int] | PackedIpCounts = defaultdict(int)
        self.ip_server_errors: defaultdict[str, int] | PackedIpCounts = defaultdict(int)
        self.paths: defaultdict[str | None, int] = defaultdict(int)
        self.user_agents: defaultdict[str | None, int] = defaultdict(int)
        self.bytes_total = 0
        self.bytes_records = 0
        self.latency = LatencyHistogram()
        self.inputs: list[dict[str, Any]] = []
        # Where every invalid line goes, if anywhere (the sample above keeps only the first few).
        self.invalid_sink: IO[bytes] | None = None
        # Caches for the fast path; never part of the result.
        self._iso_prefix: dict[str, int] = {}
        self._iso_seconds: set[str] = set()
        self._iso_tail: dict[str, int] = {}
        self._clf_time: dict[str, int] = {}
        self._ip_alias: dict[str, str] = {}
        # The C loop's counts not yet added to the dictionaries above (see flush_pending).
        self._native_counts: Any = None
        self._latency_pending: defaultdict[Any, int] = defaultdict(int)

    # ------------------------------------------------------------------ derived totals
    @property
    def valid(self) -> int:
        return sum(self.minute_status.values())

    @property
    def invalid(self) -> int:
        return sum(self.invalid_reasons.values())

    # ------------------------------------------------------------------ ingest
    def ingest_lines(self, lines: Iterable[bytes], *, source: str, first_line: int = 1) -> None:
        """Analyse raw lines (without their newline); ``first_line`` numbers the first one.

        Never raises for bad content: unusable lines are counted by reason and sampled.
        """
        self.standby_sketches.clear()  # they hold the counts before these lines
        if native_ingest is None or record_decoder(self.mapping) is None:
            self._ingest_python(lines, source=source, first_line=first_line)
        elif isinstance(lines, list):
            self._ingest_native(lines, 0, 0, source, first_line)
        else:  # the C loop takes lists: a long iterable goes in slices, never held whole
            iterator = iter(lines)
            while chunk := list(itertools.islice(iterator, _LINES_PER_CHUNK)):
                self._ingest_native(chunk, 0, 0, source, first_line)
                first_line += len(chunk)
        self.flush_pending()

    def ingest_buffer(self, buffer: bytes, start: int, end: int, *, source: str, first_line: int) -> int:
        """Analyse the lines of ``buffer[start:end]`` (each ended by a newline, but perhaps the last);
        returns how many there were. The counts of the C loop stay pending: call ``flush_pending()``
        (or ``finish()``) before reading the aggregate. For long inputs read block by block."""
        self.standby_sketches.clear()  # they hold the counts before these lines
        count = self._ingest_native(buffer, start, end, source, first_line)
        if count is False:
            lines = buffer[start:end].split(b"\n")
            if lines[-1] == b"":
                lines.pop()
            self._ingest_python(lines, source=source, first_line=first_line)
            return len(lines)
        self._bound_pending_latencies()
        return count

    def flush_pending(self) -> None:
        """Add the C loop's pending counts into this aggregate's dictionaries (with ``packed_clients``, those of
        the clients it found canonical into packed tables, added to the dicts by ``finish``)."""
        if self._native_counts is not None:
            self._native_counts.flush(self)
            if self.packed_clients:
                self._take_native_clients()
        self._bound_pending_latencies()

    def _take_native_clients(self) -> None:
        """Add the C loop's packed client records (flushed so far) into ``_native_clients``."""
        v4_bytes, v6_bytes = self._native_counts.take_ips()
        if not v4_bytes and not v6_bytes:
            return
        v4 = np.frombuffer(v4_bytes, _V4_RECORD)
        v6 = np.frombuffer(v6_bytes, _V6_RECORD)
        tables = [PackedIpCounts.from_addresses(v4["address"], v4[name], v6["address"], v6[name])
                  for name in _CLIENT_COUNTS]
        if self._native_clients is None:
            self._native_clients = tables
        else:
            for mine, more in zip(self._native_clients, tables, strict=True):
                mine.add(more)

    def _pack_client_tables(self) -> None:
        """With ``packed_clients``: make the client tables packed, the C loop's records and the dicts (what the
        slow path and the Python loop counted) added together."""
        if not self.packed_clients or isinstance(self.ips, PackedIpCounts):
            return
        tables = [PackedIpCounts.from_counts(table) for table in self.client_dicts()]
        for mine, more in zip(tables, self._native_clients or (), strict=False):
            mine.add(more)
        self.ips, self.ip_client_errors, self.ip_server_errors = tables
        self._native_clients = None
        self._native_counts = None  # all flushed; the C loop needs the dicts, so no more lines from here

    def _ingest_native(self, lines: list[bytes] | bytes, start: int, end: int, source: str,
                       first_line: int) -> int | Literal[False]:
        """Run the C loop over a list of lines or a buffer's span: the number of lines, or False where it
        cannot run (not built, or two fields mapped to one key)."""
        decoder = record_decoder(self.mapping)
        if native_ingest is None or decoder is None:
            return False
        if self._native_counts is None:
            self._native_counts = native_ingest.Counts(packed_ips=self.packed_clients)
        count, blank = native_ingest.ingest(
            self._native_counts, self, lines, start, end, first_line, mapped_keys(self.mapping),
            decoder.decode, self._minute_of, functools.partial(self._normalize_or_keep, source),
            EPOCH_MS_THRESHOLD)
        self.lines += count - blank
        self.blank_lines += blank
        return count

    def _ingest_python(self, lines: Iterable[bytes], *, source: str, first_line: int = 1) -> None:
        """Run the same loop in Python: where the C one is not built, and the reference it is tested against."""
        decoder = record_decoder(self.mapping)
        decode = decoder.decode if decoder is not None else decode_nothing
        prefix_get = self._iso_prefix.get
        seconds_ok = self._iso_seconds
        tail_get = self._iso_tail.get
        ips, ip_4xx, ip_5xx = self.client_dicts()
        minute_status = self.minute_status
        kinds = self.kinds
        paths = self.paths
        user_agents = self.user_agents
        latency_pending = self._latency_pending
        text_or_none = (str, type(None))
        int_min, int_max = _INT_MIN, _INT_MAX
        ms_threshold = EPOCH_MS_THRESHOLD
        normalize_or_keep = self._normalize_or_keep
        minute_of = self._minute_of
        bytes_total = self.bytes_total
        bytes_records = self.bytes_records
        windowed = self._minute_range is not None
        low, high = self._minute_range or (0, 0)
        lineno = first_line - 1
        blank = 0
        for lineno, line in enumerate(lines, first_line):
            try:
                if not line.isascii():
                    # msgspec skips unused fields without checking their UTF-8; orjson refuses the line.
                    line.decode("utf-8")
                record = decode(line)
                ts = record.timestamp
                ip = record.client_ip
                status = record.status
                method = record.method
                path = record.path
                agent = record.user_agent
                origin = record.source
                size = record.bytes
                latency = record.latency_ms
                if ts.__class__ is str:
                    minute = prefix_get(ts[:16])
                    zone = tail_get(ts[19:])
                    if minute is None or zone is None or ts[16:19] not in seconds_ok:
                        minute = minute_of(ts)  # first sight of a piece: validate and learn it
                    else:
                        minute -= zone
                elif ts.__class__ is int and 0 <= ts <= int_max:
                    minute = ts // 60000 if ts >= ms_threshold else ts // 60
                else:
                    raise TakeSlowPath
                if windowed and not low <= minute < high:
                    raise TakeSlowPath  # outside the window: the slow path notes its exact time
                if (
                    status.__class__ is not int
                    or not 100 <= status <= 599
                    or method.__class__ not in text_or_none
                    or path.__class__ not in text_or_none
                    or agent.__class__ not in text_or_none
                    or origin.__class__ not in text_or_none
                    or not (latency is None or latency.__class__ is float
                            or (latency.__class__ is int and int_min <= latency <= int_max))
                    or not (size is None or (size.__class__ is int and 0 <= size <= int_max))
                ):
                    raise TakeSlowPath
                # Last, as it is the first count: an unseen IP is validated by IpCounter.__missing__,
                # which raises (nothing counted yet) for anything but a canonical address.
                ips[ip] += 1
            except Exception:
                if not line.strip():
                    blank += 1
                    continue
                normalized = normalize_or_keep(source, lineno, line)
                if normalized is None:
                    continue
                minute, ip, status, method, path, agent, origin, size, latency = normalized
                ips[ip] += 1
            minute_status[minute * 1000 + status] += 1
            kinds[status, method, origin] += 1
            paths[path] += 1
            user_agents[agent] += 1
            if status >= 400:
                if status >= 500:
                    ip_5xx[ip] += 1
                else:
                    ip_4xx[ip] += 1
            if size is not None:
                bytes_total += size
                bytes_records += 1
            if latency is not None:
                latency_pending[latency] += 1
        self.lines += lineno - first_line + 1 - blank
        self.blank_lines += blank
        self.bytes_total = bytes_total
        self.bytes_records = bytes_records
        self._bound_pending_latencies()

    def _bound_pending_latencies(self) -> None:
        """Fold pending latencies into the histogram once there are many distinct ones."""
        if len(self._latency_pending) > _LATENCY_PENDING_LIMIT:
            self._flush_latency()

    def _flush_latency(self) -> None:
        pending = self._latency_pending
        good: dict[float, int] = {}
        in_ms_of = None if self.mapping.latency_unit == "ms" else self.mapping.latency_in_ms
        for value, occurrences in pending.items():
            # In microseconds (the histogram's unit) it must still be finite: 1.8e308 ms is a double.
            if value.__class__ is bool or not 0 <= value * 1000 < _INFINITY:
                self.field_errors["latency_ms"] += occurrences
            elif in_ms_of is None:
                good[value] = occurrences
            else:  # seconds or nanoseconds as the shipper wrote them; the histogram counts ms
                in_ms = in_ms_of(value)
                if not 0 <= in_ms * 1000 < _INFINITY:
                    self.field_errors["latency_ms"] += occurrences
                else:
                    good[in_ms] = good.get(in_ms, 0) + occurrences
        self.latency.add_counts(good)
        pending.clear()

    def drop_caches(self) -> None:
        """Forget the fast-path caches (before pickling a finished aggregate to another process)."""
        self.flush_pending()
        self._native_counts = None
        self._iso_prefix.clear()
        self._iso_seconds.clear()
        self._iso_tail.clear()
        self._clf_time.clear()
        self._ip_alias.clear()

    def finish(self) -> Aggregate:
        """Fold pending values into the aggregate (call before reading or merging it)."""
        self.flush_pending()
        self._flush_latency()
        self._pack_client_tables()
        return self

    def __getstate__(self) -> dict[str, Any]:
        # The C loop's pending counts are added in, not pickled (they are a C object).
        self.flush_pending()
        return {**self.__dict__, "_native_counts": None}

    # ------------------------------------------------------------------ merge and partials
    def merge(self, other: Aggregate) -> Aggregate:
        """Add another (finished) aggregate into this one; returns self."""
        if self.window != other.window:
            raise ValueError(f"cannot merge analyses of different windows: "
                             f"{window_text(self.window)} and {window_text(other.window)}")
        self.flush_pending()  # both sides' C-loop counts first: merge adds the dictionaries
        other.flush_pending()
        self._pack_client_tables()
        other._pack_client_tables()
        self._merge_field_mappings(other.field_mappings)
        if other.outside_earliest_ms is not None and (
                self.outside_earliest_ms is None or other.outside_earliest_ms < self.outside_earliest_ms):
            self.outside_earliest_ms = other.outside_earliest_ms
        if other.outside_latest_ms is not None and (
                self.outside_latest_ms is None or other.outside_latest_ms > self.outside_latest_ms):
            self.outside_latest_ms = other.outside_latest_ms
        self.lines += other.lines
        self.blank_lines += other.blank_lines
        standby = self._merged_standby(other)  # before the counts are added: it asks which side holds none
        for name in KEY_DIMENSIONS:
            if name in other.sketches:
                self._sketch_dimension(name).merge(other.sketches[name])
        if self._packs_clients(other):
            for name in CLIENT_TABLES:
                mine = getattr(self, name)
                if not isinstance(mine, PackedIpCounts):
                    mine = PackedIpCounts.from_counts(mine)
                    setattr(self, name, mine)
                mine.add(getattr(other, name))
        else:
            for client_table, client_addend in zip(self.client_dicts(), other.client_dicts(), strict=True):
                add_counts(client_table, client_addend)
        for target, addend in (
            (self.invalid_reasons, other.invalid_reasons),
            (self.field_errors, other.field_errors),
            (self.minute_status, other.minute_status),
            (self.kinds, other.kinds),
            (self.paths, other.paths),
            (self.user_agents, other.user_agents),
        ):
            add_counts(target, addend)
        self.invalid_sample = sorted(
            self.invalid_sample + other.invalid_sample, key=lambda entry: (entry.source, entry.line)
        )[:INVALID_SAMPLE_SIZE]
        self.bytes_total += other.bytes_total
        self.bytes_records += other.bytes_records
        self.latency.merge(other.latency)
        self.inputs.extend(other.inputs)
        self.standby_sketches = standby
        self.bound_keys()  # the running result stays within the bound too
        return self

    def prepare_sketches(self, more_than: int) -> None:
        """Sketch ahead every key dimension holding more than ``more_than`` distinct keys, its exact counts
        kept (``standby_sketches``), on a finished aggregate that takes no more lines. analyze_paths' workers
        do it when their part could take the merged result past the bound: the sketches are then fed in
        parallel, where the parent would feed the merged keys alone while no worker runs (~0.4 s at 800 000
        clients). A sketch union stays within the same stated bounds."""
        self.finish()
        for name in KEY_DIMENSIONS:
            if name not in self.sketches and len(getattr(self, name)) > more_than:
                self.standby_sketches[name] = KeySketch.of_counts(*self._sketch_input(name))

    def _merged_standby(self, other: Aggregate) -> dict[str, KeySketch]:
        """Return the standby sketches that will summarise this merge's exact counts: per dimension neither side
        has sketched, the union of both sides' standby sketches, where each side has one or holds no key."""
        merged: dict[str, KeySketch] = {}
        for name in KEY_DIMENSIONS:
            mine, theirs = self.standby_sketches.get(name), other.standby_sketches.get(name)
            if (mine is None and theirs is None) or name in self.sketches or name in other.sketches:
                continue
            if (mine is None and len(getattr(self, name))) or (theirs is None and len(getattr(other, name))):
                continue
            merged[name] = mine or KeySketch(with_errors=name == "ips")
            if theirs is not None:
                merged[name].merge(theirs)
        return merged

    def client_dicts(self) -> tuple[IpCounter, defaultdict[str, int], defaultdict[str, int]]:
        """Return the per-client tables (requests, 4xx, 5xx) as the dicts an analysis counts into; TypeError
        once a merge has packed them (such a result is only read, merged further or summarised)."""
        tables = self.ips, self.ip_client_errors, self.ip_server_errors
        if isinstance(tables[0], IpCounter) and isinstance(tables[1], dict) and isinstance(tables[2], dict):
            return tables  # type: ignore[return-value]
        raise TypeError("this aggregate holds packed client tables (a large exact merge): it takes no more lines")

    def _packs_clients(self, other: Aggregate) -> bool:
        """Whether this merge holds the per-client tables packed (``packed_ips.py``): once either side does, or
        when the result may stay exact (its bound allows) past ``PACKED_CLIENTS_FROM`` clients. Below that,
        or when the bound will sketch them anyway, dicts (whose order the sketches are fed in) as before."""
        if isinstance(self.ips, PackedIpCounts) or isinstance(other.ips, PackedIpCounts):
            return True
        return self.exact_keys >= PACKED_CLIENTS_FROM and len(self.ips) + len(other.ips) > PACKED_CLIENTS_FROM

    def _merge_field_mappings(self, entries: list[dict[str, Any]]) -> None:
        """Keep one entry per distinct mapping, counting the partials that used it."""
        for entry in entries:
            same = next((mine for mine in self.field_mappings if mine["mapping"] == entry["mapping"]), None)
            if same is None:
                self.field_mappings.append(dict(entry))
            else:
                same["partials"] = same.get("partials", 1) + entry.get("partials", 1)

    def bound_keys(self) -> None:
        """Move every key dimension holding more than ``exact_keys`` distinct keys into its sketch."""
        self.flush_pending()
        for name in KEY_DIMENSIONS:
            counts = getattr(self, name)
            if name in self.sketches or len(counts) > self.exact_keys:
                self._sketch_dimension(name)

    def _sketch_input(self, name: str) -> tuple[Mapping[Any, int], Any, Any]:
        """Return the exact counters of one dimension as a sketch takes them (texts; and the clients' 4xx, 5xx)."""
        if name == "ips":
            return self.ips, self.ip_client_errors, self.ip_server_errors
        return fold_missing(getattr(self, name)), None, None

    def _sketch_dimension(self, name: str) -> KeySketch:
        """Fold the exact counters of one dimension into its sketch (made on first use, or the standby sketch
        of those very counters) and clear them."""
        counts = getattr(self, name)
        errors: tuple[Any, Any] = (None, None)
        if name == "ips":
            errors = (self.ip_client_errors, self.ip_server_errors)
        sketch = self.sketches.get(name)
        standby = self.standby_sketches.pop(name, None) if sketch is None else None
        if sketch is None:
            sketch = self.sketches[name] = standby or KeySketch(with_errors=name == "ips")
        if standby is None and (counts or any(errors)):  # a standby sketch holds these counts already
            sketch.add_counts(*self._sketch_input(name))
        counts.clear()
        for table in errors:
            if table is not None:
                table.clear()
        return sketch

    def to_partial(self) -> dict[str, Any]:
        """Return the JSON form of the partial (``logproc-merge --dump``; see ``partials.py``)."""
        from logproc_analyzer.partials import partial_document

        return partial_document(self)

    def to_binary(self) -> bytes:
        """Return the binary partial, the exchange format (see ``partials.py``)."""
        from logproc_analyzer.partials import encode_partial

        return encode_partial(self)

    @classmethod
    def from_partial(cls, data: Mapping[str, Any], *, where: str = "partial") -> Aggregate:
        """Rebuild an aggregate from a partial's JSON form; ValueError naming ``where`` if it is not one."""
        from logproc_analyzer.partials import aggregate_from_document

        return aggregate_from_document(data, where=where)
