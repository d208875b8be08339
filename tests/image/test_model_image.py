"""The OCI model image (`make model-image`), used the way the chart's `model.source: oci` uses it.

From a render with `model.oci.mount: copy`, the init container runs in the model image under its
rendered securityContext and copies the artifact into a world-writable directory (what an
emptyDir is); then Ping's image runs as the rendered pod's container with that directory
mounted read-only where the chart mounts it, and with the rendered PING_MODEL_DIR. `make
image-test` builds the model image from a forest artifact, so serving it proves the model came
from the model image and not from the iris logreg baked into Ping's image.
"""

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.image.test_image import (
    CHART,
    IMAGE,
    SEED_ROW,
    docker,
    engine,
    exists,
    helm,
    image,
    inspect,
    kube_version_floor,
    pod_run,
    unavailable,
)

pytestmark = pytest.mark.image

MODEL_IMAGE = os.environ.get("PING_MODEL_IMAGE", "ping-model-test:forest")
MODEL_SOURCE = os.environ.get("PING_MODEL_IMAGE_SOURCE", "")
# Fixtures of test_image.py, imported so that pytest finds them here; used by name only.
__all__ = ["engine", "helm", "image"]


@pytest.fixture(scope="module")
def model_image(engine: None) -> str:
    if not exists(MODEL_IMAGE):
        unavailable(f"model image {MODEL_IMAGE} is not built; run `make image-test`")
    if not MODEL_SOURCE or not (Path(MODEL_SOURCE) / "metadata.json").is_file():
        unavailable("PING_MODEL_IMAGE_SOURCE does not name the artifact the model image holds")
    return MODEL_IMAGE


@pytest.fixture(scope="module")
def rendered_oci(
    helm: str, model_image: str, tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, Any]]:
    repository, _, tag = model_image.rpartition(":")
    values = {"model": {"source": "oci", "oci": {"image": {"repository": repository, "tag": tag}}}}
    values_file = tmp_path_factory.mktemp("values") / "oci.json"
    values_file.write_text(json.dumps(values))  # JSON is YAML
    out = subprocess.run(
        [helm, "template", "ping", str(CHART), *kube_version_floor(), "--values", str(values_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def security_flags(container: dict[str, Any], pod: dict[str, Any]) -> list[str]:
    security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    flags = ["--user", f"{security['runAsUser']}:{security['runAsGroup']}"]
    if security.get("readOnlyRootFilesystem"):
        flags.append("--read-only")
    for cap in security.get("capabilities", {}).get("drop", []):
        flags += ["--cap-drop", cap]
    if security.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    return flags


@pytest.fixture(scope="module")
def copied(
    rendered_oci: list[dict[str, Any]], model_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The emptyDir after the rendered copy-model init container ran in the model image."""
    (deployment,) = [d for d in rendered_oci if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["image"] == model_image
    (target,) = [m["mountPath"] for m in init["volumeMounts"] if m["name"] == "model"]
    empty_dir = tmp_path_factory.mktemp("model-emptydir")
    empty_dir.chmod(0o777)  # an emptyDir is world-writable
    docker(
        "run",
        "--rm",
        *security_flags(init, pod),
        "--volume",
        f"{empty_dir}:{target}",
        "--entrypoint",
        init["command"][0],
        model_image,
        *init["command"][1:],
    )
    return empty_dir


def test_the_model_image_copies_the_artifact_as_uid_10001(copied: Path) -> None:
    source = Path(MODEL_SOURCE)
    assert sorted(p.name for p in copied.iterdir()) == sorted(p.name for p in source.iterdir())
    for path in source.iterdir():
        assert (copied / path.name).read_bytes() == path.read_bytes()
        assert (copied / path.name).stat().st_uid == 10001


def test_ping_serves_the_model_copied_from_the_model_image(
    rendered_oci: list[dict[str, Any]], image: dict[str, Any], copied: Path
) -> None:
    run = pod_run(rendered_oci, image["Config"]["User"])
    (deployment,) = [d for d in rendered_oci if d["kind"] == "Deployment"]
    (mount,) = [
        m
        for m in deployment["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        if m["name"] == "model"
    ]
    assert mount["readOnly"] is True
    assert run.env["PING_MODEL_DIR"] == mount["mountPath"]
    # pod_run turns every emptyDir into a tmpfs; this one holds what the init container copied.
    flags = list(run.flags)
    at = next(
        i
        for i, f in enumerate(flags)
        if f == "--tmpfs" and flags[i + 1].startswith(mount["mountPath"])
    )
    del flags[at : at + 2]
    flags += ["--volume", f"{copied}:{mount['mountPath']}:ro"]
    env = [f for name, value in run.env.items() for f in ("--env", f"{name}={value}")]
    container_id = docker(
        "run", "--detach", *flags, *env, "--publish", f"127.0.0.1::{run.port}", IMAGE, *run.argv
    ).strip()
    try:
        binding = inspect(container_id, "container")["NetworkSettings"]["Ports"][f"{run.port}/tcp"][
            0
        ]
        url = f"http://{binding['HostIp']}:{binding['HostPort']}"
        selftest = _wait_and_selftest(container_id, url)
        metadata = httpx.get(f"{url}/metadata", timeout=5).json()
        seed = httpx.post(f"{url}/predict", json={"features": SEED_ROW}, timeout=5)
    finally:
        logs = docker("logs", "--tail", "20", container_id, check=False)
        docker("rm", "--force", container_id, check=False)
    expected = json.loads((Path(MODEL_SOURCE) / "metadata.json").read_text())
    assert metadata["sha256"] == expected["sha256"], logs
    assert seed.text == '{"prediction":0}'
    assert selftest.returncode == 0, f"{selftest.stdout}{selftest.stderr}\n{logs}"


def _wait_and_selftest(container_id: str, url: str) -> subprocess.CompletedProcess[str]:
    """Ping's own selftest, run from Ping's image on the host network, as helm test would."""
    return subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "host",
            "--read-only",
            "--user",
            "10001:10001",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            IMAGE,
            "python",
            "-m",
            "ping",
            "selftest",
            url,
            "--wait",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
