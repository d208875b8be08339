"""The operator's view: Grafana dashboard, PrometheusRule (checked and unit-tested with
promtool) and tracing values; every series they query exists on a live Ping or is named
here as a kube-state-metrics or cAdvisor series."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from tests.conftest import REPO, SEED_ROW
from tests.unit.live_server import start_server, wait_ready

from ping.settings import Settings

from .helm import CHART_DIR, HelmError, Manifest, main_container, one, render_chart

pytestmark = pytest.mark.chart

DASHBOARD_FILE = CHART_DIR / "dashboards" / "ping.json"
DASHBOARD: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
RULE_VALUES = {"prometheusRule": {"enabled": True}}
ALERTS = {
    "PingHigh5xxRatio",
    "PingHighLatencyP99",
    "PingNoReadyPods",
    "PingPodsNotReady",
    "PingModelRefused",
    "PingMemoryNearLimit",
}
# Series that come from the cluster, not from Ping: kube-state-metrics and the kubelet's
# cAdvisor, both part of kube-prometheus-stack. Anything else must be on Ping's /metrics.
CLUSTER_SERIES = {
    "kube_deployment_spec_replicas",
    "kube_deployment_status_replicas_available",
    "kube_deployment_status_replicas_unavailable",
    "kube_horizontalpodautoscaler_spec_max_replicas",
    "kube_horizontalpodautoscaler_spec_min_replicas",
    "kube_horizontalpodautoscaler_status_current_replicas",
    "kube_horizontalpodautoscaler_status_desired_replicas",
    "kube_pod_container_resource_limits",
    "kube_pod_container_resource_requests",
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
}
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{")
_LABEL_VALUES = re.compile(r"label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*)")


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression; the chart writes every one with a selector."""
    return set(_SELECTOR.findall(expr)) | set(_LABEL_VALUES.findall(expr))


def dashboard_queries() -> list[str]:
    queries = [t["expr"] for p in DASHBOARD["panels"] for t in p.get("targets", [])]
    variables = DASHBOARD["templating"]["list"]
    return queries + [v["definition"] for v in variables if v["type"] == "query"]


def rule_spec(values: dict[str, Any] | None = None) -> dict[str, Any]:
    rule = one(render_chart(values={**RULE_VALUES, **(values or {})}), "PrometheusRule")
    return rule["spec"]  # type: ignore[no-any-return]


def alerts(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for group in spec["groups"] for r in group["rules"]}


def promtool() -> str:
    found = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if not found and (REPO / ".tools" / "bin" / "promtool").is_file():
        found = str(REPO / ".tools" / "bin" / "promtool")
    assert found, "promtool is needed: run `make promtool` (from Debian's prometheus package)"
    return found


# -- Grafana dashboard ---------------------------------------------------------------------------


def test_the_dashboard_configmap_carries_the_chart_file_for_the_grafana_sidecar() -> None:
    values = {"grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "ML"}}}
    configmap = one(
        render_chart(values=values, show_only=["templates/monitoring/dashboard.yaml"]), "ConfigMap"
    )

    assert configmap["metadata"]["name"] == "ping-dashboard"
    assert configmap["metadata"]["namespace"] == "ping"
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "ML"}
    assert json.loads(configmap["data"]["ping.json"]) == DASHBOARD


def test_the_dashboard_can_live_in_grafanas_namespace() -> None:
    values = {"grafanaDashboard": {"enabled": True, "namespace": "monitoring"}}
    objects = render_chart(values=values, show_only=["templates/monitoring/dashboard.yaml"])
    assert one(objects, "ConfigMap")["metadata"]["namespace"] == "monitoring"


def test_the_dashboard_has_the_panels_an_operator_needs() -> None:
    titles = {p["title"] for p in DASHBOARD["panels"] if p["type"] != "row"}
    assert {
        "Request rate",
        "Errors by status",
        "Prediction latency",
        "Model call time",
        "Batch size",
        "Queue wait",
        "In flight",
        "Pods ready",
        "CPU against requests",
        "Memory against requests and limit",
        "HPA replicas",
    } <= titles
    latency = next(p for p in DASHBOARD["panels"] if p["title"] == "Prediction latency")
    assert [t["legendFormat"] for t in latency["targets"]] == ["p50", "p95", "p99"]


def test_every_dashboard_query_uses_the_datasource_and_release_variables() -> None:
    variables = {v["name"] for v in DASHBOARD["templating"]["list"]}
    assert variables == {"datasource", "namespace", "job"}
    for panel in DASHBOARD["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"
            assert '"$namespace"' in target["expr"], target["expr"]
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))


# -- PrometheusRule --------------------------------------------------------------------------------


def test_the_rule_has_the_six_alerts_with_runbooks_and_severities() -> None:
    rule = one(
        render_chart(values={"prometheusRule": {"enabled": True, "labels": {"release": "kps"}}}),
        "PrometheusRule",
    )
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == "ping"
    assert rule["metadata"]["labels"]["release"] == "kps"
    found = alerts(rule["spec"])

    assert found.keys() == ALERTS
    for name, alert in found.items():
        assert alert["labels"]["severity"] in {"critical", "warning"}
        assert alert["annotations"]["runbook_url"] == f"README.md#{name.lower()}"
        assert alert["annotations"]["summary"]
        assert "{{ $labels." in alert["annotations"]["description"]


def test_every_runbook_anchor_is_a_heading_of_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    headings = re.findall(r"^#+ (.+)$", readme, flags=re.MULTILINE)
    anchors = {re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-") for h in headings}

    for alert in alerts(rule_spec()).values():
        assert alert["annotations"]["runbook_url"].split("#")[1] in anchors


def test_thresholds_durations_severities_and_labels_come_from_values() -> None:
    values = {
        "prometheusRule": {
            "enabled": True,
            "runbookBaseUrl": "https://git.example/ping/README.md",
            "alertLabels": {"team": "ml"},
            "alerts": {
                "high5xxRatio": {"threshold": 0.2, "for": "10m", "severity": "page"},
                "latencyP99": {"thresholdSeconds": 1.5},
                "memoryNearLimit": {"ratio": 0.8},
                "podsNotReady": {"enabled": False},
            },
        }
    }
    found = alerts(rule_spec(values))

    assert "PingPodsNotReady" not in found
    ratio = found["PingHigh5xxRatio"]
    assert ratio["expr"].endswith("> 0.2")
    assert ratio["for"] == "10m"
    assert ratio["labels"] == {"severity": "page", "team": "ml"}
    assert (
        ratio["annotations"]["runbook_url"] == "https://git.example/ping/README.md#pinghigh5xxratio"
    )
    assert found["PingHighLatencyP99"]["expr"].endswith("> 1.5")
    assert found["PingMemoryNearLimit"]["expr"].endswith("> 0.8")


def test_the_rule_selects_this_releases_series_or_the_given_selector() -> None:
    default = alerts(rule_spec())["PingModelRefused"]["expr"]
    custom = alerts(rule_spec({"prometheusRule": {"enabled": True, "selector": 'service="x"'}}))

    assert 'ping_model_refused{namespace="ping", job="ping"}' in default
    assert 'ping_model_refused{service="x"}' in custom["PingModelRefused"]["expr"]
    memory = alerts(rule_spec())["PingMemoryNearLimit"]["expr"]
    assert 'pod=~"ping-[a-z0-9]+-[a-z0-9]+", container="ping"' in memory


def test_promtool_checks_the_rendered_rules(tmp_path: Path) -> None:
    rules = tmp_path / "ping.rules.yaml"
    rules.write_text(yaml.safe_dump(rule_spec()))

    result = subprocess.run(
        [promtool(), "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 6 rules found" in result.stdout


POD = 'namespace="ping", pod="ping-7d4b9c5f6-x2k9p", container="ping"'
CANARY = 'namespace="ping", pod="ping-canary-7d4b9c5f6-q8w2e", container="ping"'
ROUTE = 'namespace="ping", job="ping", method="POST", route="/predict"'
DEPLOYMENT = 'namespace="ping", deployment="ping"'
RULES_TEST = {
    "rule_files": ["ping.rules.yaml"],
    "evaluation_interval": "1m",
    "tests": [
        {
            "interval": "1m",
            "input_series": [
                # 10% of predictions fail; thousands of 200 probes must not dilute that.
                {"series": f'ping_requests_total{{{ROUTE}, status="500"}}', "values": "0+10x30"},
                {"series": f'ping_requests_total{{{ROUTE}, status="200"}}', "values": "0+90x30"},
                {
                    "series": 'ping_requests_total{namespace="ping", job="ping", method="GET", '
                    'route="/readyz", status="200"}',
                    "values": "0+5000x30",
                },
                # Every prediction takes between 0.5 s and 1 s: p99 is 0.995 s.
                *(
                    {
                        "series": f'ping_request_duration_seconds_bucket{{{ROUTE}, le="{le}"}}',
                        "values": f"0+{n}x30",
                    }
                    for le, n in (("0.25", 0), ("0.5", 0), ("1.0", 100), ("+Inf", 100))
                ),
                {
                    "series": f"kube_deployment_status_replicas_available{{{DEPLOYMENT}}}",
                    "values": "0x30",
                },
                {
                    "series": f"kube_deployment_spec_replicas{{{DEPLOYMENT}}}",
                    "values": "2x30",
                },
                {
                    "series": f"kube_deployment_status_replicas_unavailable{{{DEPLOYMENT}}}",
                    "values": "2x30",
                },
                {
                    "series": 'ping_model_refused{namespace="ping", job="ping", '
                    'pod="ping-7d4b9c5f6-x2k9p", reason="version_mismatch"}',
                    "values": "1x30",
                },
                {"series": f"container_memory_working_set_bytes{{{POD}}}", "values": "950x30"},
                {
                    "series": f'kube_pod_container_resource_limits{{{POD}, resource="memory"}}',
                    "values": "1000x30",
                },
                # Another release's pod (ping-canary) near its limit is not this release's alert.
                {"series": f"container_memory_working_set_bytes{{{CANARY}}}", "values": "990x30"},
                {
                    "series": f'kube_pod_container_resource_limits{{{CANARY}, resource="memory"}}',
                    "values": "1000x30",
                },
            ],
            "alert_rule_test": [
                # Nothing fires before its `for:` has passed.
                {"eval_time": "3m", "alertname": "PingHigh5xxRatio", "exp_alerts": []},
                {"eval_time": "10m", "alertname": "PingPodsNotReady", "exp_alerts": []},
                {
                    "eval_time": "20m",
                    "alertname": "PingHigh5xxRatio",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                "severity": "critical",
                                "namespace": "ping",
                                "job": "ping",
                            },
                            "exp_annotations": {
                                "summary": "Ping answers too many requests with a 5xx error.",
                                "description": "10% of the requests to ping in ping failed with "
                                "5xx over 5 minutes (threshold 5%).",
                                "runbook_url": "README.md#pinghigh5xxratio",
                            },
                        }
                    ],
                },
                {
                    "eval_time": "20m",
                    "alertname": "PingHighLatencyP99",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                "severity": "warning",
                                "namespace": "ping",
                                "job": "ping",
                            },
                            "exp_annotations": {
                                "summary": "Ping's p99 prediction latency is above its threshold.",
                                "description": "p99 latency of predictions on ping in ping is "
                                "995ms (threshold 500ms).",
                                "runbook_url": "README.md#pinghighlatencyp99",
                            },
                        }
                    ],
                },
                {
                    "eval_time": "20m",
                    "alertname": "PingNoReadyPods",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                "severity": "critical",
                                "namespace": "ping",
                                "deployment": "ping",
                            },
                            "exp_annotations": {
                                "summary": "No Ping pod is ready; every prediction fails.",
                                "description": "Deployment ping in ping has no available pod.",
                                "runbook_url": "README.md#pingnoreadypods",
                            },
                        }
                    ],
                },
                {
                    "eval_time": "20m",
                    "alertname": "PingPodsNotReady",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                "severity": "warning",
                                "namespace": "ping",
                                "deployment": "ping",
                            },
                            "exp_annotations": {
                                "summary": "Some Ping pods have not been ready for a while.",
                                "description": "2 pod(s) of ping in ping have been unavailable "
                                "for more than 15m.",
                                "runbook_url": "README.md#pingpodsnotready",
                            },
                        }
                    ],
                },
                {
                    "eval_time": "20m",
                    "alertname": "PingModelRefused",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                "severity": "critical",
                                "namespace": "ping",
                                "pod": "ping-7d4b9c5f6-x2k9p",
                                "reason": "version_mismatch",
                            },
                            "exp_annotations": {
                                "summary": "A Ping pod refuses to serve its model.",
                                "description": "Pod ping-7d4b9c5f6-x2k9p in ping refuses its "
                                "model (version_mismatch) and stays not ready.",
                                "runbook_url": "README.md#pingmodelrefused",
                            },
                        }
                    ],
                },
                {
                    "eval_time": "20m",
                    "alertname": "PingMemoryNearLimit",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                "severity": "warning",
                                "namespace": "ping",
                                "pod": "ping-7d4b9c5f6-x2k9p",
                            },
                            "exp_annotations": {
                                "summary": "A Ping pod's memory is close to its limit; it risks "
                                "an OOM kill.",
                                "description": "Pod ping-7d4b9c5f6-x2k9p in ping uses 95% of its "
                                "memory limit (threshold 90%).",
                                "runbook_url": "README.md#pingmemorynearlimit",
                            },
                        }
                    ],
                },
            ],
        }
    ],
}


def test_promtool_unit_tests_fire_each_alert_with_its_annotations(tmp_path: Path) -> None:
    (tmp_path / "ping.rules.yaml").write_text(yaml.safe_dump(rule_spec()))
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(RULES_TEST, sort_keys=False))

    result = subprocess.run(
        [promtool(), "test", "rules", "test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    tested = {case["alertname"] for case in RULES_TEST["tests"][0]["alert_rule_test"]}
    assert tested == ALERTS


# -- Every series they query exists ---------------------------------------------------------------


@pytest.fixture(scope="module")
def live_series(model_dir: Path) -> set[str]:
    """Every sample name a real Ping can export, from its OpenMetrics families (so a family
    with no sample yet, such as ping_model_refused, still counts)."""
    server = start_server(model_dir)
    try:
        wait_ready(server)
        assert httpx.post(f"{server.url}/predict", json={"features": SEED_ROW}).status_code == 200
        text = httpx.get(
            f"{server.url}/metrics", headers={"Accept": "application/openmetrics-text"}
        ).text
    finally:
        server.process.kill()
        server.process.communicate()
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
    names = set()
    for family in text_string_to_metric_families(text):
        for suffix in suffixes.get(family.type, [""]):
            names.add(family.name + suffix)
    return names


@pytest.mark.parametrize("source", ["dashboard", "rules"])
def test_every_series_queried_is_exported_by_ping_or_named_as_a_cluster_series(
    source: str, live_series: set[str]
) -> None:
    if source == "dashboard":
        queries = dashboard_queries()
    else:
        queries = [r["expr"] for r in alerts(rule_spec()).values()]
    referenced: set[str] = set()
    for query in queries:
        names = metric_names(query)
        assert names, f"no metric found in {query!r}"
        referenced |= names

    unknown = referenced - live_series - CLUSTER_SERIES
    assert unknown == set(), "queried, but neither on Ping's /metrics nor a cluster series"
    assert any(name.startswith("ping_") for name in referenced)


def test_the_name_extraction_sees_every_metric_of_a_query() -> None:
    # The cross-check is only as good as this; prove it on a query of each shape.
    assert metric_names(
        'histogram_quantile(0.99, sum by (le) (rate(ping_batch_rows_bucket{job="$job"}[5m])))'
        ' / on() group_left max(kube_pod_container_resource_limits{resource="memory"})'
    ) == {"ping_batch_rows_bucket", "kube_pod_container_resource_limits"}
    assert metric_names("label_values(ping_requests_in_flight, namespace)") == {
        "ping_requests_in_flight"
    }


# -- Tracing values --------------------------------------------------------------------------------


def env_of(objects: list[Manifest]) -> dict[str, Any]:
    return {
        e["name"]: e.get("value", e.get("valueFrom"))
        for e in main_container(objects).get("env", [])
    }


def test_tracing_is_off_by_default_and_adds_no_environment(rendered: list[Manifest]) -> None:
    assert one(rendered, "ConfigMap")["data"]["PING_TRACING"] == "false"
    assert not any(name.startswith("OTEL_") for name in env_of(rendered))


def test_tracing_values_become_the_standard_otel_variables() -> None:
    values = {
        "tracing": {
            "enabled": True,
            "endpoint": "http://otel-collector.observability:4318",
            "sampler": "parentbased_traceidratio",
            "samplerArg": 0.1,
            "resourceAttributes": {"deployment.environment.name": "prod"},
        },
        "extraEnv": [{"name": "OTEL_EXPORTER_OTLP_HEADERS", "value": "x-team=ml"}],
    }
    objects = render_chart(values=values)
    env = env_of(objects)

    assert one(objects, "ConfigMap")["data"]["PING_TRACING"] == "true"
    assert env["K8S_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["OTEL_SERVICE_NAME"] == "ping"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4318"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.1"
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == (
        "k8s.namespace.name=ping,k8s.deployment.name=ping,k8s.pod.name=$(K8S_POD_NAME),"
        "deployment.environment.name=prod"
    )
    # extraEnv comes last, so it can add (or override) any variable.
    names = [e["name"] for e in main_container(objects)["env"]]
    assert names[-1] == "OTEL_EXPORTER_OTLP_HEADERS"
    assert names.index("K8S_POD_NAME") < names.index("OTEL_RESOURCE_ATTRIBUTES")


def test_every_ping_variable_the_chart_sets_is_a_setting_ping_accepts() -> None:
    """Ping exits 2 on an unknown PING_* variable, so neither the ConfigMap nor the container's
    own env may carry one (tracing once added PING_POD_NAME, and every pod refused to start)."""
    objects = render_chart(values={"tracing": {"enabled": True}})
    names = set(env_of(objects)) | set(one(objects, "ConfigMap")["data"])
    ping_names = {name for name in names if name.startswith("PING_")}
    known = {f"PING_{field.upper()}" for field in Settings.model_fields}
    assert "PING_TRACING" in ping_names
    assert ping_names <= known, sorted(ping_names - known)


def test_the_service_monitor_skips_the_headless_service_of_the_same_pods() -> None:
    objects = render_chart(
        values={"serviceMonitor": {"enabled": True}, "service": {"headless": True}}
    )
    selector = one(objects, "ServiceMonitor")["spec"]["selector"]
    services = [o for o in objects if o["kind"] == "Service"]
    assert len(services) == 2

    def selected(service: Manifest) -> bool:
        labels = service["metadata"]["labels"]
        matches = all(labels.get(k) == v for k, v in selector["matchLabels"].items())
        for expression in selector.get("matchExpressions", []):
            assert expression["operator"] == "NotIn"
            matches = matches and labels.get(expression["key"]) not in expression["values"]
        return bool(matches)

    scraped = [s["metadata"]["name"] for s in services if selected(s)]
    assert scraped == ["ping"]


def test_tracing_behind_a_deny_all_network_policy_refuses_to_render() -> None:
    with pytest.raises(HelmError, match="no span would reach the collector"):
        render_chart(values={"tracing": {"enabled": True}, "networkPolicy": {"enabled": True}})
    egress = [{"to": [{"namespaceSelector": {}}], "ports": [{"port": 4318, "protocol": "TCP"}]}]
    assert render_chart(
        values={"tracing": {"enabled": True}, "networkPolicy": {"enabled": True, "egress": egress}}
    )
