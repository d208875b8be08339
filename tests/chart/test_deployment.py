"""The Deployment: ports, probes, env, security, shutdown, scheduling and replicas."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from .dockerfile import ImageConfig
from .helm import CHART_DIR, HelmError, Manifest, main_container, one, render_chart

pytestmark = pytest.mark.chart

SELECTOR = {"app.kubernetes.io/name": "ping", "app.kubernetes.io/instance": "ping"}


def pod_spec(objects: list[Manifest]) -> dict[str, Any]:
    return one(objects, "Deployment")["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def config_env(objects: list[Manifest]) -> dict[str, str]:
    container = main_container(objects)
    (source,) = container["envFrom"]
    configmap = one(objects, "ConfigMap")
    assert source["configMapRef"]["name"] == configmap["metadata"]["name"]
    return configmap["data"]  # type: ignore[no-any-return]


def test_the_container_port_is_named_http_and_is_the_apps_port(rendered: list[Manifest]) -> None:
    container = main_container(rendered)
    assert container["ports"] == [{"name": "http", "containerPort": 9696, "protocol": "TCP"}]
    assert config_env(rendered)["PING_PORT"] == "9696"


def test_a_custom_container_port_moves_the_app_and_the_named_port_together() -> None:
    objects = render_chart(values={"containerPort": 8081})
    assert main_container(objects)["ports"][0]["containerPort"] == 8081
    assert config_env(objects)["PING_PORT"] == "8081"


def test_probes_hit_the_apps_health_endpoints_on_the_named_port(rendered: list[Manifest]) -> None:
    container = main_container(rendered)
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


def test_the_startup_probe_gives_the_model_a_minute_to_load(rendered: list[Manifest]) -> None:
    probe = main_container(rendered)["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 60


def test_modest_cpu_and_memory_requests_are_set_by_default(rendered: list[Manifest]) -> None:
    resources = main_container(rendered)["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert "cpu" not in resources.get("limits", {}), "a CPU limit throttles a latency-bound server"


def test_the_pod_runs_hardened(rendered: list[Manifest], image: ImageConfig) -> None:
    spec = pod_spec(rendered)
    container = main_container(rendered)
    uid, _, gid = image.user.partition(":")
    assert uid.isdigit(), f"the image's USER {image.user!r} must be numeric for runAsNonRoot"
    for context in (spec["securityContext"], container["securityContext"]):
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] == int(uid)
        assert context["runAsGroup"] == int(gid or uid)
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert spec["automountServiceAccountToken"] is False


def test_tmp_is_a_writable_emptydir_under_the_read_only_root(rendered: list[Manifest]) -> None:
    spec = pod_spec(rendered)
    mounts = {m["mountPath"]: m["name"] for m in main_container(rendered)["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert volumes[mounts["/tmp"]]["emptyDir"]["sizeLimit"] == "64Mi"


def test_the_image_cmd_is_not_overridden(rendered: list[Manifest]) -> None:
    container = main_container(rendered)
    assert "command" not in container
    assert "args" not in container


def test_the_image_defaults_to_the_chart_app_version(rendered: list[Manifest]) -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["appVersion"] == "v001"
    assert main_container(rendered)["image"] == "ping:v001"
    assert main_container(rendered)["imagePullPolicy"] == "IfNotPresent"


def test_an_image_digest_pins_the_pull() -> None:
    digest = "sha256:" + "a" * 64
    objects = render_chart(
        values={"image": {"repository": "r.example/ping", "tag": "v002", "digest": digest}}
    )
    assert main_container(objects)["image"] == f"r.example/ping:v002@{digest}"


def test_every_app_setting_reaches_the_pod_from_the_configmap(rendered: list[Manifest]) -> None:
    assert config_env(rendered) == {
        "PING_MODEL_DIR": "/app/models/iris",
        "PING_HOST": "0.0.0.0",
        "PING_PORT": "9696",
        "PING_LOG_LEVEL": "info",
        "PING_ACCESS_LOG": "true",
        "PING_MAX_ROWS": "1000",
        "PING_MAX_BODY_BYTES": "1048576",
        "PING_MAX_HEADER_BYTES": "32768",
        "PING_MAX_HEADERS": "100",
        "PING_MAX_REQUEST_LINE_BYTES": "8192",
        "PING_HEADER_TIMEOUT_SECONDS": "10",
        "PING_BODY_TIMEOUT_SECONDS": "30",
        "PING_KEEP_ALIVE_SECONDS": "5",
        "PING_MAX_CONNECTIONS": "1000",
        "PING_MAX_QUEUED_ROWS": "8192",
        "PING_DOCS": "true",
        "PING_ALLOW_VERSION_MISMATCH": "false",
        "PING_TRUSTED_TYPES": "",
        "PING_ALLOW_PICKLE": "false",
        "PING_DRAIN_SECONDS": "5",
        "PING_SHUTDOWN_GRACE_SECONDS": "15",
        "PING_BATCH_MAX_ROWS": "2048",
        "PING_BATCH_MAX_WAIT_US": "0",
        "PING_TRACING": "false",
    }


def test_config_values_are_written_as_the_app_parses_them() -> None:
    objects = render_chart(
        values={
            "config": {
                "logLevel": "debug",
                "accessLog": False,
                "maxBodyBytes": 10_000_000,
                "drainSeconds": 2.5,
                "shutdownGraceSeconds": 3,
                "allowVersionMismatch": True,
            }
        }
    )
    env = config_env(objects)
    assert env["PING_LOG_LEVEL"] == "debug"
    assert env["PING_ACCESS_LOG"] == "false"
    # Helm holds numbers as float64; a large int must not come out as 1e+07.
    assert env["PING_MAX_BODY_BYTES"] == "10000000"
    assert env["PING_DRAIN_SECONDS"] == "2.5"
    assert env["PING_SHUTDOWN_GRACE_SECONDS"] == "3"
    assert env["PING_ALLOW_VERSION_MISMATCH"] == "true"


def test_extra_env_is_passed_through_and_wins_over_the_configmap() -> None:
    extra = [
        {"name": "PING_LOG_LEVEL", "value": "debug"},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    container = main_container(render_chart(values={"extraEnv": extra}))
    # Kubernetes gives `env` precedence over `envFrom`.
    assert container["env"] == extra
    assert "env" not in main_container(render_chart())


def test_a_config_change_changes_the_checksum_and_so_rolls_the_pods(
    rendered: list[Manifest],
) -> None:
    def checksum(objects: list[Manifest]) -> str:
        template = one(objects, "Deployment")["spec"]["template"]
        return str(template["metadata"]["annotations"]["checksum/config"])

    base = checksum(rendered)
    assert len(base) == 64
    assert checksum(render_chart(values={"config": {"maxRows": 10}})) != base
    assert checksum(render_chart(values={"replicaCount": 5})) == base


def test_pre_stop_sleeps_before_sigterm(rendered: list[Manifest]) -> None:
    pre_stop = main_container(rendered)["lifecycle"]["preStop"]
    assert pre_stop == {"exec": {"command": ["sleep", "5"]}}
    assert "lifecycle" not in main_container(render_chart(values={"preStopSleepSeconds": 0}))


@pytest.mark.parametrize(
    ("pre_stop", "drain", "grace", "expected"),
    [(5, 5, 15, 30), (0, 0, 1, 6), (10, 30, 15, 60), (1, 2.5, 2, 11)],
)
def test_the_termination_grace_outlasts_pre_stop_drain_and_shutdown(
    pre_stop: int, drain: float, grace: float, expected: int
) -> None:
    objects = render_chart(
        values={
            "preStopSleepSeconds": pre_stop,
            "config": {"drainSeconds": drain, "shutdownGraceSeconds": grace},
        }
    )
    period = pod_spec(objects)["terminationGracePeriodSeconds"]
    assert period == expected
    assert period > pre_stop + drain + grace


def test_an_explicit_termination_grace_is_kept_when_long_enough() -> None:
    assert (
        pod_spec(render_chart(values={"terminationGracePeriodSeconds": 26}))[
            "terminationGracePeriodSeconds"
        ]
        == 26
    )


@pytest.mark.parametrize("period", [25, 10, 1])
def test_an_explicit_termination_grace_shorter_than_the_shutdown_is_refused(period: int) -> None:
    with pytest.raises(
        HelmError, match=r"terminationGracePeriodSeconds \(\d+\) must be longer than .*\(25\)"
    ):
        render_chart(values={"terminationGracePeriodSeconds": period})


def test_selector_labels_are_name_and_instance_only(rendered: list[Manifest]) -> None:
    deployment = one(rendered, "Deployment")
    assert deployment["spec"]["selector"] == {"matchLabels": SELECTOR}
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert SELECTOR.items() <= pod_labels.items()


def test_selector_labels_do_not_change_across_versions_and_values(rendered: list[Manifest]) -> None:
    # A Deployment's selector is immutable: anything that changes on upgrade must stay out of it.
    changed = render_chart(
        values={
            "image": {"tag": "v999"},
            "config": {"maxRows": 3},
            "podLabels": {"team": "x"},
            "autoscaling": {"enabled": True},
        }
    )
    assert (
        one(changed, "Deployment")["spec"]["selector"]
        == one(rendered, "Deployment")["spec"]["selector"]
    )
    assert (
        one(changed, "Service")["spec"]["selector"] == one(rendered, "Service")["spec"]["selector"]
    )
    pod_labels = one(changed, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["app.kubernetes.io/version"] == "v999"
    assert pod_labels["team"] == "x"


def test_replicas_are_set_without_the_hpa_and_omitted_with_it(rendered: list[Manifest]) -> None:
    assert one(rendered, "Deployment")["spec"]["replicas"] == 2
    with_hpa = one(render_chart(values={"autoscaling": {"enabled": True}}), "Deployment")
    assert "replicas" not in with_hpa["spec"]


def test_scheduling_and_pull_secrets_pass_through() -> None:
    values = {
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["ml"]}]}
                    ]
                }
            }
        },
        "imagePullSecrets": [{"name": "registry"}],
        "priorityClassName": "high",
    }
    spec = pod_spec(render_chart(values=values))
    for key, value in values.items():
        assert spec[key] == value


def test_topology_spread_constraints_get_the_selector_labels_unless_given() -> None:
    own = {"matchLabels": {"tier": "x"}}
    values = {
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
            },
            {
                "maxSkew": 2,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": own,
            },
        ]
    }
    zone, host = pod_spec(render_chart(values=values))["topologySpreadConstraints"]
    assert zone["labelSelector"] == {"matchLabels": SELECTOR}
    assert zone["maxSkew"] == 1
    assert host["labelSelector"] == own
    assert "topologySpreadConstraints" not in pod_spec(render_chart())


def test_extra_volumes_are_mounted_next_to_tmp() -> None:
    objects = render_chart(
        values={
            "extraVolumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "models"}}],
            "extraVolumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
            "config": {"modelDir": "/models/iris"},
        }
    )
    assert [v["name"] for v in pod_spec(objects)["volumes"]] == ["tmp", "models"]
    assert [m["mountPath"] for m in main_container(objects)["volumeMounts"]] == ["/tmp", "/models"]
    assert config_env(objects)["PING_MODEL_DIR"] == "/models/iris"


def test_the_chart_agrees_with_the_image(rendered: list[Manifest], image: ImageConfig) -> None:
    env = config_env(rendered)
    assert int(env["PING_PORT"]) in image.exposed
    for key in ("PING_PORT", "PING_MODEL_DIR", "PING_HOST"):
        if key in image.env:
            assert env[key] == image.env[key], f"chart and image disagree on {key}"
