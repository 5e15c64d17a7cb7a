"""``report.html``: one self-contained page (inline CSS and SVG, no script, no fetch) from a summary.

Every value that comes from the logs (paths, user agents, IPs, invalid lines, input names) passes
through ``html.escape`` before it is written, in text and in attributes alike.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from typing import Any

_MAX_CONTINUOUS_HOURS = 7 * 24
_STATUS_COLOURS = {"1xx": "#8e8e8e", "2xx": "#2e7d32", "3xx": "#1565c0", "4xx": "#ef6c00", "5xx": "#c62828"}
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;padding:24px;color:#222;background:#fafafa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.muted{color:#666;font-size:13px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:120px}
.card b{display:block;font-size:20px}
.anomalies{background:#fff3f3;border:1px solid #e57373;border-radius:6px;padding:10px 16px}
.anomalies.none{background:#f3fff3;border-color:#81c784}
table{border-collapse:collapse;background:#fff;font-size:13px;margin-bottom:8px}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:flex;flex-wrap:wrap;gap:24px}
code{word-break:break-all}
svg{background:#fff;border:1px solid #ddd;border-radius:6px}
svg text{font-size:11px;fill:#444}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _epoch_minute(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso).timestamp()) // 60


def _traffic_chart(hours: Sequence[dict[str, Any]], minutes: dict[str, Any]) -> str:
    """Hourly stacked bars (ok / 4xx / 5xx) with the per-minute request rate as a line over them.

    Hours sit on a continuous time axis when the data spans at most a week; beyond that (stray
    timestamps far away) only the hours with traffic are drawn, side by side, without the minute line.
    """
    width, height, left, bottom, top = 920, 260, 50, 30, 12
    if not hours:
        return "<p class='muted'>No valid records.</p>"
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max(h["requests"] for h in hours) or 1
    hour_numbers = [_epoch_minute(h["hour"]) // 60 for h in hours]
    first_hour = hour_numbers[0]
    continuous = hour_numbers[-1] - first_hour < _MAX_CONTINUOUS_HOURS
    slots = hour_numbers[-1] - first_hour + 1 if continuous else len(hours)
    bar_w = plot_w / slots
    parts = [f"<svg width='{width}' height='{height}' role='img' aria-label='requests and errors per hour'>"]
    for i in range(5):
        y = top + plot_h * i / 4
        parts.append(f"<line x1='{left}' x2='{width - 10}' y1='{y:.1f}' y2='{y:.1f}' stroke='#eee'/>"
                     f"<text x='{left - 6}' y='{y + 4:.1f}' text-anchor='end'>{round(peak * (4 - i) / 4):,}</text>")
    label_every = max(1, slots // 24)
    for i, h in enumerate(hours):
        slot = hour_numbers[i] - first_hour if continuous else i
        x = left + slot * bar_w
        y_base = top + plot_h
        for value, colour, label in ((h["requests"] - h["client_errors"] - h["server_errors"], "#90caf9", "ok"),
                                     (h["client_errors"], _STATUS_COLOURS["4xx"], "4xx"),
                                     (h["server_errors"], _STATUS_COLOURS["5xx"], "5xx")):
            bar_h = plot_h * value / peak
            y_base -= bar_h
            parts.append(f"<rect x='{x + 1:.1f}' y='{y_base:.1f}' width='{max(bar_w - 2, 1):.1f}' "
                         f"height='{bar_h:.1f}' fill='{colour}'><title>{_e(h['hour'])} {label}: "
                         f"{value:,}</title></rect>")
        if slot % label_every == 0:
            parts.append(f"<text x='{x + bar_w / 2:.1f}' y='{height - 12}' text-anchor='middle'>"
                         f"{_e(h['hour'][11:13])}</text>")
    requests = minutes.get("requests") or []
    if continuous and len(requests) > 1:
        minute_peak = max(requests) or 1
        origin = first_hour * 60
        points = " ".join(
            f"{left + (_epoch_minute(m) - origin + 0.5) * bar_w / 60:.1f},{top + plot_h * (1 - v / minute_peak):.1f}"
            for m, v in zip(minutes["minute"], requests, strict=True)
        )
        parts.append(f"<polyline points='{points}' fill='none' stroke='#37474f' stroke-width='0.8' "
                     f"opacity='0.6'><title>requests per minute (own scale, peak {minute_peak:,})</title></polyline>")
    parts.append("</svg>")
    return "".join(parts)


def _hbar_chart(rows: Sequence[tuple[str, float, str]], *, width: int = 440, unit: str = "") -> str:
    if not rows:
        return "<p class='muted'>No data.</p>"
    row_h, label_w = 22, 90
    height = row_h * len(rows) + 10
    peak = max(value for _, value, _ in rows) or 1
    parts = [f"<svg width='{width}' height='{height}' role='img'>"]
    for i, (label, value, colour) in enumerate(rows):
        y = 5 + i * row_h
        bar = (width - label_w - 90) * value / peak
        parts.append(f"<text x='{label_w - 6}' y='{y + 15}' text-anchor='end'>{_e(label)}</text>"
                     f"<rect x='{label_w}' y='{y + 3}' width='{bar:.1f}' height='{row_h - 6}' fill='{colour}'/>"
                     f"<text x='{label_w + bar + 6:.1f}' y='{y + 15}'>{_e(_fmt(value))}{_e(unit)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[bool]) -> str:
    head = "".join(f"<th class='{'n' if n else ''}'>{_e(h)}</th>" for h, n in zip(headers, numeric, strict=True))
    body = "".join(
        "<tr>" + "".join(
            f"<td class='n'>{_e(_fmt(cell))}</td>" if n else f"<td><code>{_e(cell)}</code></td>"
            for cell, n in zip(row, numeric, strict=True)
        ) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _accounting_block(summary: dict[str, Any]) -> str:
    """Every record of the window, from read to analysed, when the pipeline recorded its counts."""
    accounting = summary.get("accounting")
    if not accounting:
        return ""
    parts = []
    for key, label in (("dead_lettered", "kept aside at consume (undecodable)"),
                       ("invalid_at_conversion", "kept aside at conversion (invalid)")):
        part = accounting[key]
        link = f" — <a href='{_e(part['file'])}'>{_e(part['file'])}</a>" if part.get("file") else ""
        reasons = "".join(f"<li>{_e(reason)}: {_fmt(n)}</li>" for reason, n in (part.get("by_reason") or {}).items())
        parts.append(f"<li>{_e(label)}: <b>{_fmt(part['count'])}</b>{link}<ul>{reasons}</ul></li>")
    verdict = "the counts add up" if accounting["adds_up"] else "<b>the counts do not add up</b>"
    return (f"<h2>Every record of the window</h2><ul class='accounting'>"
            f"<li>records in the window: <b>{_fmt(accounting['window_records'])}</b></li>"
            f"<li>read: {_fmt(accounting['read'])}</li>{''.join(parts)}"
            f"<li>handed to the analysis: {_fmt(accounting['handed_to_analysis'])}; lines analysed: "
            f"{_fmt(accounting['analysed_lines'])}</li></ul><p class='muted'>{verdict}.</p>")


def _comparison_block(summary: dict[str, Any]) -> str:
    """Show this window beside the previous one, when that window's summary exists."""
    comparison = summary.get("previous_window")
    if not comparison:
        return ""
    rows = [(label, comparison["previous"][key], comparison["current"][key])
            for key, label in (("requests", "requests"), ("unique_ips", "distinct IPs"))]
    rate = [("5xx rate", f"{comparison['previous']['server_error_rate']:.2%}",
             f"{comparison['current']['server_error_rate']:.2%}")]
    return ("<h2>Compared with the previous window</h2>"
            + _table(["figure", "previous", "this window"], rows, [False, True, True])
            + _table(["figure", "previous", "this window"], rate, [False, False, False]))


def _skew(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:,.3f} s"
    if seconds < 7200:
        return f"{seconds / 60:,.1f} min ({seconds:,.0f} s)"
    return f"{seconds / 3600:,.1f} h ({seconds:,.0f} s)"


def _window_block(window: dict[str, Any] | None) -> str:
    """Show what the time series covers, and the records whose own timestamps fall outside it."""
    if not window:
        return ("<p class='muted'>No analysis window was given: the per-hour figures cover every "
                "record's own time.</p>")
    before, after = window["before"], window["after"]
    rows = [
        ("inside the window", window["in_window"], "-", "-"),
        ("before the window", before["records"], before["earliest"] or "-", _skew(before["max_skew_seconds"])),
        ("at or after its end", after["records"], after["latest"] or "-", _skew(after["max_skew_seconds"])),
    ]
    table = _table(["records", "count", "farthest record (UTC)", "largest skew"], rows,
                   [False, True, False, False])
    return (f"<h2>Analysis window</h2><p class='muted'>[{_e(window['since'] or '-inf')}, "
            f"{_e(window['until'] or '+inf')}) UTC. Records whose own timestamps fall outside it are valid "
            f"and counted in the other figures, but kept out of the per-hour and per-minute figures."
            f"</p>{table}")


def _mapping_block(entries: Sequence[dict[str, Any]]) -> str:
    """Which JSON keys were read for each field, and how they were chosen."""
    if not entries:
        return ""
    parts = ["<h2>Fields read</h2>"]
    for entry in entries:
        detection = entry.get("detection") or {}
        rows = []
        for name, info in (detection.get("fields") or {}).items():
            how = info.get("how", "")
            if "usable_in" in info:
                how += f" (usable in {info['usable_in']:,} of {detection.get('sampled_records', 0):,} records)"
            if info.get("also_usable"):
                how += f"; also usable: {', '.join(info['also_usable'])}"
            if name == "latency_ms":
                how += f"; unit {info.get('unit', 'ms')}"
            rows.append((name, info.get("key", ""), how))
        parts.append(f"<p class='muted'>{_e(detection.get('method', ''))}; "
                     f"{_e(entry.get('partials', 1))} partial(s)</p>")
        parts.append(_table(["field", "JSON key", "how"], rows, [False, False, False]))
        if detection.get("problem"):
            parts.append(f"<div class='anomalies'><p>{_e(detection['problem'])}</p></div>")
    return "".join(parts)


def _estimates(summary: dict[str, Any]) -> dict[str, Any]:
    return dict((summary.get("accuracy") or {}).get("estimates") or {})


def _accuracy_block(accuracy: dict[str, Any] | None) -> str:
    """Say which figures are exact and which are estimates (with their bounds)."""
    if not accuracy:
        return ""
    rows = []
    for name, estimate in sorted((accuracy.get("estimates") or {}).items()):
        if "estimate" in estimate:
            bound = f"{estimate['estimate']} (between {estimate['lower_bound']} and {estimate['upper_bound']})"
        elif "max_error" in estimate:
            bound = f"each count within its range; none missed above {estimate['max_error']}"
        else:
            bound = "-"
        rows.append((name, bound, estimate.get("method", "")))
    if not rows:
        return (f"<p class='muted'>All figures are exact (client IPs, paths and user agents below "
                f"{_e(accuracy['exact_keys'])} distinct keys each).</p>")
    table = _table(["figure", "estimate and bound", "method"], rows, [False, False, False])
    return ("<h2>Estimated figures</h2>" + table
            + f"<p class='muted'>{_e(accuracy.get('note', ''))}</p>")


def render_report(summary: dict[str, Any], *, title: str = "Log analysis") -> str:
    totals = summary["totals"]
    errors = summary["errors"]
    # The analyzer's own categories first, then any a later step added (e.g. the pipeline's "volume").
    categories = summary["anomalies"]
    anomalies = [a for name in ("hours", "ips", *sorted(set(categories) - {"hours", "ips"})) for a in categories[name]]
    period = summary["period"]
    latency = summary["latency_ms"]

    if anomalies:
        items = "".join(f"<li><b>{_e(a['kind'].replace('_', ' '))}</b>: {_e(a['message'])}</li>" for a in anomalies)
        anomaly_block = f"<div class='anomalies'><h2>Anomalies ({len(anomalies)})</h2><ul>{items}</ul></div>"
    else:
        anomaly_block = "<div class='anomalies none'><h2>Anomalies</h2><p>None found.</p></div>"

    cards = [
        ("lines", totals["lines"]), ("valid records", totals["valid"]), ("invalid lines", totals["invalid"]),
        ("unique IPs" + (" (est.)" if "distinct_ips" in _estimates(summary) else ""), summary["unique_ips"]),
        ("4xx", errors["client_errors"]),
        ("4xx rate", f"{errors['client_error_rate']:.2%}"), ("5xx", errors["server_errors"]),
        ("5xx rate", f"{errors['server_error_rate']:.2%}"), ("bytes", summary["bytes"]["total"]),
        ("p50 latency", f"{_fmt(latency['p50'])} ms"), ("p99 latency", f"{_fmt(latency['p99'])} ms"),
    ]
    card_html = "".join(f"<div class='card'><span class='muted'>{_e(k)}</span><b>{_e(_fmt(v))}</b></div>"
                        for k, v in cards)

    status_rows = [(code, n, _STATUS_COLOURS.get(f"{code[0]}xx", "#999")) for code, n in summary["status"].items()]
    latency_rows = [(name, latency[name], "#7e57c2") for name in ("p50", "p90", "p95", "p99")
                    if latency.get(name) is not None]

    top = summary["top"]
    tops = "".join(
        f"<div><h2>Top {_e(label)}</h2>"
        + _table([label[:-1] if label.endswith("s") else label, "requests"],
                 [(row["key"], row["count"] if "lower_bound" not in row
                   else f"{row['count']} ({row['lower_bound']}-{row['upper_bound']})") for row in top[key]],
                 [False, True])
        + "</div>"
        for key, label in (("ips", "client IPs"), ("paths", "paths"), ("user_agents", "user agents"))
    )
    invalid = summary["invalid"]
    reasons = _table(["reason", "lines"], sorted(invalid["reasons"].items()), [False, True])
    sample = _table(["input", "line", "reason", "text"],
                    [(s["source"], s["line"], s["message"], s["text"]) for s in invalid["sample"]],
                    [False, True, False, False])
    field_errors = _table(["field", "values ignored"], sorted(summary["field_errors"].items()), [False, True])
    hours_table = _table(["hour (UTC)", "requests", "4xx", "5xx"],
                         [(h["hour"], h["requests"], h["client_errors"], h["server_errors"])
                          for h in summary["per_hour"]], [False, True, True, True])
    inputs = ", ".join(_e(item.get("name")) for item in summary["inputs"]) or "-"
    period_text = f"{_e(period['first_minute'] or '-')} to {_e(period['last_minute'] or '-')}"

    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{_e(title)}</h1>
<p class="muted">Period (UTC): {period_text}. Inputs: {inputs}</p>
{anomaly_block}
<div class="cards">{card_html}</div>
{_accounting_block(summary)}
{_comparison_block(summary)}
<h2>Requests and errors per hour (UTC)</h2>
<p class="muted">Bars: requests per hour split into ok, 4xx and 5xx; line: requests per minute.</p>
{_traffic_chart(summary["per_hour"], summary["per_minute"])}
{_window_block(summary.get("window"))}
<div class="grid">
<div><h2>Status mix</h2>{_hbar_chart(status_rows)}</div>
<div><h2>Latency percentiles</h2>{_hbar_chart(latency_rows, unit=" ms")}
<p class="muted">{_e(latency["method"])}</p></div>
</div>
<div class="grid">{tops}</div>
{_accuracy_block(summary.get("accuracy"))}
<h2>Requests per hour</h2>{hours_table}
<h2>Invalid lines</h2>{reasons}
<p class="muted">Sample (first {len(invalid["sample"])} by input and line):</p>{sample}
<h2>Ignored field values</h2>{field_errors}
{_mapping_block(summary.get("field_mappings") or [])}
</body></html>
"""
