"""Render the chart with the real helm binary, in the manner of Apache Airflow's helm-tests.

`render_chart(values=..., show_only=...)` shells out to `helm template` and returns the parsed
objects as plain dicts. Renders are cached on their arguments, because a session renders the
same values set many times, and each call hands back a fresh copy so tests may mutate it.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "charts" / "ping"
RELEASE = "ping"
NAMESPACE = "ping"
# The chart's kubeVersion floor; the rendered objects do not depend on it (see test_validate).
KUBE_VERSION = "1.29.0"

Manifest = dict[str, Any]


class HelmError(RuntimeError):
    """helm exited non-zero; the message is its stderr."""


def find_helm() -> str:
    """helm as `make` finds it: $HELM, else PATH, else the pinned copy in .tools/bin."""
    if env := os.environ.get("HELM"):
        return env
    if on_path := shutil.which("helm"):
        return on_path
    pinned = REPO / ".tools" / "bin" / "helm"
    if pinned.is_file():
        return str(pinned)
    raise FileNotFoundError("helm not found on PATH or in .tools/bin: run `make helm` first")


@functools.cache
def _template(
    values_json: str,
    values_files: tuple[str, ...],
    show_only: tuple[str, ...],
    kube_version: str,
    release: str,
    chart_dir: str,
) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as extra:
        # JSON is YAML, and it keeps types exact (no "yes"/"no" surprises).
        extra.write(values_json)
        extra.flush()
        cmd = [
            find_helm(),
            "template",
            release,
            chart_dir,
            "--namespace",
            NAMESPACE,
            "--kube-version",
            kube_version,
        ]
        for path in values_files:
            cmd += ["--values", path]
        # Explicit values come last, so they win over the values files.
        cmd += ["--values", extra.name]
        for template in show_only:
            cmd += ["--show-only", template]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
    if proc.returncode != 0:
        raise HelmError(proc.stderr.strip())
    return proc.stdout


def helm_template(
    values: Mapping[str, Any] | None = None,
    values_files: Iterable[str | Path] = (),
    show_only: Sequence[str] = (),
    kube_version: str = KUBE_VERSION,
    release: str = RELEASE,
    chart_dir: Path = CHART_DIR,
) -> str:
    """The raw output of `helm template`; raises HelmError when helm refuses to render."""
    return _template(
        json.dumps(values or {}, sort_keys=True),
        tuple(str(CHART_DIR / f) if not Path(f).is_absolute() else str(f) for f in values_files),
        tuple(show_only),
        kube_version,
        release,
        str(chart_dir),
    )


def render_chart(
    values: Mapping[str, Any] | None = None,
    values_files: Iterable[str | Path] = (),
    show_only: Sequence[str] = (),
    kube_version: str = KUBE_VERSION,
    release: str = RELEASE,
) -> list[Manifest]:
    """Render the chart and return its objects as dicts (values files are chart-relative)."""
    text = helm_template(values, values_files, show_only, kube_version, release)
    return [copy.deepcopy(doc) for doc in _parse(text) if doc]


@functools.cache
def _parse(text: str) -> tuple[Any, ...]:
    return tuple(yaml.safe_load_all(text))


def by_kind(objects: Iterable[Manifest], kind: str) -> list[Manifest]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: Iterable[Manifest], kind: str) -> Manifest:
    """The single object of this kind; fails loudly if there are none or several."""
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def main_container(objects: Iterable[Manifest]) -> dict[str, Any]:
    containers = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]  # type: ignore[no-any-return]


def expand(argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """$(VAR) in command and args, expanded from the container's env as the kubelet does it;
    $$(VAR) escapes, and an unknown $(VAR) stays as written."""

    def one(match: re.Match[str]) -> str:
        if match.group(0).startswith("$$"):
            return match.group(0)[1:]
        return env.get(match.group(1), match.group(0))

    return [re.sub(r"\$?\$\(([A-Za-z_][A-Za-z0-9_]*)\)", one, arg) for arg in argv]


def container_command(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """A container's argv, run here: `python` is this venv's interpreter (the image's PATH puts
    its venv's python first; both install requirements.lock), and $(VAR)s are expanded."""
    argv = expand([*container.get("command", []), *container.get("args", [])], env)
    assert argv, f"container {container['name']} sets no command: it would run the image's CMD"
    if argv[0] == "python":
        argv[0] = sys.executable
    return argv


def run_test_command(
    pod: Manifest,
    target_url: str,
    secret_env: Mapping[str, str] | None = None,
    model_url: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the helm test pod's own command here, with TARGET_URL pointed at target_url (and,
    through the gateway, MODEL_URL at model_url).

    `secret_env` stands in for the variables the pod takes from a Secret (`valueFrom`).
    """
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    from_secrets = {e["name"] for e in container["env"] if "valueFrom" in e}
    assert from_secrets == set(secret_env or {}), "give a value for each variable from a Secret"
    env.update(secret_env or {})
    env["TARGET_URL"] = target_url
    if "MODEL_URL" in env:
        assert model_url, "through the gateway, give the model's own URL too"
        env["MODEL_URL"] = model_url
    return subprocess.run(
        container_command(container, env),
        env={"PATH": os.environ["PATH"], **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
