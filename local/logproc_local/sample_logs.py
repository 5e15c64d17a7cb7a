"""Realistic sample access logs from web servers, IoT devices and mobile apps.

Deterministic for a given (day, count, seed): the same arguments always give the same records, so
tests and the demo can compare what was produced with what comes out of the pipeline.

Records are JSON objects with the fields below; ``to_combined_log_line`` renders the same record in
the Combined Log Format. A share of *bad* records (``bad_share``) is mixed in: values that are not
JSON, not UTF-8, or JSON missing required fields — the pipeline must keep them aside and count them.

This module imports nothing from Airflow (it is also used by benchmarks and on its own).
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import math
import random
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from logproc_local.topics import (
    DEFAULT_KAFKA_CONN_ID,
    DEFAULT_PARTITIONS,
    SampleTopicError,
    bootstrap_servers,
    ensure_topic_keeps,
)

SOURCES = ("web", "iot", "mobile")
METHODS = (("GET", 70), ("POST", 18), ("PUT", 5), ("DELETE", 3), ("HEAD", 2), ("PATCH", 2))
PATHS = {
    "web": ["/", "/index.html", "/products", "/products/{id}", "/cart", "/checkout", "/search?q={q}",
            "/static/app.js", "/static/style.css", "/login", "/account", "/api/v1/orders/{id}"],
    "iot": ["/telemetry", "/telemetry/batch", "/devices/{id}/heartbeat", "/devices/{id}/config",
            "/firmware/latest"],
    "mobile": ["/api/v2/feed", "/api/v2/profile", "/api/v2/messages/{id}", "/api/v2/upload",
               "/api/v2/search?q={q}", "/api/v2/notifications"],
}
USER_AGENTS = {
    "web": [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.5 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "curl/8.5.0",
        "Googlebot/2.1 (+http://www.google.com/bot.html)",
    ],
    "iot": ["ThermoSense/2.4.1 (esp32)", "SmartMeter/1.9 (arm)", "GateCam/3.0.2 (linux-armv7)"],
    "mobile": ["ShopApp/5.12.0 (iPhone; iOS 18.1)", "ShopApp/5.11.3 (Android 14; Pixel 8)",
               "ShopApp/5.12.0 (Android 13; SM-A546B)"],
}
STATUS_WEIGHTS = ((200, 820), (201, 40), (204, 30), (301, 15), (304, 40), (400, 12), (401, 10),
                  (403, 6), (404, 30), (429, 4), (500, 6), (502, 3), (503, 3), (504, 1))
REQUIRED_FIELDS = ("timestamp", "client_ip", "method", "path", "status")

# Hour of the day (UTC) in which an error burst is injected, and the noisy client: anomalies the
# analyzer is expected to find in the demo data.
ERROR_BURST_HOUR = 14
NOISY_CLIENT_IP = "203.0.113.66"


@dataclass(frozen=True, slots=True)
class SampleRecord:
    """One produced log record: the Kafka timestamp, the value bytes and (if well-formed) the fields."""

    timestamp_ms: int
    value: bytes
    fields: dict[str, Any] | None  # None for a deliberately bad record
    key: bytes | None = None

    @property
    def is_bad(self) -> bool:
        return self.fields is None


def _weighted(rng: random.Random, table: tuple[tuple[Any, int], ...]) -> Any:
    values, weights = zip(*table, strict=True)
    return rng.choices(values, weights=weights)[0]


def _client_pool(rng: random.Random, size: int) -> list[str]:
    pool = []
    for i in range(size):
        if i % 7 == 0:  # one in seven clients speaks IPv6
            pool.append(str(ipaddress.IPv6Address(0x20010DB8 << 96 | rng.getrandbits(64))))
        else:
            pool.append(str(ipaddress.IPv4Address(rng.randrange(0x0B000000, 0xDF000000))))
    return pool


def _diurnal_offset_ms(rng: random.Random) -> int:
    """Draw a time of day from a curve with a daytime peak (more traffic at 10-20h UTC)."""
    while True:
        ms = rng.randrange(86_400_000)
        hour = ms / 3_600_000
        if rng.random() < 0.35 + 0.65 * math.sin(math.pi * hour / 24) ** 2:
            return ms


def _format_timestamp(ts_ms: int, source: str, rng: random.Random) -> Any:
    """Each source has its own timestamp habit, as in real fleets."""
    moment = dt.datetime.fromtimestamp(ts_ms / 1000, tz=dt.UTC)
    if source == "iot":
        return ts_ms  # epoch milliseconds
    if source == "mobile":
        offset = dt.timezone(dt.timedelta(hours=rng.choice((-5, 1, 2, 9))))
        return moment.astimezone(offset).isoformat(timespec="milliseconds")
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _path(rng: random.Random, source: str) -> str:
    template = rng.choice(PATHS[source])
    return template.replace("{id}", str(rng.randrange(1, 5000))).replace(
        "{q}", rng.choice(("shoes", "laptop", "usb+c", "gift")))


def _bad_value(rng: random.Random, index: int, ts_ms: int) -> bytes:
    kind = index % 3
    if kind == 0:
        return b'{"timestamp": "broken json, ' + str(index).encode()  # malformed JSON
    if kind == 1:
        return b"\xff\xfe not utf-8 \xc3\x28 record " + str(index).encode()  # not UTF-8
    # Well-formed JSON that misses required fields (no client_ip, no status).
    return orjson.dumps({"timestamp": ts_ms, "source": "iot", "note": f"partial record {index}"})


def generate(
    day: dt.date,
    count: int,
    *,
    seed: int = 0,
    bad_share: float = 0.0,
    disorder_ms: int = 5_000,
) -> Iterator[SampleRecord]:
    """Yield ``count`` records of ``day`` (UTC), roughly in time order.

    Records are out of order by up to ``disorder_ms`` (devices batch and retry), but every record's
    timestamp lies inside ``day``. A share ``bad_share`` of them is deliberately broken.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if not 0.0 <= bad_share <= 1.0:
        raise ValueError(f"bad_share must be within [0, 1], got {bad_share}")
    rng = random.Random(f"{day.isoformat()}:{seed}")
    day_start_ms = int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp() * 1000)
    clients = _client_pool(rng, max(50, min(20_000, count // 20)))
    # Sorting the draws gives time order; a small jitter then makes it realistically out of order.
    offsets = sorted(_diurnal_offset_ms(rng) for _ in range(count))
    bad_every = (1 / bad_share) if bad_share > 0 else math.inf
    next_bad = bad_every / 2
    for index, offset in enumerate(offsets):
        jitter = rng.randrange(-disorder_ms, disorder_ms + 1) if disorder_ms else 0
        ts_ms = day_start_ms + min(86_399_999, max(0, offset + jitter))
        source = rng.choices(SOURCES, weights=(55, 20, 25))[0]
        key = f"{source}-{rng.randrange(64)}".encode()
        if index >= next_bad:
            next_bad += bad_every
            yield SampleRecord(ts_ms, _bad_value(rng, index, ts_ms), None, key)
            continue
        hour = (ts_ms - day_start_ms) // 3_600_000
        status = _weighted(rng, STATUS_WEIGHTS)
        if hour == ERROR_BURST_HOUR and rng.random() < 0.3:
            status = rng.choice((500, 502, 503))
        client_ip = NOISY_CLIENT_IP if rng.random() < 0.01 else rng.choice(clients)
        fields: dict[str, Any] = {
            "timestamp": _format_timestamp(ts_ms, source, rng),
            "client_ip": client_ip,
            "method": _weighted(rng, METHODS),
            "path": _path(rng, source),
            "protocol": "HTTP/1.1" if source != "mobile" else "HTTP/2.0",
            "status": status,
            "bytes": 0 if status in (204, 304) else int(rng.lognormvariate(7.5, 1.2)),
            "latency_ms": round(rng.lognormvariate(3.3, 0.8) * (4 if status >= 500 else 1), 1),
            "user_agent": rng.choice(USER_AGENTS[source]),
            "referrer": "-" if source != "web" else rng.choice(("-", "https://www.example.com/")),
            "source": source,
        }
        yield SampleRecord(ts_ms, orjson.dumps(fields), fields, key)


def to_combined_log_line(fields: dict[str, Any], timestamp_ms: int) -> str:
    """Render a record in the Combined Log Format (the time from the Kafka timestamp, in UTC)."""
    moment = dt.datetime.fromtimestamp(timestamp_ms / 1000, tz=dt.UTC)
    clf_time = moment.strftime("%d/%b/%Y:%H:%M:%S +0000")
    size = fields["bytes"] if fields["bytes"] else "-"
    return (
        f'{fields["client_ip"]} - - [{clf_time}] "{fields["method"]} {fields["path"]} '
        f'{fields["protocol"]}" {fields["status"]} {size} "{fields["referrer"]}" "{fields["user_agent"]}"'
    )


def produce(
    records: Iterable[SampleRecord],
    topic: str,
    producer_config: dict[str, Any],
    *,
    partitions: int | None = None,
) -> int:
    """Produce records to Kafka with each record's Kafka timestamp set to the log's own time.

    Records go to partition ``hash(key) % partitions`` when ``partitions`` is given (deterministic
    placement, so a test can predict the order within a partition), else to the client's partitioner.
    Returns the number of records delivered; raises if any delivery failed.
    """
    from confluent_kafka import KafkaException, Producer

    config = {"linger.ms": 20, "batch.num.messages": 10_000, "compression.type": "lz4",
              **producer_config}
    producer = Producer(config)
    failures: list[str] = []
    delivered = 0

    def on_delivery(err: Any, _msg: Any) -> None:
        nonlocal delivered
        if err is not None:
            failures.append(str(err))
        else:
            delivered += 1

    for record in records:
        kwargs: dict[str, Any] = {"timestamp": record.timestamp_ms, "on_delivery": on_delivery}
        if partitions:
            kwargs["partition"] = _stable_partition(record.key, partitions)
        while True:
            try:
                producer.produce(topic, value=record.value, key=record.key, **kwargs)
                break
            except BufferError:
                producer.poll(0.1)  # local queue full: let deliveries drain
        producer.poll(0)
    remaining = producer.flush(60)
    if remaining or failures:
        raise KafkaException(
            f"{len(failures)} records failed and {remaining} were not delivered to topic {topic!r}; "
            f"first error: {failures[0] if failures else 'flush timed out'}"
        )
    return delivered


def _stable_partition(key: bytes | None, partitions: int) -> int:
    # Python's hash() is salted per process; a CRC is stable across runs.
    import zlib

    return zlib.crc32(key or b"") % partitions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="logproc-sample-logs",
        description="Generate a day of realistic access logs, to a file or to a Kafka topic.",
    )
    parser.add_argument("--day", type=dt.date.fromisoformat, required=True, help="UTC day, YYYY-MM-DD")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bad-share", type=float, default=0.0,
                        help="share of deliberately broken records (0..1)")
    parser.add_argument("--format", choices=("json", "clf"), default="json",
                        help="file format: JSON lines or Combined Log Format")
    parser.add_argument("--output", default="-", help="file to write (default: stdout)")
    parser.add_argument("--topic", help="produce to this Kafka topic instead of writing a file")
    parser.add_argument("--bootstrap-servers", default=None,
                        help="the broker (default: the kafka connection --kafka-conn-id)")
    parser.add_argument("--kafka-conn-id", default=DEFAULT_KAFKA_CONN_ID,
                        help="Airflow kafka connection to produce to (AIRFLOW_CONN_<ID>, or Airflow's own)")
    parser.add_argument("--partitions", type=int, default=None,
                        help="place records by a stable hash of their key over N partitions (and create the "
                             f"topic with N; default {DEFAULT_PARTITIONS})")
    args = parser.parse_args(argv)

    records = generate(args.day, args.count, seed=args.seed, bad_share=args.bad_share)
    if args.topic:
        try:
            bootstrap = bootstrap_servers(args.kafka_conn_id, args.bootstrap_servers)
            # A margin before the day: records carry skewed device clocks.
            oldest_ms = int(dt.datetime.combine(args.day, dt.time.min, dt.UTC).timestamp() * 1000) - 3_600_000
            topic_state = ensure_topic_keeps(bootstrap, args.topic, oldest_ms,
                                             partitions=args.partitions or DEFAULT_PARTITIONS)
        except SampleTopicError as error:
            parser.exit(2, f"logproc-sample-logs: {error}\n")
        n = produce(records, args.topic, {"bootstrap.servers": bootstrap}, partitions=args.partitions)
        print(f"produced {n} records of {args.day} to {args.topic} at {bootstrap} (topic {topic_state})",
              file=sys.stderr)
        return 0
    out = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")  # noqa: SIM115
    try:
        for record in records:
            if args.format == "json":
                out.write(record.value + b"\n")
            elif record.fields is not None:
                out.write(to_combined_log_line(record.fields, record.timestamp_ms).encode() + b"\n")
            else:
                out.write(record.value + b"\n")
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
