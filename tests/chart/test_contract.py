"""Chart, app and image agree: run the real app the way the rendered pod would, and probe it.

From a fresh render, the test takes the container's command and args (the Dockerfile's
ENTRYPOINT/CMD when the chart sets none), the pod's env (the image's ENV, then the ConfigMap
through envFrom, then `env`) and its port, and starts that process on this machine. Only three
things are swapped, each for its local equivalent:

- `python` is this venv's interpreter (the image's PATH puts its venv's python first; both
  install requirements.lock);
- PING_MODEL_DIR is a model trained here, because /app/models/iris exists only in the image;
- PING_HOST is 127.0.0.1, and the helm test pod's Service URL becomes 127.0.0.1 plus the port
  the Service's targetPort resolves to.

Then it probes the rendered probe paths and ports with the kubelet's budgets, runs the helm test
pod's own command, and shuts down the way the kubelet does: preStop, SIGTERM, the grace period.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from .dockerfile import ImageConfig, container_argv
from .helm import Manifest, main_container, one, render_chart, run_test_command

pytestmark = pytest.mark.chart

IMAGE_MODEL_DIR = "/app/models/iris"


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def render_pod(port: int) -> list[Manifest]:
    """A fresh render. containerPort is a free port here, so that every rendered port (PING_PORT,
    the named port `http`, the probes) moves with it; short drain and grace keep the test quick."""
    return render_chart(
        values={
            "containerPort": port,
            "preStopSleepSeconds": 1,
            "config": {"drainSeconds": 1.5, "shutdownGraceSeconds": 2},
            "serviceMonitor": {"enabled": True},
        }
    )


@pytest.fixture(scope="module")
def pod() -> list[Manifest]:
    return render_pod(free_port())


def named_port(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's target port, resolved by name against the container's ports."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(number)


def pod_env(objects: list[Manifest], image: ImageConfig) -> dict[str, str]:
    """The container's environment as the kubelet builds it: image ENV, then envFrom, then env."""
    container = main_container(objects)
    env = {k: v for k, v in image.env.items() if k.startswith("PING_")}
    configmaps = {c["metadata"]["name"]: c["data"] for c in objects if c["kind"] == "ConfigMap"}
    for source in container.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]])
    for var in container.get("env", []):
        assert "value" in var, (
            f"{var['name']} needs the cluster (valueFrom); the contract cannot run it"
        )
        env[var["name"]] = var["value"]
    return env


@dataclass
class RunningPod:
    process: subprocess.Popen[bytes]
    log: Path
    container: dict[str, Any]

    def url(self, port: int | str, path: str) -> str:
        return f"http://127.0.0.1:{named_port(self.container, port)}{path}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_pod(
    objects: list[Manifest],
    image: ImageConfig,
    model_dir: Path,
    workdir: Path,
    rendered_model_dir: str = IMAGE_MODEL_DIR,
) -> RunningPod:
    """Start Ping as the pod's container; model_dir stands in for rendered_model_dir, the
    PING_MODEL_DIR the chart must render (the baked model's, unless another source is chosen)."""
    container = main_container(objects)
    argv = container_argv(image, container.get("command"), container.get("args"))
    assert argv[0] == "python", f"expected the image to run python, got {argv}"
    env = pod_env(objects, image)
    assert env["PING_MODEL_DIR"] == rendered_model_dir, (
        f"the chart must point Ping at {rendered_model_dir}, not {env['PING_MODEL_DIR']}"
    )
    env |= {"PING_MODEL_DIR": str(model_dir), "PING_HOST": "127.0.0.1"}
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PING_")}
    log = workdir / "pod.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, *argv[1:]],
            env=inherited | env,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return RunningPod(process, log, container)


def stop(pod: RunningPod) -> None:
    if pod.process.poll() is None:
        pod.process.kill()
    pod.process.wait(timeout=10)


def get_status(url: str, timeout: float) -> int | None:
    """The HTTP status, or None when nothing answers (a refused connection, to a kubelet)."""
    try:
        return httpx.get(url, timeout=timeout).status_code
    except httpx.TransportError:
        return None


def wait_for_probe(pod: RunningPod, probe: dict[str, Any], name: str) -> None:
    """Pass within the kubelet's budget (periodSeconds x failureThreshold), or fail as it would.

    Polls more often than the kubelet, which only finds a success sooner; the deadline is the same.
    """
    url = pod.url(probe["httpGet"]["port"], probe["httpGet"]["path"])
    budget = probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3)
    deadline = time.monotonic() + budget
    status = None
    while time.monotonic() < deadline:
        assert pod.process.poll() is None, f"the app exited:\n{pod.output()}"
        status = get_status(url, probe.get("timeoutSeconds", 1))
        if status is not None and 200 <= status < 400:
            assert pod.process.poll() is None, f"something else answered on {url}:\n{pod.output()}"
            return
        time.sleep(0.1)
    pytest.fail(
        f"{name} probe {url} not passing after {budget}s (last status {status}):\n{pod.output()}"
    )


@pytest.fixture(scope="module")
def running(
    pod: list[Manifest],
    image: ImageConfig,
    model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningPod]:
    started = start_pod(pod, image, model_dir, tmp_path_factory.mktemp("pod"))
    try:
        wait_for_probe(started, started.container["startupProbe"], "startup")
        yield started
    finally:
        stop(started)


def test_the_image_runs_python_m_ping_with_no_override(
    pod: list[Manifest], image: ImageConfig
) -> None:
    container = main_container(pod)
    argv = container_argv(image, container.get("command"), container.get("args"))
    assert argv == [*image.entrypoint, *image.cmd]
    assert argv == ["python", "-m", "ping"], f"the image's CMD changed (read from {image.source})"


def test_the_startup_and_liveness_probes_pass(running: RunningPod) -> None:
    wait_for_probe(running, running.container["startupProbe"], "startup")
    wait_for_probe(running, running.container["livenessProbe"], "liveness")


def test_the_readiness_probe_passes_once_the_model_is_loaded(running: RunningPod) -> None:
    wait_for_probe(running, running.container["readinessProbe"], "readiness")


def test_the_helm_test_command_passes_against_the_real_app(
    pod: list[Manifest], running: RunningPod
) -> None:
    service = one(pod, "Service")
    (service_port,) = service["spec"]["ports"]
    test_pod = one(pod, "Pod")
    (test_container,) = test_pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in test_container["env"]}
    assert env["TARGET_URL"] == f"http://{service['metadata']['name']}:{service_port['port']}"
    # The Service's host swapped for 127.0.0.1, and its port for the pod port its targetPort names.
    result = run_test_command(test_pod, running.url(service_port["targetPort"], ""))
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n{running.output()}"
    assert 'seed: {"prediction":0}' in result.stdout


def test_the_service_monitor_scrapes_prometheus_metrics(
    pod: list[Manifest], running: RunningPod
) -> None:
    (endpoint,) = one(pod, "ServiceMonitor")["spec"]["endpoints"]
    (service_port,) = [
        p for p in one(pod, "Service")["spec"]["ports"] if p["name"] == endpoint["port"]
    ]
    response = httpx.get(running.url(service_port["targetPort"], endpoint["path"]), timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE " in response.text


def test_shutdown_drains_then_exits_within_the_grace_period(
    image: ImageConfig, model_dir: Path, tmp_path: Path
) -> None:
    pod = render_pod(free_port())  # its own process, so not the module's on the same port
    started = start_pod(pod, image, model_dir, tmp_path)
    try:
        container = started.container
        wait_for_probe(started, container["startupProbe"], "startup")
        wait_for_probe(started, container["readinessProbe"], "readiness")
        spec = one(pod, "Deployment")["spec"]["template"]["spec"]
        grace = spec["terminationGracePeriodSeconds"]
        env = pod_env(pod, image)
        readyz = started.url(container["readinessProbe"]["httpGet"]["port"], "/readyz")
        healthz = started.url(container["livenessProbe"]["httpGet"]["port"], "/healthz")

        # The kubelet's order: the preStop hook (inside the container), then SIGTERM; the grace
        # period counts from the start of the hook.
        began = time.monotonic()
        subprocess.run(
            container["lifecycle"]["preStop"]["exec"]["command"], check=True, timeout=grace
        )
        assert get_status(readyz, 2) == 200, "still ready during preStop"
        started.process.send_signal(signal.SIGTERM)

        # Draining: still serving, but readiness says 503 so endpoints drop the pod.
        time.sleep(0.3)
        assert get_status(readyz, 2) == 503, started.output()
        assert get_status(healthz, 2) == 200
        drain = float(env["PING_DRAIN_SECONDS"])
        returncode = started.process.wait(timeout=grace - (time.monotonic() - began))
        elapsed = time.monotonic() - began
    finally:
        stop(started)
    assert returncode == 0, started.output()
    assert elapsed >= drain, "exited before the drain was over"
    assert elapsed < grace, "the kubelet would have sent SIGKILL"
