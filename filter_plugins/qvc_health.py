"""Filters of the cluster health report (playbooks/health.yml)."""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

COLUMNS = [
    ("instance", "INSTANCE"), ("host", "HOST"), ("gpu", "GPU"), ("endpoint", "ENDPOINT"),
    ("image", "IMAGE"), ("model", "MODEL"), ("health", "HEALTH"), ("in_flight", "IN-FLIGHT"),
    ("routed", "LB ROUTES"),
]

_IN_FLIGHT = re.compile(r"^qvc_webui_requests_in_flight(?:\{[^}]*\})?\s+([0-9.eE+-]+)\s*$", re.M)


def qvc_metric_in_flight(metrics_text: str | None) -> int | None:
    """The exact in-flight gauge from a /metrics body, or None when absent."""
    m = _IN_FLIGHT.search(metrics_text or "")
    return int(float(m.group(1))) if m else None


def qvc_upstream_state(conf_text: str | None, address: str, port: int) -> str:
    """How the LB config lists address:port: 'yes' (routed), 'down' (drained) or 'no' (absent)."""
    pattern = re.compile(rf"^\s*server\s+\[?{re.escape(str(address))}\]?:{int(port)}\b([^;]*);", re.M)
    states = {"down" if re.search(r"\bdown\b", m.group(1)) else "yes" for m in pattern.finditer(conf_text or "")}
    if not states:
        return "no"
    return "down" if "down" in states else "yes"


def qvc_row_healthy(row: Mapping[str, Any]) -> bool:
    return row.get("health") == "ok" and row.get("routed") == "yes"


def qvc_unhealthy(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in rows if not qvc_row_healthy(r)]


def qvc_health_table(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Rows as aligned text lines (header first); unhealthy rows are marked with '!'."""
    rows = list(rows)
    cells = [[str(r.get(key, "") if r.get(key) is not None else "-") for key, _ in COLUMNS] for r in rows]
    widths = [max([len(title)] + [len(c[i]) for c in cells]) for i, (_, title) in enumerate(COLUMNS)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = ["  " + fmt.format(*[t for _, t in COLUMNS])]
    for row, c in zip(rows, cells):
        lines.append(("  " if qvc_row_healthy(row) else "! ") + fmt.format(*c))
    bad = len(qvc_unhealthy(rows))
    lines.append(f"{len(rows)} instance(s), {bad} unhealthy or not routed")
    return lines


class FilterModule:
    def filters(self):
        return {
            "qvc_metric_in_flight": qvc_metric_in_flight,
            "qvc_upstream_state": qvc_upstream_state,
            "qvc_unhealthy": qvc_unhealthy,
            "qvc_health_table": qvc_health_table,
        }
