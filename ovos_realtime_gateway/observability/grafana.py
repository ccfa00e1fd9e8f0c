"""Grafana dashboards as code, the model and its rendering: a `Dashboard` of `Panel`s of PromQL
`Query`s (helpers build the usual rate, quantile and ratio expressions, each selecting
`instance=~"$instance"` over `$__rate_interval`), rendered as plain dashboard JSON. The gateway's
own dashboards are in `dashboards.py`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GW = 'instance=~"$instance"'  # every gateway series
JOB = 'job="ovos-realtime", instance=~"$instance"'  # series Prometheus itself adds (up, process_*)
RI = "$__rate_interval"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
TAG = "ovos-realtime"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"  # or "stat"
    stack: bool = False
    max: float | None = None


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...] = field(default_factory=tuple)


def q(expr: str, legend: str = "") -> Query:
    return Query(" ".join(expr.split()), legend)


def rate(metric: str, by: str, where: str = "") -> str:
    selector = f"{GW}, {where}" if where else GW
    return f"sum by ({by}) (rate({metric}{{{selector}}}[{RI}]))"


def quantile(phi: float, metric: str, by: str, where: str = "") -> str:
    selector = f"{GW}, {where}" if where else GW
    return f"histogram_quantile({phi}, sum by ({by}, le) (rate({metric}_bucket{{{selector}}}[{RI}])))"


def ratio(metric: str, by: str, part: str) -> str:
    """The share of `metric`'s rate that matches `part` (0 when none does, e.g. no errors)."""
    return f"({rate(metric, by, part)} or {rate(metric, by)} * 0) / {rate(metric, by)}"


def _panel_json(panel: Panel, panel_id: int, grid: dict[str, int]) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit}
    if panel.max is not None:
        defaults["max"] = panel.max
    if panel.kind == "stat":
        options: dict[str, Any] = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "auto",
        }
    else:
        defaults["custom"] = {"stacking": {"mode": "normal" if panel.stack else "none", "group": "A"}}
        options = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": grid,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": query.expr,
                "legendFormat": query.legend,
            }
            for i, query in enumerate(panel.queries)
        ],
    }


def _layout(panels: tuple[Panel, ...]) -> list[dict[str, Any]]:
    """Stats four to a row on top, graphs two to a row below."""
    out: list[dict[str, Any]] = []
    x = y = 0
    for kind, width, height in (("stat", 6, 4), ("timeseries", 12, 8)):
        for panel in (p for p in panels if p.kind == kind):
            if x + width > 24:
                x, y = 0, y + height
            out.append(_panel_json(panel, len(out) + 1, {"h": height, "w": width, "x": x, "y": y}))
            x += width
        if x:
            x, y = 0, y + height
    return out


def render(dashboard: Dashboard) -> dict[str, Any]:
    """The Grafana dashboard JSON (schema 39; Grafana 10 and later import it)."""
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": [TAG],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "annotations": {"list": []},
        "links": [
            {
                "type": "dashboards",
                "tags": [TAG],
                "asDropdown": True,
                "title": "ovos-realtime",
                "includeVars": True,
            }
        ],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                    "options": [],
                },
                {
                    "name": "instance",
                    "label": "Gateway",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "definition": "label_values(ovos_realtime_build_info, instance)",
                    "query": {
                        "query": "label_values(ovos_realtime_build_info, instance)",
                        "refId": "instance",
                    },
                    "refresh": 2,
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                    "hide": 0,
                    "sort": 1,
                    "options": [],
                },
            ]
        },
        "panels": _layout(dashboard.panels),
    }
