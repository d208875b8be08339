"""values.schema.json: strict, declares `global`, rejects bad values, matches the app's Settings."""

from __future__ import annotations

import json
import typing
from typing import Any

import annotated_types
import pytest

from ping.settings import Settings

from .helm import CHART_DIR, HelmError, render_chart

pytestmark = pytest.mark.chart

SCHEMA: dict[str, Any] = json.loads((CHART_DIR / "values.schema.json").read_text())

# config.<key> -> the Settings field it sets. Settings is the app's configuration reference.
CONFIG_FIELDS = {
    "modelDir": "model_dir",
    "host": "host",
    "logLevel": "log_level",
    "accessLog": "access_log",
    "maxRows": "max_rows",
    "maxBodyBytes": "max_body_bytes",
    "maxHeaderBytes": "max_header_bytes",
    "maxHeaders": "max_headers",
    "maxRequestLineBytes": "max_request_line_bytes",
    "headerTimeoutSeconds": "header_timeout_seconds",
    "bodyTimeoutSeconds": "body_timeout_seconds",
    "keepAliveSeconds": "keep_alive_seconds",
    "maxConnections": "max_connections",
    "maxQueuedRows": "max_queued_rows",
    "docs": "docs",
    "allowVersionMismatch": "allow_version_mismatch",
    "trustedTypes": "trusted_types",
    "allowPickle": "allow_pickle",
    "drainSeconds": "drain_seconds",
    "shutdownGraceSeconds": "shutdown_grace_seconds",
    "batchMaxRows": "batch_max_rows",
    "batchMaxWaitUs": "batch_max_wait_us",
}
# Settings fields the chart sets from other values than config.*.
DERIVED_FIELDS = {"port": "containerPort", "tracing": "tracing.enabled"}


def test_the_schema_is_draft_07_strict_and_declares_global() -> None:
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert SCHEMA["additionalProperties"] is False
    assert SCHEMA["properties"]["global"]["type"] == "object"


def test_global_values_from_a_parent_chart_are_accepted() -> None:
    assert render_chart(
        values={"global": {"imageRegistry": "r.example", "anything": {"nested": 1}}}
    )


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"replicaCont": 2}, "Additional property replicaCont is not allowed"),
        ({"replicaCount": -1}, "replicaCount: Must be greater than or equal to 0"),
        ({"replicaCount": "2"}, "replicaCount: Invalid type"),
        ({"image": {"pullPolicy": "Sometimes"}}, "image.pullPolicy must be one of"),
        ({"image": {"digest": "sha256:abc"}}, "image.digest: Does not match pattern"),
        ({"image": {"registry": "r.example"}}, "Additional property registry is not allowed"),
        ({"service": {"type": "ExternalName"}}, "service.type must be one of"),
        ({"service": {"port": 0}}, "service.port: Must be greater than or equal to 1"),
        ({"service": {"loadBalancerSourceRanges": ["10.0.0.1"]}}, "Does not match pattern"),
        ({"containerPort": 80}, "containerPort: Must be greater than or equal to 1024"),
        ({"config": {"logLevel": "verbose"}}, "config.logLevel must be one of"),
        ({"config": {"maxRows": 0}}, "config.maxRows: Must be greater than or equal to 1"),
        (
            {"config": {"maxBodyBytes": 10}},
            "config.maxBodyBytes: Must be greater than or equal to 64",
        ),
        (
            {"config": {"drainSeconds": -1}},
            "config.drainSeconds: Must be greater than or equal to 0",
        ),
        (
            {"config": {"shutdownGraceSeconds": 0}},
            "config.shutdownGraceSeconds: Must be greater than or equal to 1",
        ),
        ({"config": {"shutdownGraceSeconds": 1.5}}, "config.shutdownGraceSeconds: Invalid type"),
        ({"config": {"accessLog": "yes"}}, "config.accessLog: Invalid type"),
        ({"config": {"maxRows": None}}, "config: maxRows is required"),
        ({"config": {"modelDir": "models/iris"}}, "config.modelDir: Does not match pattern"),
        ({"config": {"workers": 4}}, "Additional property workers is not allowed"),
        ({"preStopSleepSeconds": -1}, "preStopSleepSeconds: Must be greater than or equal to 0"),
        (
            {"terminationGracePeriodSeconds": 0},
            "terminationGracePeriodSeconds: Must be greater than or equal to 1",
        ),
        (
            {"autoscaling": {"maxReplicas": 0}},
            "autoscaling.maxReplicas: Must be greater than or equal to 1",
        ),
        (
            {"autoscaling": {"targetCPUUtilizationPercentage": 0}},
            "Must be greater than or equal to 1",
        ),
        ({"podDisruptionBudget": {"maxUnavailable": 0}}, "podDisruptionBudget.maxUnavailable"),
        ({"podDisruptionBudget": {"maxUnavailable": "0%"}}, "podDisruptionBudget.maxUnavailable"),
        (
            {"podDisruptionBudget": {"minAvailable": 1}},
            "Additional property minAvailable is not allowed",
        ),
        ({"ingress": {"hosts": []}}, "ingress.hosts: Array must have at least 1 items"),
        (
            {"ingress": {"hosts": [{"host": "a", "paths": [{"path": "/", "pathType": "Glob"}]}]}},
            "pathType must be one of",
        ),
        ({"podLabels": {"app.kubernetes.io/name": "other"}}, "podLabels"),
        (
            {"serviceMonitor": {"interval": "30 seconds"}},
            "serviceMonitor.interval: Does not match pattern",
        ),
        (
            {"readinessProbe": {"httpGet": None, "exec": {"command": ["true"]}}},
            "readinessProbe: httpGet is required",
        ),
        ({"test": {"waitSeconds": 0}}, "test.waitSeconds: Must be greater than or equal to 1"),
        ({"test": {"request": [1, 2]}}, "test.request: Invalid type"),
        ({"resources": {"requests": {"cpu": "lots"}}}, "resources.requests.cpu"),
    ],
)
def test_bad_values_are_rejected_by_the_schema(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(HelmError) as raised:
        render_chart(values=values)
    message = str(raised.value)
    assert "values don't meet the specifications of the schema" in message
    assert complaint in message


def test_config_covers_every_app_setting() -> None:
    chart_keys = set(SCHEMA["properties"]["config"]["properties"])
    assert chart_keys == set(CONFIG_FIELDS), "config.* and CONFIG_FIELDS disagree"
    covered = set(CONFIG_FIELDS.values()) | set(DERIVED_FIELDS)
    assert covered == set(Settings.model_fields), (
        "ping.settings.Settings and the chart's config block disagree: add the new setting to "
        "values.yaml, values.schema.json, templates/configmap.yaml and CONFIG_FIELDS"
    )


@pytest.mark.parametrize("key", sorted(CONFIG_FIELDS))
def test_config_schema_matches_the_settings_field(key: str) -> None:
    node = SCHEMA["properties"]["config"]["properties"][key]
    field = Settings.model_fields[CONFIG_FIELDS[key]]
    annotation = field.annotation
    if typing.get_origin(annotation) is typing.Literal:
        assert node["enum"] == list(typing.get_args(annotation))
    else:
        python_type = getattr(annotation, "__name__", "")
        expected = {"bool": "boolean", "int": "integer", "float": "number"}.get(
            python_type, "string"
        )
        assert node["type"] == expected
    bounds: dict[str, list[object]] = {
        "minimum": [m.ge for m in field.metadata if isinstance(m, annotated_types.Ge)],
        "exclusiveMinimum": [m.gt for m in field.metadata if isinstance(m, annotated_types.Gt)],
        "maximum": [m.le for m in field.metadata if isinstance(m, annotated_types.Le)],
    }
    for keyword, found in bounds.items():
        assert node.get(keyword) == (found[0] if found else None), f"{keyword} of config.{key}"


def test_container_port_schema_is_within_the_apps_port_range() -> None:
    node = SCHEMA["properties"]["containerPort"]
    field = Settings.model_fields["port"]
    (ge,) = [m.ge for m in field.metadata if isinstance(m, annotated_types.Ge)]
    (le,) = [m.le for m in field.metadata if isinstance(m, annotated_types.Le)]
    assert ge <= node["minimum"] <= node["maximum"] <= le


def test_the_default_values_are_valid_settings() -> None:
    data = render_chart(show_only=["templates/configmap.yaml"])[0]["data"]
    kwargs = {name.removeprefix("PING_").lower(): value for name, value in data.items()}
    settings = Settings(**kwargs)  # pydantic parses the strings as the environment source would
    assert settings.port == 9696
    assert settings.shutdown_grace_seconds == 15
