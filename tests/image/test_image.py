"""The image, built from the Dockerfile and run the way the rendered chart's pod runs it.

The pod's constraints (user, read-only root, tmpfs, capabilities, no-new-privileges,
PING_* env, port, readiness path, grace period) are read from `helm template` of
charts/ping and translated into `docker run` flags, so the chart and this run agree.

Without a Docker engine, a built image or helm these tests skip with the reason. Set
PING_IMAGE_REQUIRED=1 (as `make image-test` does) to turn those skips into failures,
so that CI cannot go green by skipping.
"""

import io
import json
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
import yaml

pytestmark = pytest.mark.image

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "ping"
DOCKERFILE = REPO / "Dockerfile"
IMAGE = os.environ.get("PING_IMAGE", "ping:v001")
REQUIRED = os.environ.get("PING_IMAGE_REQUIRED", "") not in ("", "0")

SEED_ROW = [5.1, 3.5, 1.4, 0.2]
UID = 10001
PORT = 9696
MB = 1000**2  # as `docker images` counts
OUR_LAYERS_LIMIT = 300 * MB

# Run inside the container: who pid 1 (the server) is, what it may do, where it may write.
PRIVILEGE_PROBE = """
import json

status = dict(line.split(":\\t", 1) for line in open("/proc/1/status").read().splitlines())

def writable(path):
    try:
        open(path, "w").close()
        return True
    except OSError:
        return False

print(json.dumps({
    "uid": status["Uid"].split(),
    "gid": status["Gid"].split(),
    "cap_eff": status["CapEff"].strip(),
    "no_new_privs": status["NoNewPrivs"].strip(),
    "app": writable("/app/probe"),
    "venv": writable("/opt/venv/probe"),
    "tmp": writable("/tmp/probe"),
}))
"""


def unavailable(reason: str) -> NoReturn:
    """Skip with the reason, or fail when the image tests are required."""
    if REQUIRED:
        pytest.fail(f"{reason} (PING_IMAGE_REQUIRED is set)", pytrace=False)
    pytest.skip(reason)


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    """Run the docker CLI; return stdout, or raise with its stderr."""
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}"
        )
    return result.stdout


def exists(ref: str) -> bool:
    """Whether the image is in the engine's local store."""
    found = subprocess.run(["docker", "image", "inspect", ref], capture_output=True, check=False)
    return found.returncode == 0


def inspect(ref: str, kind: str = "image") -> Any:
    return json.loads(docker(kind, "inspect", ref))[0]


def dockerfile_arg(name: str) -> str:
    """The default of a global ``ARG name=...`` in the Dockerfile."""
    match = re.search(rf"^ARG {name}=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match, f"Dockerfile has no 'ARG {name}=' line"
    return match.group(1)


@pytest.fixture(scope="session")
def engine() -> None:
    """A reachable Docker engine."""
    if shutil.which("docker") is None:
        unavailable("no docker CLI on PATH")
    try:
        subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        unavailable(
            "no Docker engine reachable (docker info failed); "
            "offline machines: scripts/docker-standin.sh run make image-test"
        )


@pytest.fixture(scope="session")
def image(engine: None) -> dict[str, Any]:
    """`docker image inspect` of the image under test (PING_IMAGE, default ping:v001)."""
    if not exists(IMAGE):
        unavailable(f"image {IMAGE} is not built; run `make image`")
    result: dict[str, Any] = inspect(IMAGE)
    return result


@pytest.fixture(scope="session")
def helm() -> str:
    """The helm binary: $HELM, then PATH, then .tools/bin/helm."""
    for candidate in (os.environ.get("HELM"), shutil.which("helm"), REPO / ".tools/bin/helm"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    unavailable("helm not found ($HELM, PATH, .tools/bin/helm)")


def kube_version_floor() -> list[str]:
    """`--kube-version` for the oldest Kubernetes the chart supports (its kubeVersion)."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    match = re.search(r">=\s*v?(\d+\.\d+(?:\.\d+)?)", str(chart.get("kubeVersion", "")))
    return ["--kube-version", match.group(1)] if match else []


@pytest.fixture(scope="session")
def rendered(helm: str) -> list[dict[str, Any]]:
    """The documents `helm template` renders from the chart's default values."""
    if not (CHART / "Chart.yaml").is_file():
        unavailable(f"no chart at {CHART}")
    out = subprocess.run(
        [helm, "template", "ping", str(CHART), *kube_version_floor()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, f"helm template failed: {out.stderr}"
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def quantity(value: str | int | float) -> float:
    """A Kubernetes quantity as a number: '500m' -> 0.5, '256Mi' -> 268435456."""
    units = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value))
    assert match, f"not a quantity: {value!r}"
    number, unit = match.groups()
    return float(number) * (units[unit] if unit else 1)


@dataclass
class PodRun:
    """What the rendered pod means for `docker run`, and for `docker stop`."""

    flags: list[str]
    env: dict[str, str]
    port: int
    argv: list[str]
    readiness_path: str
    stop_seconds: int
    """The kubelet's SIGKILL deadline after SIGTERM: the grace period minus the preStop sleep."""
    drain_seconds: float


def container_env(container: dict[str, Any], documents: list[dict[str, Any]]) -> dict[str, str]:
    """The container's literal env: its envFrom ConfigMaps, then its env entries on top."""
    config_maps = {d["metadata"]["name"]: d for d in documents if d["kind"] == "ConfigMap"}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, f"cannot run envFrom {source} under docker"
        env.update(config_maps[source["configMapRef"]["name"]].get("data", {}))
    env.update({e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e})
    return env


def pod_run(documents: list[dict[str, Any]], image_user: str) -> PodRun:
    """Translate the rendered Deployment's pod into docker run flags, field by field.

    Container securityContext overrides the pod's, as in Kubernetes; a missing runAsGroup
    falls back to the image's group, as the runtime does.
    """
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    flags: list[str] = []

    if "runAsUser" in security:
        group = security.get("runAsGroup", image_user.partition(":")[2] or None)
        flags += ["--user", f"{security['runAsUser']}" + (f":{group}" if group else "")]
    if security.get("readOnlyRootFilesystem"):
        flags.append("--read-only")
    capabilities = security.get("capabilities", {})
    for cap in capabilities.get("drop", []):
        flags += ["--cap-drop", cap]
    for cap in capabilities.get("add", []):
        flags += ["--cap-add", cap]
    if security.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]

    # Every emptyDir the container mounts becomes a tmpfs at the same path and size.
    empty_dirs = {v["name"]: v["emptyDir"] or {} for v in pod.get("volumes", []) if "emptyDir" in v}
    for mount in container.get("volumeMounts", []):
        if mount["name"] in empty_dirs:
            size = empty_dirs[mount["name"]].get("sizeLimit")
            options = f":size={int(quantity(size))}" if size else ""
            flags += ["--tmpfs", mount["mountPath"] + options]

    limits = container.get("resources", {}).get("limits", {})
    if "memory" in limits:
        flags += ["--memory", str(int(quantity(limits["memory"])))]
    if "cpu" in limits:
        flags += ["--cpus", f"{quantity(limits['cpu']):g}"]

    ports = container.get("ports", [])
    http = [p for p in ports if p.get("name") == "http"] or ports
    assert http, "the rendered container declares no port"

    # Kubernetes semantics: command replaces ENTRYPOINT, args replace CMD.
    argv: list[str] = []
    if "command" in container:
        flags += ["--entrypoint", container["command"][0]]
        argv = [*container["command"][1:], *container.get("args", [])]
    elif "args" in container:
        argv = list(container["args"])

    # The kubelet runs a preStop sleep before SIGTERM, inside the same grace period.
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
    pre_stop_seconds = int(pre_stop[1]) if pre_stop and pre_stop[0] == "sleep" else 0
    env = container_env(container, documents)
    return PodRun(
        flags=flags,
        env={name: value for name, value in env.items() if name.startswith("PING_")},
        port=int(http[0]["containerPort"]),
        argv=argv,
        readiness_path=container.get("readinessProbe", {}).get("httpGet", {}).get("path", "/"),
        stop_seconds=int(pod.get("terminationGracePeriodSeconds", 30)) - pre_stop_seconds,
        drain_seconds=float(env.get("PING_DRAIN_SECONDS", 0)),
    )


@pytest.fixture(scope="session")
def pod(rendered: list[dict[str, Any]], image: dict[str, Any]) -> PodRun:
    return pod_run(rendered, image["Config"]["User"])


@dataclass
class Container:
    """A running container and the loopback URL its port is published on."""

    id: str
    url: str
    pod: PodRun

    def logs(self) -> str:
        out = subprocess.run(
            ["docker", "logs", "--tail", "40", self.id], capture_output=True, text=True, check=False
        )
        return (out.stdout + out.stderr).strip()

    def wait_ready(self, timeout: float = 60) -> httpx.Response:
        """Poll the readiness probe's path until it answers 200."""
        deadline = time.monotonic() + timeout
        last: str = "no answer"
        while time.monotonic() < deadline:
            state = inspect(self.id, "container")["State"]
            if not state["Running"]:
                raise AssertionError(f"container exited {state['ExitCode']}:\n{self.logs()}")
            try:
                response = httpx.get(self.url + self.pod.readiness_path, timeout=2)
                if response.status_code == 200:
                    return response
                last = f"{response.status_code} {response.text}"
            except httpx.TransportError as exc:
                last = repr(exc)
            time.sleep(0.25)
        raise AssertionError(f"not ready after {timeout}s (last: {last}):\n{self.logs()}")


@pytest.fixture(scope="session")
def run_container(image: dict[str, Any], pod: PodRun) -> Iterator[Callable[[], Container]]:
    """Start containers as the pod would run them; remove them all at the end."""
    started: list[str] = []

    def start() -> Container:
        env_flags = [f for name, value in pod.env.items() for f in ("--env", f"{name}={value}")]
        container_id = docker(
            "run",
            "--detach",
            *pod.flags,
            *env_flags,
            "--publish",
            f"127.0.0.1::{pod.port}",  # loopback only, any free host port
            IMAGE,
            *pod.argv,
        ).strip()
        started.append(container_id)
        binding = inspect(container_id, "container")["NetworkSettings"]["Ports"]
        host = binding[f"{pod.port}/tcp"][0]
        return Container(container_id, f"http://{host['HostIp']}:{host['HostPort']}", pod)

    yield start
    for container_id in started:
        docker("rm", "--force", container_id, check=False)


@pytest.fixture(scope="module")
def container(run_container: Callable[[], Container]) -> Container:
    """One ready container, shared by the read-only checks of a module."""
    started = run_container()
    started.wait_ready()
    return started


def test_dockerignore_keeps_dev_trees_out_of_the_context(engine: None) -> None:
    built = subprocess.run(
        ["docker", "build", "--quiet", "--file", "-", str(REPO)],
        input="FROM scratch\nCOPY . /ctx/\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    image_id = built.stdout.strip()
    container_id = docker("create", image_id, "none").strip()
    try:
        exported = subprocess.run(
            ["docker", "export", container_id], capture_output=True, timeout=120, check=True
        ).stdout
    finally:
        docker("rm", container_id, check=False)
        docker("rmi", image_id, check=False)
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        names = tar.getnames()
    context = {n.removeprefix("ctx/") for n in names if n.startswith("ctx/")}
    top = {n.split("/")[0] for n in context}

    assert {"requirements.lock", "training/train.py", "src/ping/serve.py"} <= context
    assert "models/README.md" in context  # artifact directories for the MODEL_DIR build arg
    assert not top & {".git", ".venv", ".tools", ".cache", "tests", "charts"}
    assert not [n for n in context if "__pycache__" in n or n.endswith(".pyc")]


def test_image_config_matches_the_dockerfile(image: dict[str, Any]) -> None:
    config = image["Config"]
    last_cmd = [
        line for line in (REPO / "Dockerfile").read_text().splitlines() if line.startswith("CMD ")
    ][-1]

    # A stale image (built before the Dockerfile changed) fails here first.
    assert config["Cmd"] == json.loads(last_cmd.removeprefix("CMD "))
    assert config["User"] == f"{UID}:{UID}"
    assert f"{PORT}/tcp" in config["ExposedPorts"]
    assert config["WorkingDir"] == "/app"
    env = dict(e.split("=", 1) for e in config["Env"])
    assert env["PING_HOST"] == "0.0.0.0"
    assert env["PING_MODEL_DIR"] == "/app/models/iris"
    labels = config["Labels"] or {}
    for key in ("version", "revision", "source"):
        assert labels.get(f"org.opencontainers.image.{key}"), f"no {key} label"


def test_pod_constraints_are_the_hardened_ones(pod: PodRun) -> None:
    # The chart is the source of these flags; this pins what the issue promises,
    # so that a weaker chart cannot make the runs below weaker too.
    flags = " ".join(pod.flags)
    for expected in (
        f"--user {UID}:{UID}",
        "--read-only",
        "--tmpfs /tmp",
        "--cap-drop ALL",
        "--security-opt no-new-privileges",
    ):
        assert expected in flags, f"{expected!r} not derived from the chart: {pod.flags}"
    assert pod.port == PORT
    assert pod.env, "the chart renders no PING_* env"


def test_our_layers_add_at_most_300_mb(
    image: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    base_ref = dockerfile_arg("PYTHON_IMAGE")
    if not exists(base_ref):
        unavailable(f"base image {base_ref} is not local; `docker pull {base_ref}`")
    base = inspect(base_ref)
    base_layers = base["RootFS"]["Layers"]
    assert image["RootFS"]["Layers"][: len(base_layers)] == base_layers, (
        f"{IMAGE} is not built on the local {base_ref}"
    )
    ours = image["Size"] - base["Size"]

    with capsys.disabled():
        print(
            f"\n{IMAGE}: {image['Size'] / MB:.1f} MB in all; its own layers add "
            f"{ours / MB:.1f} MB over {base_ref} ({base['Size'] / MB:.1f} MB); "
            f"limit {OUR_LAYERS_LIMIT / MB:.0f} MB"
        )
    assert ours <= OUR_LAYERS_LIMIT


def test_readiness_turns_200(container: Container) -> None:
    assert container.wait_ready().status_code == 200


def test_predict_answers_the_seed_row(container: Container) -> None:
    response = httpx.post(f"{container.url}/predict", json={"features": SEED_ROW}, timeout=5)

    assert response.status_code == 200, response.text
    assert response.json() == {"prediction": 0}


def test_metrics_answer_and_count_the_prediction(container: Container) -> None:
    httpx.post(f"{container.url}/predict", json={"features": SEED_ROW}, timeout=5)
    response = httpx.get(f"{container.url}/metrics", timeout=5)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'ping_predictions_total{class_name="setosa"}' in response.text


def test_server_runs_read_only_as_uid_10001_without_privileges(container: Container) -> None:
    # Asked of the running server (pid 1) and of a process beside it.
    facts = json.loads(docker("exec", container.id, "python", "-c", PRIVILEGE_PROBE))

    assert facts["uid"] == [str(UID)] * 4
    assert facts["gid"] == [str(UID)] * 4
    assert facts["cap_eff"] == "0000000000000000"
    assert facts["no_new_privs"] == "1"
    assert (facts["app"], facts["venv"], facts["tmp"]) == (False, False, True)
    assert inspect(container.id, "container")["HostConfig"]["ReadonlyRootfs"] is True


def test_runtime_has_no_compilers_and_no_pip_in_the_venv(container: Container) -> None:
    probe = (
        "import json, os, shutil\n"
        "print(json.dumps([t for t in ('gcc', 'cc', 'c++', 'make', 'ld') if shutil.which(t)]"
        " + [p for p in ('/opt/venv/bin/pip',) if os.path.exists(p)]))"
    )

    assert json.loads(docker("exec", container.id, "python", "-c", probe)) == []


def test_ping_starts_from_bytecode_compiled_into_the_image(container: Container) -> None:
    # The root filesystem is read-only and PYTHONDONTWRITEBYTECODE is set: a module without
    # its .pyc here is compiled again at every start.
    probe = (
        "import importlib.util, json, pathlib, ping\n"
        "root = pathlib.Path(ping.__file__).parent\n"
        "print(json.dumps(sorted(p.name for p in root.glob('*.py')\n"
        "    if not pathlib.Path(importlib.util.cache_from_source(str(p))).is_file())))"
    )

    assert json.loads(docker("exec", container.id, "python", "-c", probe)) == []


def test_pydantic_v1_is_not_in_the_image(container: Container) -> None:
    probe = "import importlib.util; print(importlib.util.find_spec('pydantic.v1') is None)"

    assert docker("exec", container.id, "python", "-c", probe).strip() == "True"


def test_port_is_published_on_loopback_only(container: Container) -> None:
    bindings = inspect(container.id, "container")["NetworkSettings"]["Ports"][f"{PORT}/tcp"]

    assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}


def test_docker_stop_ends_it_gracefully_within_the_grace_period(
    run_container: Callable[[], Container], pod: PodRun
) -> None:
    started = run_container()
    started.wait_ready()
    deadline = pod.stop_seconds
    begun = time.monotonic()
    stopping = subprocess.Popen(
        ["docker", "stop", "--time", str(deadline), started.id], stdout=subprocess.DEVNULL
    )
    # While draining, readiness says 503 so that endpoints drop the pod first.
    readiness_while_draining = []
    try:
        while time.monotonic() - begun < pod.drain_seconds - 0.5:
            response = httpx.get(started.url + pod.readiness_path, timeout=2)
            readiness_while_draining.append(response.status_code)
            if response.status_code == 503:
                break
            time.sleep(0.1)
    finally:
        stopping.wait(timeout=deadline + 30)
    elapsed = time.monotonic() - begun
    state = inspect(started.id, "container")["State"]

    if pod.drain_seconds >= 1:
        assert 503 in readiness_while_draining, "readiness did not turn 503 while draining"
    assert state["ExitCode"] == 0, f"exit code {state['ExitCode']}:\n{started.logs()}"
    assert not state["OOMKilled"]
    assert elapsed < deadline, f"took {elapsed:.1f}s; the kubelet kills after {deadline}s"


def test_model_dir_build_argument_bakes_a_packaged_model_instead_of_iris(
    image: dict[str, Any], pod: PodRun
) -> None:
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import GradientBoostingRegressor

    from ping.package import package

    name = f"image-test-regressor-{os.getpid()}"
    artifact = REPO / "models" / name
    data = load_diabetes(as_frame=True)
    regressor = GradientBoostingRegressor(n_estimators=20, max_depth=2, random_state=0)
    package(regressor.fit(data.data, data.target), artifact, name="diabetes")
    tag = f"ping-own-model:{os.getpid()}"
    container_id = ""
    try:
        flags = shlex.split(os.environ.get("DOCKER_BUILD_FLAGS", ""))
        docker("build", *flags, "--build-arg", f"MODEL_DIR=models/{name}", "-t", tag, str(REPO),
               timeout=900)  # fmt: skip
        # The chart's env would point at the iris directory; the image's own ENV is tested.
        env = [
            f for k, v in pod.env.items() if k != "PING_MODEL_DIR" for f in ("--env", f"{k}={v}")
        ]
        container_id = docker(
            "run", "--detach", *pod.flags, *env, "--publish", f"127.0.0.1::{pod.port}", tag,
            *pod.argv,
        ).strip()  # fmt: skip
        binding = inspect(container_id, "container")["NetworkSettings"]["Ports"]
        host = binding[f"{pod.port}/tcp"][0]
        started = Container(container_id, f"http://{host['HostIp']}:{host['HostPort']}", pod)
        started.wait_ready()
        sample = httpx.get(f"{started.url}/metadata", timeout=5).json()["sample"]
        answer = httpx.post(f"{started.url}/predict", json=sample["request"], timeout=5).json()
        baked = docker("exec", container_id, "ls", "/app/models").split()
        config_env = dict(e.split("=", 1) for e in inspect(tag)["Config"]["Env"])
    finally:
        if container_id:
            docker("rm", "--force", container_id, check=False)
        docker("rmi", "--force", tag, check=False)
        shutil.rmtree(artifact, ignore_errors=True)

    assert config_env["PING_MODEL_DIR"] == f"/app/models/{name}"
    assert baked == [name]  # iris is not trained into it
    assert answer.keys() == sample["response"].keys()
    assert answer["predictions"] == pytest.approx(sample["response"]["predictions"], rel=1e-9)
