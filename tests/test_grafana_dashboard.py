"""The Grafana dashboard in the repository queries only metrics the server exports, and shows every one."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

DASHBOARD = Path(__file__).resolve().parent.parent / "realtime" / "metrics" / "grafana_dashboard.json"
#: PromQL words that are neither functions (followed by "(") nor metric names.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
            "inf", "nan"}
#: The sample names each metric type exports (multiprocess mode exports no ``_created``).
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not its functions, keywords, labels or numbers)."""
    expr = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    found = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", expr):
        if expr[match.end():].lstrip().startswith("(") or match.group().lower() in KEYWORDS:
            continue
        found.add(match.group())
    return found


def dashboard_queries() -> list[tuple[str, str]]:
    """``(where, PromQL)`` of every panel target and of every query variable (its ``label_values`` metric)."""
    board: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = [(f"panel {panel['title']!r}", target["expr"]) for panel in board["panels"] for target in panel["targets"]]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((\w+),\s*\w+\)", variable["definition"])
            assert match, variable["definition"]
            queries.append((f"variable {variable['name']!r}", match.group(1)))
    return queries


def exported_names(app: Flask) -> set[str]:
    """Every sample name ``GET /metrics`` exports (a labelled metric's too, before it has any sample)."""
    text = app.test_client().get("/metrics").get_data(as_text=True)
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        if family.name.startswith("realtime_")
        for suffix in SUFFIXES[family.type]
    }


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (le) (rate(a_bucket{event="x:y", instance=~"$i"}[$__rate_interval]))', {"a_bucket"}),
        ("sum(rate(a_sum[5m])) / clamp_min(sum(rate(a_count[5m])), 1e-9)", {"a_sum", "a_count"}),
        ("histogram_quantile(0.99, sum by (le, event) (rate(b_bucket[1m]))) > bool 2", {"b_bucket"}),
    ],
)
def test_metric_names_reads_the_metrics_of_an_expression(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_every_query_names_an_exported_metric(app: Flask) -> None:
    exported = exported_names(app)
    queries = dashboard_queries()

    assert len(queries) >= 12
    unknown = {where: sorted(metric_names(expr) - exported) for where, expr in queries if metric_names(expr) - exported}
    assert unknown == {}, f"the dashboard queries metrics /metrics does not export: {unknown}"
    assert all(metric_names(expr) for _, expr in queries)


def test_every_exported_metric_is_on_the_dashboard(app: Flask) -> None:
    text = app.test_client().get("/metrics").get_data(as_text=True)
    families = {family.name for family in text_string_to_metric_families(text) if family.name.startswith("realtime_")}
    queried = {name for _, expr in dashboard_queries() for name in metric_names(expr)}

    missing = {family for family in families if not any(name.startswith(family) for name in queried)}
    assert missing == set()
