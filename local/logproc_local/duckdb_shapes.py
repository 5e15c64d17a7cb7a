"""How DuckDB reads the sample logs in each shipper's key names (the reference of the analyzer's
differential tests and of bench/bench_analyzer.py): ``read_json``'s columns, and the select that
gives them the analyzer's canonical field names. Shapes: "default" (the sample logs' own keys),
"ecs" (Logstash/Filebeat ECS, nested), "nginx" (nginx JSON log_format, numbers as text).
"""

from __future__ import annotations

DUCKDB_SHAPES: dict[str, tuple[str, str]] = {
    "default": ("""{timestamp: 'VARCHAR', client_ip: 'VARCHAR', method: 'VARCHAR', path: 'VARCHAR',
                    status: 'BIGINT', bytes: 'BIGINT', latency_ms: 'DOUBLE', user_agent: 'VARCHAR',
                    source: 'VARCHAR'}""", "*"),
    "ecs": ("""{"@timestamp": 'VARCHAR', source: 'STRUCT(ip VARCHAR)',
                http: 'STRUCT(request STRUCT(method VARCHAR), response STRUCT(status_code BIGINT,
                              body STRUCT(bytes BIGINT)))',
                url: 'STRUCT(path VARCHAR)', user_agent: 'STRUCT(original VARCHAR)',
                event: 'STRUCT(duration BIGINT)', service: 'STRUCT(name VARCHAR)'}""",
            """"@timestamp" AS timestamp, source.ip AS client_ip, http.request.method AS method,
               url.path AS path, http.response.status_code AS status, http.response.body.bytes AS bytes,
               event.duration / 1000000 AS latency_ms, user_agent.original AS user_agent,
               service.name AS source"""),
    "nginx": ("""{time_iso8601: 'VARCHAR', remote_addr: 'VARCHAR', request_method: 'VARCHAR',
                  request_uri: 'VARCHAR', status: 'VARCHAR', body_bytes_sent: 'VARCHAR',
                  request_time: 'VARCHAR', http_user_agent: 'VARCHAR'}""",
              """time_iso8601 AS timestamp, remote_addr AS client_ip, request_method AS method,
                 request_uri AS path, TRY_CAST(status AS BIGINT) AS status,
                 TRY_CAST(body_bytes_sent AS BIGINT) AS bytes,
                 TRY_CAST(request_time AS DOUBLE) * 1000 AS latency_ms, http_user_agent AS user_agent,
                 NULL::VARCHAR AS source"""),
}
