"""Fixtures for the chart tier: the values sets to render, and the default render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .dockerfile import ImageConfig, image_config
from .helm import CHART_DIR, Manifest, render_chart

# Every values file a user or ct is meant to install with, chart-relative.
PLATFORM_VALUES = sorted(p.relative_to(CHART_DIR) for p in (CHART_DIR / "values").glob("*.yaml"))
CI_VALUES = sorted(p.relative_to(CHART_DIR) for p in (CHART_DIR / "ci").glob("*-values.yaml"))

# Every optional object at once, so that each template is rendered and validated at least once.
ALL_FEATURES: dict[str, Any] = {
    "service": {
        "type": "LoadBalancer",
        "annotations": {"example.com/owner": "ping"},
        "loadBalancerSourceRanges": ["10.0.0.0/8"],
        "loadBalancerClass": "service.k8s.aws/nlb",
        "headless": True,
    },
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "annotations": {"example.com/ingress": "yes"},
        "hosts": [{"host": "ping.example.test", "paths": [{"path": "/", "pathType": "Prefix"}]}],
        "tls": [{"secretName": "ping-tls", "hosts": ["ping.example.test"]}],
    },
    "autoscaling": {"enabled": True},
    "podDisruptionBudget": {"enabled": True},
    "networkPolicy": {
        "enabled": True,
        "ingressFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}],
    },
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "Ping"}},
    "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "tracing": {"enabled": True, "endpoint": "http://otel-collector.observability:4318"},
    "gke": {"backendConfig": {"enabled": True}},
    "imagePullSecrets": [{"name": "registry"}],
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
    ],
    "affinity": {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "ping"}},
                    },
                }
            ]
        }
    },
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
        }
    ],
    "extraEnv": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
    "extraVolumes": [{"name": "models", "emptyDir": {}}],
    "extraVolumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
    "priorityClassName": "high",
    "podAnnotations": {"example.com/team": "ml"},
    "podLabels": {"team": "ml"},
}

# One values set per model source (and fetcher), each a complete, installable choice.
MODEL_SOURCES: dict[str, dict[str, Any]] = {
    "pvc": {"model": {"source": "pvc", "pvc": {"claimName": "models", "path": "iris/v1"}}},
    "uri-https": {
        "model": {
            "source": "uri",
            "uri": {"location": "https://models.example.com/iris/v1/", "caConfigMap": "corp-ca"},
        }
    },
    "uri-s3": {
        "model": {
            "source": "uri",
            "uri": {"location": "s3://ml-models/iris/v1", "envFromSecret": "minio"},
        }
    },
    "uri-gs": {"model": {"source": "uri", "uri": {"location": "gs://ml-models/iris/v1"}}},
    "oci-copy": {
        "model": {
            "source": "oci",
            "oci": {"image": {"repository": "registry.example.com/iris-model", "tag": "v1"}},
        }
    },
}
# Only from 1.33: image volumes (beta, feature-gated) with subPath, admitted by restricted PSS.
OCI_VOLUME: dict[str, Any] = {
    "model": {
        "source": "oci",
        "oci": {
            "mount": "volume",
            "image": {
                "repository": "registry.example.com/iris-model",
                "digest": "sha256:" + "b" * 64,
            },
        },
    }
}
# The escape hatches, each used once.
ESCAPE_HATCHES: dict[str, Any] = {
    "initContainers": [
        {
            "name": "warm-cache",
            "image": "busybox:1.37.0",
            "command": ["true"],
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
        }
    ],
    "sidecars": [
        {
            "name": "log-shipper",
            "image": "fluent/fluent-bit:3.2.2",
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
        }
    ],
    "extraEnvFrom": [{"secretRef": {"name": "ping-extra"}}, {"configMapRef": {"name": "tuning"}}],
    "commonLabels": {"team": "ml", "cost-center": "42"},
    "commonAnnotations": {"example.com/owner": "ml-platform"},
}

# The gateway tier with every option on. Apart from ALL_FEATURES, whose model Service is a
# LoadBalancer: with the gateway on, the model Service must stay ClusterIP.
GATEWAY_FEATURES: dict[str, Any] = {
    "networkPolicy": {
        "enabled": True,
        "ingressFrom": [{"podSelector": {"matchLabels": {"app": "other-gateway"}}}],
    },
    "podDisruptionBudget": {"enabled": True},
    "gateway": {
        "enabled": True,
        "auth": {"existingSecret": "ping-api-keys"},
        "releaseModel": {"name": "iris"},
        "routes": [
            {
                "name": "churn",
                "service": {"name": "churn-ping-pods", "namespace": "churn", "port": 9696},
            },
            {"name": "legacy", "service": {"name": "legacy", "port": 80}},
        ],
        "tls": {"enabled": True, "secretName": "ping-tls"},
        "autoscaling": {"enabled": True},
        "service": {
            "type": "LoadBalancer",
            "annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "external"},
            "loadBalancerSourceRanges": ["203.0.113.0/24"],
            "loadBalancerClass": "service.k8s.aws/nlb",
            "externalTrafficPolicy": "Local",
        },
        "networkPolicy": {"ingressFrom": [{"ipBlock": {"cidr": "203.0.113.0/24"}}]},
        "podAnnotations": {"example.com/team": "edge"},
        "podLabels": {"team": "edge"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [
            {"key": "edge", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
        ],
        "affinity": {
            "nodeAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 1,
                        "preference": {
                            "matchExpressions": [
                                {"key": "edge", "operator": "In", "values": ["true"]}
                            ]
                        },
                    }
                ]
            }
        },
    },
}

# name -> (values files, values): every set the validation sweep renders.
# What a values file's header says to --set with it: eks.yaml needs the clients' CIDRs.
REQUIRED_SETS: dict[str, dict[str, Any]] = {
    "eks.yaml": {"service": {"loadBalancerSourceRanges": ["203.0.113.0/24"]}}
}
VALUES_SETS: dict[str, tuple[tuple[Path, ...], dict[str, Any]]] = {
    "defaults": ((), {}),
    "all-features": ((), ALL_FEATURES),
    "escape-hatches": ((), ESCAPE_HATCHES),
    **{f"model-{name}": ((), values) for name, values in MODEL_SOURCES.items()},
    "gateway-features": ((), GATEWAY_FEATURES),
    **{
        str(path): ((path,), REQUIRED_SETS.get(path.name, {}))
        for path in PLATFORM_VALUES + CI_VALUES
    },
}


@pytest.fixture(scope="session")
def rendered() -> list[Manifest]:
    """The chart rendered with its defaults, as release "ping" in namespace "ping"."""
    return render_chart()


@pytest.fixture(scope="session")
def image() -> ImageConfig:
    """The image's runtime config, read from the Dockerfile's final stage."""
    return image_config()
