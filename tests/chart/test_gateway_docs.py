"""The gateway's documented examples render, and name objects that exist.

Each `helm upgrade --install` in the chart README's Gateway section is run as `helm template`
with the same arguments; the routes example renders; the tier table in the top README names
only objects the chart creates.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from typing import Any

import pytest
import yaml

from .conftest import GATEWAY_FEATURES
from .helm import CHART_DIR, KUBE_VERSION, find_helm, render_chart

pytestmark = pytest.mark.chart

REPO = CHART_DIR.parents[1]
CHART_README = (CHART_DIR / "README.md").read_text()
TOP_README = (REPO / "README.md").read_text()


def section(markdown: str, heading: str) -> str:
    start = markdown.index(f"\n{heading}\n")
    level = heading.split(" ")[0]
    end = markdown.find(f"\n{level} ", start + len(heading) + 2)
    return markdown[start : end if end > 0 else None]


def code_blocks(markdown: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", markdown, flags=re.DOTALL)


GATEWAY_DOCS = section(CHART_README, "## Gateway")
INSTALLS = [
    shlex.split(command, comments=True)
    for block in code_blocks(GATEWAY_DOCS, "sh")
    for command in block.replace("\\\n", " ").splitlines()
    if command.startswith("helm upgrade --install")
]


def template(install: list[str]) -> list[dict[str, Any]]:
    """`helm upgrade --install R CHART args...` as `helm template R CHART args...`."""
    release, chart, *args = install[3:]
    args = [a for a in args if a != "--wait"]
    cmd = [find_helm(), "template", release, chart, "--kube-version", KUBE_VERSION, *args]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def test_the_gateway_section_has_the_two_model_kind_example() -> None:
    assert [i[3] for i in INSTALLS] == ["forest", "ping"]


@pytest.mark.parametrize("install", INSTALLS, ids=[i[3] for i in INSTALLS])
def test_every_documented_install_renders(install: list[str]) -> None:
    assert template(install)


def test_the_kind_example_routes_to_a_service_the_second_release_creates() -> None:
    forest, ping = (template(i) for i in INSTALLS)
    services = {o["metadata"]["name"] for o in forest if o["kind"] == "Service"}
    model = next(o for o in forest if o["kind"] == "Deployment")
    env = next(o for o in forest if o["kind"] == "ConfigMap")["data"]
    assert env["PING_MODEL_DIR"] == "/app/models/forest"
    assert model["metadata"]["name"] == "forest-ping"
    gateway = next(o for o in ping if o["kind"] == "ConfigMap" and "haproxy.cfg" in o["data"])
    (routed,) = re.findall(
        r"server-template pod \d+ (forest\S+)\.default\.svc", gateway["data"]["haproxy.cfg"]
    )
    assert routed in services


def test_the_documented_routes_example_renders_as_described() -> None:
    (example,) = [b for b in code_blocks(GATEWAY_DOCS, "yaml") if "routes:" in b]
    values = yaml.safe_load(example)
    values["gateway"] |= {"enabled": True, "auth": {"existingSecret": "keys"}}
    (configmap,) = render_chart(values, show_only=["templates/gateway/configmap.yaml"])
    config = configmap["data"]["haproxy.cfg"]
    assert "churn-ping-pods.ml.svc.cluster.local:9696" in config
    assert "path_beg /models/churn/" in config


def test_the_tier_table_names_only_objects_the_chart_creates() -> None:
    table = section(TOP_README, "### The path of a request, object by object")
    named = set(re.findall(r"`([A-Z][A-Za-z]+)/([a-z0-9-]+)`", table))
    assert len(named) >= 6
    values = GATEWAY_FEATURES | {"networkPolicy": {"enabled": True}}
    rendered = {(o["kind"], o["metadata"]["name"]) for o in render_chart(values)}
    assert named <= rendered, named - rendered
